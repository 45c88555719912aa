"""Thin helpers around confluent-kafka: client settings, reachability, topics."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream.config import KafkaConfig

log = logging.getLogger("streamdrift.kafka")


class BrokerUnavailable(Exception):
    """Kafka did not answer within the configured time."""


def client_settings(conf: KafkaConfig) -> dict[str, Any]:
    # librdkafka's own log lines go through logging too, not straight to stderr.
    return {"bootstrap.servers": conf.bootstrap_servers, "error_cb": _log_error,
            "logger": logging.getLogger("streamdrift.librdkafka")}


def _log_error(err: KafkaError) -> None:
    # librdkafka retries by itself; a fatal error is raised where it surfaces.
    log.warning("kafka: %s", err.str())


def wait_for_broker(conf: KafkaConfig) -> AdminClient:
    """An admin client once the cluster answers a metadata request, or BrokerUnavailable."""
    settings: dict[str, Any] = {"bootstrap.servers": conf.bootstrap_servers,
                                "error_cb": lambda err: None}  # the timeout below says it once
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
