"""kafka.security on a real broker that refuses anonymous clients (secure_broker.py).

Every listener used here authenticates, so a client that missed kafka.security (the
admin client of the broker check and topic creation, the consumer, the transactional
producer of alerts, dead letters and changelog, the restore consumer, replay's and
simulate's clients) could not connect and the test would fail.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Message

from stream.cli import EXIT_AUTH
from stream.config import load_config
from stream.kafka import client_settings
from tests.integration import secure_broker as secure
from tests.integration.conftest import (
    Running,
    committed_offsets,
    end_offsets,
    read_topic,
    streamdrift,
    wait_until,
)
from tests.integration.secure_broker import (
    CLIENT_KEY_PASSWORD,
    PASSWORD,
    USER,
    SecureBroker,
)

pytestmark = pytest.mark.integration

SECRETS = (PASSWORD, CLIENT_KEY_PASSWORD)


@pytest.fixture(scope="module")
def secure_broker(bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[SecureBroker]:
    """A second broker with SASL_SSL, SSL (mTLS) and SASL_PLAINTEXT listeners, keys made
    for it (secure_broker.py), for this module only (a second JVM slows the other tests).
    Its ports start at TEST_SECURE_KAFKA_PORT, by default the main broker's port + 4
    (19096-19100 beside `make test`'s 19092)."""
    base = os.environ.get("TEST_SECURE_KAFKA_PORT") or str(int(bootstrap.rsplit(":", 1)[1]) + 4)
    broker = secure.start(int(base), tmp_path_factory.mktemp("secure-kafka"))
    try:
        yield broker
    finally:
        secure.stop(broker)


def _config(folder: Path, bootstrap: str, security: str) -> Path:
    path = folder / f"streamdrift-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(f"""
kafka:
  bootstrap_servers: {bootstrap}
  batch_size: 300
  checkpoint_interval_seconds: 0
  connect_timeout_seconds: 60
  consumer:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 500
  security:
{security}""")
    return path


def _sasl_ssl(broker: SecureBroker, folder: Path, mechanism: str = "SCRAM-SHA-512") -> Path:
    secret = folder / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    return _config(folder, broker.sasl_ssl, f"""\
    protocol: SASL_SSL
    sasl_mechanism: {mechanism}
    username: {USER}
    password_file: {secret}
    ssl_ca_file: {broker.pki.ca}
""")


def _simulate(config: Path, topic: str, events: int, seed: int,
              env: dict[str, str] | None = None) -> None:
    made = streamdrift("simulate", "--config", str(config), "--topic", topic, "--partitions",
                       "3", "--events", str(events), "--seed", str(seed), "--models",
                       "credit,fraud", "--drift-at", str(events // 2), "--drift-feature",
                       "balance", "--shift", "2", "--invalid-rate", "0.01", env_extra=env)
    assert made.returncode == 0, made.stderr
    _no_secret(made.stdout + made.stderr)


def _servers(client: dict[str, object]) -> str:
    return str(client["bootstrap.servers"])


def _read(client: dict[str, object], topic: str) -> list[Message]:
    return read_topic(_servers(client), topic, client=client)


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def _run_until_committed(spawn: Callable[..., Running], config: Path, topics: dict[str, str],
                         group: str, client: dict[str, object],
                         env: dict[str, str] | None = None) -> str:
    """`streamdrift run` (exactly-once) until every record is committed, then SIGTERM."""
    run = spawn("--config", str(config), "--events-topic", topics["events"], "--alerts-topic",
                topics["alerts"], "--dlq-topic", topics["dlq"], "--group-id", group,
                "--processing-guarantee", "exactly-once", env_extra=env)
    ends = end_offsets(_servers(client), topics["events"], client)

    def committed() -> bool:
        assert run.process.poll() is None, run.log()
        done = committed_offsets(_servers(client), group, topics["events"], client)
        return all(done.get(p, -1) >= end for p, end in ends.items() if end > 0)

    def progress() -> int:
        return sum(committed_offsets(_servers(client), group, topics["events"], client).values())

    wait_until(committed, 150, "every event committed through the secured listener",
               interval=0.5, progress=progress)
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(120) == 0, run.log()
    log = run.log()
    _no_secret(log)
    return log


def test_whole_path_through_scram_over_tls(secure_broker: SecureBroker, tmp_path: Path,
                                           spawn: Callable[..., Running]) -> None:
    config = _sasl_ssl(secure_broker, tmp_path)
    client = client_settings(load_config(config).kafka)
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"it-sec-{k}-{tag}" for k in ("events", "alerts", "dlq")}
    group = f"it-sec-{tag}"
    _simulate(config, topics["events"], 6000, seed=3)

    first = _run_until_committed(spawn, config, topics, group, client)
    alerts = [orjson.loads(m.value()) for m in _read(client, topics["alerts"])]
    assert any(a["feature"] == "balance" for a in alerts), alerts
    dead = _read(client, topics["dlq"])
    assert dead and all(dict(m.headers() or [])["streamdrift.reason"] for m in dead)
    changelog = _read(client, f"{group}-state")
    assert changelog, "the changelog producer wrote detector state"
    assert not re.search(r"state of [1-9]\d* of 3 partitions restored", first), first

    # A restart restores the state through the secured listener and goes on committing.
    _simulate(config, topics["events"], 2000, seed=4)
    second = _run_until_committed(spawn, config, topics, group, client)
    assert re.search(r"state of [1-9]\d* of 3 partitions restored", second), second

    # replay reads the same topic through it too.
    replayed = streamdrift("replay", "--config", str(config), "--topic", topics["events"])
    assert replayed.returncode == 0, replayed.stderr
    _no_secret(replayed.stdout + replayed.stderr)
    assert any(orjson.loads(line)["feature"] == "balance"
               for line in replayed.stdout.splitlines())


@pytest.mark.parametrize("command", ["run", "simulate"])
def test_wrong_password_fails_fast_and_says_so(secure_broker: SecureBroker, tmp_path: Path,
                                               command: str) -> None:
    config = _config(tmp_path, secure_broker.sasl_ssl, f"""\
    protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    username: {USER}
    ssl_ca_file: {secure_broker.pki.ca}
""")
    wrong = "not-the-" + PASSWORD
    args = (["run", "--metrics-port", "0"] if command == "run"
            else ["simulate", "--topic", "it-sec-never", "--events", "10"])
    began = time.monotonic()
    # kafka.connect_timeout_seconds is 60: an answer well before it is the refusal, not a wait.
    done = streamdrift(*args, "--config", str(config), timeout=45,
                       env_extra={"STREAMDRIFT_KAFKA__SECURITY__PASSWORD": wrong})
    assert done.returncode == EXIT_AUTH, done.stderr
    assert time.monotonic() - began < 45
    assert "authentication failed: SCRAM-SHA-512 as user 'streamdrift'" in done.stderr
    assert "check kafka.security" in done.stderr
    assert "cannot reach Kafka" not in done.stderr
    assert wrong not in done.stdout + done.stderr


def _mtls(broker: SecureBroker, folder: Path, with_cert: bool = True,
          ca: Path | None = None) -> Path:
    cert = (f"    ssl_cert_file: {broker.pki.client_cert}\n"
            f"    ssl_key_file: {broker.pki.client_key}\n") if with_cert else ""
    return _config(folder, broker.ssl, f"""\
    protocol: SSL
    ssl_ca_file: {ca or broker.pki.ca}
{cert}""")


def test_mtls_client_certificate_with_an_encrypted_key(secure_broker: SecureBroker,
                                                       tmp_path: Path,
                                                       spawn: Callable[..., Running]) -> None:
    config = _mtls(secure_broker, tmp_path)
    key_env = {"STREAMDRIFT_KAFKA__SECURITY__SSL_KEY_PASSWORD": CLIENT_KEY_PASSWORD}
    client = client_settings(load_config(config, env=key_env).kafka)
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"it-mtls-{k}-{tag}" for k in ("events", "alerts", "dlq")}
    _simulate(config, topics["events"], 6000, seed=5, env=key_env)
    _run_until_committed(spawn, config, topics, f"it-mtls-{tag}", client, env=key_env)
    alerts = [orjson.loads(m.value()) for m in _read(client, topics["alerts"])]
    assert any(a["feature"] == "balance" for a in alerts), alerts


@pytest.mark.parametrize(("case", "expected"), [
    ("no client certificate", "authentication failed: the TLS handshake (SSL)"),
    ("a CA that did not sign the broker", "certificate verify failed"),
    ("a wrong key password", "the client certificate or key cannot be used"),
])
def test_mtls_refusals_are_authentication_failures(secure_broker: SecureBroker,
                                                   tmp_path: Path, case: str,
                                                   expected: str) -> None:
    config = _mtls(secure_broker, tmp_path, with_cert=case != "no client certificate",
                   ca=secure_broker.pki.other_ca if case.startswith("a CA") else None)
    key_password = "wrong-key-pw" if case == "a wrong key password" else CLIENT_KEY_PASSWORD
    env = ({"STREAMDRIFT_KAFKA__SECURITY__SSL_KEY_PASSWORD": key_password}
           if case != "no client certificate" else {})
    done = streamdrift("simulate", "--config", str(config), "--topic", "it-mtls-never",
                       "--events", "10", timeout=45, env_extra=env)
    assert done.returncode == EXIT_AUTH, done.stderr
    assert expected in done.stderr and "check kafka.security" in done.stderr
    _no_secret(done.stderr)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_plaintext_mechanisms(secure_broker: SecureBroker, tmp_path: Path,
                                   mechanism: str) -> None:
    config = _config(tmp_path, secure_broker.sasl_plaintext, f"""\
    protocol: SASL_PLAINTEXT
    sasl_mechanism: {mechanism}
    username: {USER}
""")
    env = {"STREAMDRIFT_KAFKA__SECURITY__PASSWORD": PASSWORD}
    topic = f"it-sasl-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
    _simulate(config, topic, 500, seed=6, env=env)
    replayed = streamdrift("replay", "--config", str(config), "--topic", topic, env_extra=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replay: 500 records" in replayed.stderr
    _no_secret(replayed.stderr)
