"""Thin helpers around confluent-kafka: client settings, reachability, topics.

``client_settings`` is the one place where a client's settings start: every consumer,
producer and admin client of streamdrift (run, replay, simulate, the restore consumer)
is built from it, so ``kafka.security`` reaches all of them.
"""

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

from stream.config import ConfigError, KafkaConfig, SecurityConfig

log = logging.getLogger("streamdrift.kafka")


class BrokerUnavailable(Exception):
    """Kafka did not answer within the configured time."""


class AuthenticationFailed(Exception):
    """The brokers refused who we are (SASL) or the TLS handshake failed: a
    ``kafka.security`` problem, not an unreachable broker. The message holds no secret."""


def client_settings(conf: KafkaConfig) -> dict[str, Any]:
    """The settings every client starts from: bootstrap servers, ``kafka.security``,
    ``kafka.client``; each client adds its own (and ``kafka.consumer``/``producer``).

    Raises ConfigError if a secret file cannot be read. Key names: librdkafka's
    CONFIGURATION.md.

    >>> from stream.config import load_config
    >>> conf = load_config(overrides={"kafka.security.protocol": "SASL_PLAINTEXT",
    ...     "kafka.security.sasl_mechanism": "SCRAM-SHA-512",
    ...     "kafka.security.username": "sd", "kafka.security.password": "pw"}).kafka
    >>> settings = client_settings(conf)
    >>> settings["security.protocol"], settings["sasl.mechanism"], settings["sasl.password"]
    ('SASL_PLAINTEXT', 'SCRAM-SHA-512', 'pw')
    """
    # librdkafka's own log lines go through logging too, not straight to stderr.
    # Metadata refreshed every 10 s (default 5 min): after a broker restart a client
    # whose metadata still names a stale leader recovers within seconds.
    return {"bootstrap.servers": conf.bootstrap_servers, "error_cb": _log_error,
            "logger": logging.getLogger("streamdrift.librdkafka"),
            "topic.metadata.refresh.interval.ms": 10_000,
            **security_settings(conf.security), **conf.client}


def security_settings(sec: SecurityConfig) -> dict[str, Any]:
    """librdkafka's ``security.protocol``, ``sasl.*`` and ``ssl.*`` for ``kafka.security``,
    secrets read from their files here (so a rotated file is read by the next start)."""
    out: dict[str, Any] = {"security.protocol": sec.protocol}
    if sec.sasl:
        out |= {"sasl.mechanism": sec.sasl_mechanism, "sasl.username": sec.username,
                "sasl.password": _secret(sec.password, sec.password_file,
                                         "kafka.security.password_file")}
    if sec.tls:
        if sec.ssl_ca_file is not None:
            out["ssl.ca.location"] = str(sec.ssl_ca_file)
        if sec.ssl_cert_file is not None and sec.ssl_key_file is not None:
            out["ssl.certificate.location"] = str(sec.ssl_cert_file)
            out["ssl.key.location"] = str(sec.ssl_key_file)
        if sec.ssl_key_password is not None or sec.ssl_key_password_file is not None:
            out["ssl.key.password"] = _secret(sec.ssl_key_password, sec.ssl_key_password_file,
                                              "kafka.security.ssl_key_password_file")
        out["ssl.endpoint.identification.algorithm"] = "https" if sec.ssl_check_hostname \
            else "none"
    return out


def _secret(value: Any, path: Any, key: str) -> str:
    if value is not None:
        return str(value.get_secret_value())
    try:
        # The first line: files written by `echo` or by Kubernetes secrets alike.
        text = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or 'not UTF-8'}") from None
    if not text or not text[0]:
        raise ConfigError(f"{key}: {path} is empty")
    return str(text[0])


def security_failure(err: KafkaError, conf: KafkaConfig) -> str | None:
    """A clear message if ``err`` says the brokers refused our credentials or the TLS
    handshake failed, else None. librdkafka reports SASL failures as _AUTHENTICATION,
    certificate problems as _SSL, and a refused client certificate (TLS 1.3 alert after
    the handshake) as _TRANSPORT naming the certificate."""
    text = err.str()
    sec = conf.security
    if err.code() == KafkaError._AUTHENTICATION:
        what = f"{sec.sasl_mechanism} as user {sec.username!r}" if sec.sasl else sec.protocol
        hint = "username/password" if sec.sasl else "protocol"
    elif err.code() == KafkaError._SSL or (
            err.code() == KafkaError._TRANSPORT and sec.tls and "certificate" in text):
        what = f"the TLS handshake ({sec.protocol})"
        hint = "ssl_ca_file, ssl_cert_file/ssl_key_file, ssl_check_hostname"
    else:
        return None
    return (f"authentication failed: {what} at {conf.bootstrap_servers}: {text}; "
            f"check kafka.security ({hint})")


def _log_error(err: KafkaError) -> None:
    # librdkafka retries by itself; a fatal error is raised where it surfaces.
    log.warning("kafka: %s", err.str())


def wait_for_broker(conf: KafkaConfig) -> AdminClient:
    """An admin client once the cluster answers a metadata request.

    Raises AuthenticationFailed at the first refusal of our credentials or TLS handshake
    failure (librdkafka would retry them until the timeout), BrokerUnavailable after
    ``kafka.connect_timeout_seconds`` without an answer, ConfigError for settings
    librdkafka refuses (e.g. a client key it cannot decrypt: AuthenticationFailed).
    """
    refused: list[str] = []

    def on_error(err: KafkaError) -> None:  # the outcome below says it once
        why = security_failure(err, conf)
        if why is not None:
            refused.append(why)

    admin = _admin(conf, {**client_settings(conf), "error_cb": on_error})
    deadline = time.monotonic() + conf.connect_timeout_seconds
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if refused:
            raise AuthenticationFailed(refused[0])
        if remaining <= 0:
            raise BrokerUnavailable(
                f"cannot reach Kafka at {conf.bootstrap_servers} within "
                f"{conf.connect_timeout_seconds:g}s ({last}); is the broker running? "
                "(kafka.connect_timeout_seconds sets the wait)")
        try:
            # Short attempts: errors reach on_error between them (admin.poll).
            admin.list_topics(timeout=min(remaining, 1.0))
            return admin
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args else str(exc)
        admin.poll(0)


def _admin(conf: KafkaConfig, settings: dict[str, Any]) -> AdminClient:
    """The admin client; a refusal of its settings says which section to fix (the key
    file or its password, an unknown passthrough key)."""
    try:
        return AdminClient(settings)
    except KafkaException as exc:
        err = exc.args[0]
        text = err.str() if isinstance(err, KafkaError) else str(exc)
        if conf.security.tls and "ssl" in text.lower():
            raise AuthenticationFailed(
                f"authentication failed: the client certificate or key cannot be used: "
                f"{text}; check kafka.security (ssl_cert_file, ssl_key_file, "
                f"ssl_key_password)") from None
        raise ConfigError(f"kafka: librdkafka refused a setting: {text} (kafka.client, "
                          f"kafka.consumer, kafka.producer pass settings through)") from None


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
