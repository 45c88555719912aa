"""One YAML file, overridable by ``STREAMDRIFT_*`` variables and flags.

Precedence: flag > environment > file > default. A nested key ``a.b_c`` is
``STREAMDRIFT_A__B_C`` in the environment. Unknown keys and bad values are
refused with the key's path and what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import orjson
import yaml
from confluent_kafka import Consumer, KafkaException, Producer
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    FilePath,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from detectors.config import DetectorConfig
from detectors.config import StrictSettings as _Strict
from stream.events import MAX_CATEGORY_BYTES, MAX_NAME_BYTES

ENV_PREFIX = "STREAMDRIFT_"


Passthrough = dict[str, str | int | float | bool]

# librdkafka settings that only kafka.security sets: given per client they would miss the
# admin client or the restore consumer (a client without them cannot authenticate).
SECURITY_SETTINGS = ("security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username",
                     "sasl.password", "ssl.ca.location", "ssl.certificate.location",
                     "ssl.key.location", "ssl.key.password",
                     "ssl.endpoint.identification.algorithm")
SECRET_KEYS = frozenset({"password", "ssl_key_password", "sasl.password", "ssl.key.password",
                         "ssl.keystore.password", "sasl.oauthbearer.client.secret"})


def _refuse(key: str, message: str) -> PydanticCustomError:
    # ``key`` extends the error's path (see _describe): kafka.security.<key>: message
    return PydanticCustomError("security", message, {"key": key})


class SecurityConfig(_Strict):
    """How every Kafka client of streamdrift authenticates and encrypts (librdkafka's
    ``security.protocol``, ``sasl.*`` and ``ssl.*`` settings, CONFIGURATION.md).

    Secrets come from the file or the environment (``STREAMDRIFT_KAFKA__SECURITY__PASSWORD``),
    or from files (``password_file``, ``ssl_key_password_file``: the first line, read when
    the clients are made). They are ``SecretStr``: printed as ``**********``.

    >>> sec = SecurityConfig(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
    ...                      username="sd", password="s3cret")
    >>> sec.password, "s3cret" in repr(sec)
    (SecretStr('**********'), False)
    """

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    password_file: FilePath | None = None
    # TLS (SSL, SASL_SSL): the CA that signed the brokers' certificates (default: the
    # system's), and a client certificate + key for mTLS.
    ssl_ca_file: FilePath | None = None
    ssl_cert_file: FilePath | None = None
    ssl_key_file: FilePath | None = None
    ssl_key_password: SecretStr | None = None
    ssl_key_password_file: FilePath | None = None
    # Check that the broker's certificate names the host it was reached at (librdkafka's
    # ssl.endpoint.identification.algorithm=https); off only for test brokers.
    ssl_check_hostname: bool = True

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> SecurityConfig:
        sasl_keys = ("sasl_mechanism", "username", "password", "password_file")
        tls_keys = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password",
                    "ssl_key_password_file")
        for key in sasl_keys if not self.sasl else ():
            if getattr(self, key) is not None:
                raise _refuse(key, "only with protocol SASL_PLAINTEXT or SASL_SSL "
                                   f"(protocol is {self.protocol})")
        for key in tls_keys if not self.tls else ():
            if getattr(self, key) is not None:
                raise _refuse(key, f"only with protocol SSL or SASL_SSL (protocol is "
                                   f"{self.protocol})")
        if self.sasl:
            for key in ("sasl_mechanism", "username"):
                if getattr(self, key) is None:
                    raise _refuse(key, f"needed with protocol {self.protocol}")
            if (self.password is None) == (self.password_file is None):
                raise _refuse("password", f"give one of password or password_file with "
                                          f"protocol {self.protocol}")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise _refuse("ssl_key_file" if self.ssl_key_file is None else "ssl_cert_file",
                          "ssl_cert_file and ssl_key_file go together (mTLS)")
        if self.ssl_key_password is not None and self.ssl_key_password_file is not None:
            raise _refuse("ssl_key_password", "give ssl_key_password or "
                                              "ssl_key_password_file, not both")
        if self.ssl_key_file is None and (self.ssl_key_password is not None
                                          or self.ssl_key_password_file is not None):
            raise _refuse("ssl_key_password", "only with ssl_key_file")
        return self


def _no_security_settings(settings: Passthrough) -> Passthrough:
    for key in settings:
        if key in SECURITY_SETTINGS:
            raise PydanticCustomError(
                "security", "'{setting}' belongs in kafka.security, which reaches every client "
                "(admin, restore consumer, producers)", {"setting": key})
    return settings


#: ``kafka.batch_size: auto``: records asked per poll at least, and per monitored model.
AUTO_BATCH_MIN = 2000
AUTO_EVENTS_PER_MODEL = 250
_BATCH_SIZE: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=1, le=100_000)])


def _batch_size(value: Any) -> int | str:
    """``kafka.batch_size``: "auto" or a positive integer, one error message either way."""
    if value == "auto":
        return "auto"
    try:
        return _BATCH_SIZE.validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PydanticCustomError(error["type"], error["msg"] + " (or 'auto')") from None


class KafkaConfig(_Strict):
    bootstrap_servers: str = "localhost:9092"
    events_topic: str = Field(default="model-events", min_length=1)
    labels_topic: str | None = None
    alerts_topic: str = Field(default="drift-alerts", min_length=1)
    dlq_topic: str = Field(default="model-events-dlq", min_length=1)
    group_id: str = Field(default="streamdrift", min_length=1)
    processing_guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    # Detector state per input partition (compacted, co-partitioned with the events
    # topic); default "<group_id>-state".
    changelog_topic: str | None = Field(default=None, min_length=1)
    # How often alerts, state and offsets are made durable together (a crash re-reads
    # at most this much; exactly-once alerts become visible at this pace).
    checkpoint_interval_seconds: float = Field(default=1.0, ge=0.0, le=600.0)
    # Static membership: a restart within session.timeout.ms keeps the partitions.
    group_instance_id: str | None = Field(default=None, min_length=1)
    # exactly-once: stable per process slot (e.g. the pod name of a StatefulSet), so a
    # restarted process fences and aborts its predecessor's open transaction at once;
    # default "streamdrift-<group_id>-<hostname>".
    transactional_id: str | None = Field(default=None, min_length=1)
    transaction_timeout_seconds: float = Field(default=60.0, ge=1.0, le=900.0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Records asked per poll: a number, or "auto" (see ``poll_size``).
    batch_size: Annotated[int | Literal["auto"], BeforeValidator(_batch_size)] = "auto"
    max_batch_size: int = Field(default=50_000, ge=1, le=1_000_000)  # the bound of "auto"
    batch_timeout_seconds: float = Field(default=0.5, gt=0.0, le=60.0)
    connect_timeout_seconds: float = Field(default=30.0, gt=0.0, le=3600.0)
    create_topics: bool = True
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    statistics_interval_seconds: float = Field(default=5.0, ge=0.0)
    security: SecurityConfig = SecurityConfig()
    # Extra librdkafka settings, passed through as they are: `client` to every client
    # (consumers, producers, admin), `consumer` and `producer` to those only.
    client: Passthrough = Field(default_factory=dict)
    consumer: Passthrough = Field(default_factory=dict)
    producer: Passthrough = Field(default_factory=dict)

    def poll_size(self, models: int = 0) -> int:
        """Records to ask for in one poll while ``models`` models are monitored.

        A number in ``batch_size`` is used as it is. ``"auto"``: ``AUTO_EVENTS_PER_MODEL``
        (250) per model, at least ``AUTO_BATCH_MIN`` (2,000) and at most ``max_batch_size``
        (or ``AUTO_BATCH_MIN`` if that is larger). Every series of a model costs a fixed
        amount per batch besides its cost per value, so with many models a fixed batch
        spends most of its time on that fixed part (200 models at 2,000 records: about 10
        values per series per batch); a poll returns sooner if its
        ``batch_timeout_seconds`` pass first. The alerts do not depend on it: detections
        are the same whatever the batches.

        >>> KafkaConfig().poll_size(2), KafkaConfig().poll_size(200)
        (2000, 50000)
        >>> KafkaConfig(batch_size=300).poll_size(200)
        300
        """
        if self.batch_size != "auto":
            return self.batch_size
        return max(AUTO_BATCH_MIN, min(self.max_batch_size, AUTO_EVENTS_PER_MODEL * models))

    _passthrough_checked = field_validator("client", "consumer", "producer")(
        _no_security_settings)


class MetricsConfig(_Strict):
    port: int | None = Field(default=9108, ge=0, le=65535)
    # All interfaces, the exporters' convention: Prometheus scrapes the pod or container
    # address. 127.0.0.1 keeps it to the host (a sidecar, a local agent).
    host: str = "0.0.0.0"
    # TLS and basic auth, in the Prometheus exporters' web config format (stream/web.py).
    web_config_file: FilePath | None = None
    max_models: int = Field(default=100, ge=1)
    max_features: int = Field(default=200, ge=1)


class LimitsConfig(_Strict):
    max_record_bytes: int = Field(default=1_048_576, ge=64)
    # event_id, model_id, model_version and feature names: longer ones are refused
    # (DLQ reason name_too_long); they become metric labels, alert fields, join keys.
    max_name_bytes: int = Field(default=MAX_NAME_BYTES, ge=16, le=65_536)
    # Categorical values (string features, predictions, class names, labels): longer
    # ones are replaced by "sha256:<16 hex digits>" of their bytes, and counted.
    max_category_bytes: int = Field(default=MAX_CATEGORY_BYTES, ge=16, le=1_048_576)
    # An event time further ahead of its record's timestamp than this is a producer clock
    # that runs ahead: not trusted (stream/clock.py). null: every event time is trusted.
    max_clock_skew_seconds: float | None = Field(default=300.0, gt=0.0)
    # What becomes of such an event: processed with its record timestamp as event time
    # (record_time), or sent to the DLQ (dead_letter, reason clock_skew). Counted either way.
    clock_skew_policy: Literal["record_time", "dead_letter"] = "record_time"


MIN_HMAC_KEY_BYTES = 32


def _read_key(path: str) -> bytes:
    """The key in ``path``, without trailing whitespace (a newline an editor added)."""
    try:
        key = Path(path).read_bytes().rstrip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise ValueError(f"{path}: a key of at least {MIN_HMAC_KEY_BYTES} bytes is needed, "
                         f"it holds {len(key)}")
    return key


class StateConfig(_Strict):
    """Detector-state snapshots in the changelog topic."""

    # A file holding the HMAC-SHA256 key: snapshots are signed with it, and ones without
    # a valid signature are refused. Every process of the group needs the same key.
    hmac_key_file: str | None = Field(default=None, min_length=1)

    @field_validator("hmac_key_file")
    @classmethod
    def _key_readable(cls, path: str | None) -> str | None:
        if path is not None:
            _read_key(path)
        return path

    def hmac_key(self) -> bytes | None:
        """The key (read now), or None without ``hmac_key_file``. Raises ``ValueError``."""
        return None if self.hmac_key_file is None else _read_key(self.hmac_key_file)


class AppConfig(_Strict):
    kafka: KafkaConfig = KafkaConfig()
    metrics: MetricsConfig = MetricsConfig()
    limits: LimitsConfig = LimitsConfig()
    state: StateConfig = StateConfig()
    detectors: DetectorConfig = DetectorConfig()

    @property
    def state_topic(self) -> str:
        return self.kafka.changelog_topic or f"{self.kafka.group_id}-state"

    def config_hash(self) -> str:
        """Hash of what decides the alerts (the detectors), not of where they go."""
        canonical = orjson.dumps(self.detectors.model_dump(mode="json"),
                                 option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]


class ConfigError(Exception):
    """A config that cannot be used; the message names each key's path."""


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Merge file, environment and flag overrides (dotted keys) and validate.

    >>> cfg = load_config(env={"STREAMDRIFT_KAFKA__BATCH_SIZE": "500"},
    ...                   overrides={"metrics.port": 0})
    >>> cfg.kafka.batch_size, cfg.metrics.port
    (500, 0)
    >>> load_config(overrides={"kafka.batch_size": "many"})
    Traceback (most recent call last):
    ...
    stream.config.ConfigError: kafka.batch_size: Input should be a valid integer, ... (got 'many')
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(Path(path))
    environ = os.environ if env is None else env
    from_env: dict[str, str] = {}  # dotted key -> the variable that set it
    for name, raw in sorted(environ.items()):
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX):].lower().replace("__", ".")
            # The raw string: pydantic turns "500" into 500 for an int key, keeps "2024" a str.
            _set(data, key, raw, origin=name)
            from_env[key] = name
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(data, key, value, origin=f"--{key.split('.')[-1].replace('_', '-')}")
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, from_env)) from None
    check_client_settings(config.kafka)
    check_producer_queue(config)
    return config


_QUIET = logging.getLogger("streamdrift.config.librdkafka")  # a check logs nothing
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def check_client_settings(conf: KafkaConfig) -> None:
    """ConfigError naming ``kafka.consumer.<key>`` / ``kafka.producer.<key>`` /
    ``kafka.client.<key>`` (checked as a producer's) if librdkafka
    refuses a passthrough setting (unknown key or bad value; librdkafka's
    CONFIGURATION.md lists them). A client is built with the settings alone and no
    broker, so nothing is contacted."""
    problems = []
    for section, settings in (("consumer", conf.consumer), ("producer", conf.producer),
                              ("client", conf.client)):
        message = _refused(section, settings)
        if message is None:
            continue
        alone = [(key, _refused(section, {key: value})) for key, value in settings.items()]
        bad = [f"kafka.{section}.{key}: {why}" for key, why in alone if why is not None]
        problems += bad or [f"kafka.{section}: {message}"]
    if problems:
        raise ConfigError("\n".join(problems))


def check_producer_queue(config: AppConfig) -> None:
    """ConfigError if ``kafka.producer.queue.buffering.max.kbytes`` cannot hold one record
    of the producer's ``message.max.bytes``: librdkafka would refuse such a record for
    ever (QUEUE_FULL) while ``produce`` waits for room. Settings already checked by
    ``check_client_settings``."""
    from stream.sinks import producer_limits

    producer = config.kafka.producer
    if "queue.buffering.max.kbytes" not in producer:
        return  # streamdrift's default holds two of its largest records
    limits = producer_limits(producer, config.limits.max_record_bytes)
    largest, kbytes = limits["message.max.bytes"], limits["queue.buffering.max.kbytes"]
    if kbytes * 1024 < largest:
        raise ConfigError(
            f"kafka.producer.queue.buffering.max.kbytes: {kbytes} KiB cannot hold one record "
            f"of message.max.bytes ({largest:,} bytes); give at least {-(-largest // 1024)}")


def _refused(section: str, settings: dict[str, Any]) -> str | None:
    if not settings:
        return None
    try:
        if section == "consumer":
            Consumer({"group.id": "streamdrift-config-check", **settings,
                      "logger": _QUIET}).close()
        else:
            Producer({**settings, "logger": _QUIET}).flush(0)
    except KafkaException as exc:
        return str(exc.args[0].str())
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        # From the open file, so that YAML errors name it ('in "FILE", line 3, column 5').
        with path.open(encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}"
                          ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(data).__name__}")
    return data


def _set(data: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted} (from {origin}): {part} is not a mapping")
        node = child
    node[parts[-1]] = value


def _describe(exc: ValidationError, from_env: Mapping[str, str] | None = None) -> str:
    """One line per error: the key's path, what is wrong, the value (secrets left out)
    and, for a key set by a ``STREAMDRIFT_*`` variable (``from_env``: dotted key ->
    variable), the variable."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "security":  # raised by a model check about one of its keys
            loc += [str(err.get("ctx", {}).get("key", ""))] if "key" in err.get("ctx", {}) else []
        path = ".".join(loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc)
        got = err.get("input")
        secret = bool(loc) and (loc[-1] in SECRET_KEYS or "password" in loc[-1]
                                or "secret" in loc[-1])
        suffix = (f" (got {got!r})" if err["type"] != "extra_forbidden" and _short(got)
                  and not secret else "")
        variable = (from_env or {}).get(path)
        if variable is not None:
            hint = _nested_hint(loc) if err["type"] == "extra_forbidden" else ""
            suffix += f" (from {variable}{hint})"
        lines.append(f"{path}: {message}{suffix}")
    return "\n".join(lines)


def _nested_hint(loc: list[str]) -> str:
    """For an unknown key set by a variable: the variable of a known key it may have
    meant, one underscore read as the two that nest a key in its section.

    >>> _nested_hint(["kafka_batch_size"])
    '; a key in a section takes two underscores: STREAMDRIFT_KAFKA__BATCH_SIZE'
    >>> _nested_hint(["debug"])
    ''
    """
    words = loc[-1].split("_")
    for i in range(1, len(words)):
        candidate = [*loc[:-1], "_".join(words[:i]), "_".join(words[i:])]
        if candidate[-1] in _keys_at(candidate[:-1]):
            return ("; a key in a section takes two underscores: "
                    f"{ENV_PREFIX}{'__'.join(candidate).upper()}")
    return ""


def _keys_at(path: list[str]) -> list[str]:
    """The keys a config mapping at ``path`` may hold (empty for a free-form mapping)."""
    model: Any = AppConfig
    for part in path:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(
            model, BaseModel) else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    """The pydantic model in ``annotation`` (``M``, ``M | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _did_you_mean(loc: list[str]) -> str:
    """" (did you mean 'batch_size'?)" for the closest known key (difflib's ratio, at least
    0.6), else "".

    >>> _did_you_mean(["kafka", "batch_sise"])
    " (did you mean 'batch_size'?)"
    >>> _did_you_mean(["kafka", "zzz"])
    ''
    """
    if not loc:
        return ""
    close = difflib.get_close_matches(loc[-1], _keys_at(loc[:-1]), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def effective_yaml(config: AppConfig) -> str:
    """Every key of ``config`` with its value, as YAML a ``--config`` file could hold
    (secrets as ``'**********'``; file paths as strings).

    >>> text = effective_yaml(load_config(env={"STREAMDRIFT_KAFKA__BATCH_SIZE": "500"}))
    >>> "  batch_size: 500" in text.splitlines(), text.splitlines()[0]
    (True, 'kafka:')
    """
    data = config.model_dump(mode="json")
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def _short(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 80
