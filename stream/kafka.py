"""Thin helpers around confluent-kafka: client settings, reachability, topics."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from stream.config import KafkaConfig

log = logging.getLogger("streamdrift.kafka")


class BrokerUnavailable(Exception):
    """Kafka did not answer within the configured time."""


def client_settings(conf: KafkaConfig) -> dict[str, Any]:
    # librdkafka's own log lines go through logging too, not straight to stderr.
    # Metadata refreshed every 10 s (default 5 min): after a broker restart a client
    # whose metadata still names a stale leader recovers within seconds.
    return {"bootstrap.servers": conf.bootstrap_servers, "error_cb": _log_error,
            "logger": logging.getLogger("streamdrift.librdkafka"),
            "topic.metadata.refresh.interval.ms": 10_000}


def _log_error(err: KafkaError) -> None:
    # librdkafka retries by itself; a fatal error is raised where it surfaces.
    log.warning("kafka: %s", err.str())


def wait_for_broker(conf: KafkaConfig) -> AdminClient:
    """An admin client once the cluster answers a metadata request, or BrokerUnavailable."""
    settings: dict[str, Any] = {"bootstrap.servers": conf.bootstrap_servers,
                                "error_cb": lambda err: None,  # the timeout below says it once
                                "logger": logging.getLogger("streamdrift.librdkafka")}
    admin = AdminClient(settings)
    deadline = time.monotonic() + conf.connect_timeout_seconds
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnavailable(
                f"cannot reach Kafka at {conf.bootstrap_servers} within "
                f"{conf.connect_timeout_seconds:g}s ({last}); is the broker running? "
                "(kafka.connect_timeout_seconds sets the wait)")
        try:
            admin.list_topics(timeout=min(remaining, 5.0))
            return admin
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args else str(exc)


def ensure_topics(admin: AdminClient, names: list[str], partitions: int,
                  replication_factor: int, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [n for n in dict.fromkeys(names) if n and n not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication_factor)
         for n in missing], operation_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
            log.info("created topic %s (%d partitions)", name, partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def topic_max_message_bytes(admin: AdminClient, topic: str, timeout: float = 30.0
                            ) -> int | None:
    """The topic's effective ``max.message.bytes`` (its own, or the broker's default), or
    None if it cannot be read (e.g. not allowed to describe configs)."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout)
        return int(configs["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError) as exc:
        log.warning("cannot read max.message.bytes of %s (%s): dead letters are cut to the "
                    "broker default", topic, exc)
        return None


class TopicMismatch(Exception):
    """A topic exists with settings streamdrift cannot work with."""


def ensure_changelog(admin: AdminClient, events_topic: str, changelog_topic: str,
                     create: bool, replication_factor: int, timeout: float = 30.0) -> None:
    """The state changelog: compacted, with the events topic's partition count.

    Created when missing (if ``create``); an existing one with another partition
    count or without compaction is refused: its partition p must hold the state
    of the events' partition p, and only compaction keeps it bounded.
    """
    topics = admin.list_topics(timeout=timeout).topics
    events = topics.get(events_topic)
    if events is None or events.error is not None:
        raise TopicMismatch(f"events topic {events_topic!r} does not exist")
    wanted = len(events.partitions)
    existing = topics.get(changelog_topic)
    if existing is None:
        if not create:
            raise TopicMismatch(f"state changelog topic {changelog_topic!r} does not exist "
                                f"(kafka.create_topics is off): create it with "
                                f"cleanup.policy=compact and {wanted} partitions")
        future = admin.create_topics([NewTopic(
            changelog_topic, num_partitions=wanted, replication_factor=replication_factor,
            config={"cleanup.policy": "compact", "segment.bytes": str(64 * 1024 * 1024),
                    "segment.ms": str(15 * 60 * 1000), "min.cleanable.dirty.ratio": "0.1"},
        )], operation_timeout=timeout)[changelog_topic]
        try:
            future.result(timeout)
            log.info("created state changelog %s (%d partitions, compacted)", changelog_topic,
                     wanted)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        return
    have = len(existing.partitions)
    if have != wanted:
        raise TopicMismatch(
            f"state changelog topic {changelog_topic!r} has {have} partitions, the events "
            f"topic {events_topic!r} has {wanted}: they must match (partition p holds the "
            f"state of events partition p); delete it to start the state afresh, or set "
            f"kafka.changelog_topic to another name")
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog_topic)
    configs = admin.describe_configs([resource])[resource].result(timeout)
    policy = configs["cleanup.policy"].value
    if "compact" not in policy.split(","):
        raise TopicMismatch(
            f"state changelog topic {changelog_topic!r} has cleanup.policy={policy}: it must "
            f"be compact (delete would lose the state of quiet partitions)")


def check_copartitioned(admin: AdminClient, events_topic: str, labels_topic: str,
                        timeout: float = 30.0) -> None:
    """Labels join their predictions within a partition: both topics need the same
    partition count (and producers that key both by model_id)."""
    topics = admin.list_topics(timeout=timeout).topics
    counts = {name: len(topics[name].partitions) for name in (events_topic, labels_topic)
              if name in topics and topics[name].error is None}
    if len(counts) == 2 and counts[events_topic] != counts[labels_topic]:
        raise TopicMismatch(
            f"labels topic {labels_topic!r} has {counts[labels_topic]} partitions, the events "
            f"topic {events_topic!r} has {counts[events_topic]}: they must match (a label is "
            f"joined in the partition of its prediction; key both by model_id)")
