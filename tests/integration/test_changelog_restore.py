"""Restoring from a changelog topic that was created a moment ago, on a real broker.

Right after CreateTopics the new partitions may have no leader yet, and
librdkafka's watermark request then fails with NOT_LEADER_FOR_PARTITION or
LEADER_NOT_AVAILABLE, which it does not mark retriable. A group's first start
creates its changelog and restores from it at once, so `run` must ask again
instead of exiting.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stream.config import KafkaConfig
from stream.state import Changelog

pytestmark = pytest.mark.integration


def test_restore_right_after_the_changelog_is_created_finds_no_state(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    conf = KafkaConfig(bootstrap_servers=bootstrap)
    for _ in range(10):  # on an idle broker about half the first requests meet no leader
        topic = f"it-fresh-state-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 3, 1, config={"cleanup.policy": "compact"})]
                            )[topic].result(60)
        changelog = Changelog(conf, topic, producer=None, config_hash="h")  # type: ignore[arg-type]
        assert changelog.restore({p: {"events": None} for p in range(3)}) == {}
