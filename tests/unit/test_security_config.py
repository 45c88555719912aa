"""kafka.security: one section, strict, secrets from env or files, never printed.

The broker side (SCRAM over TLS, mTLS, a wrong password) is in
tests/integration/test_kafka_security.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from stream.cli import EXIT_AUTH, EXIT_CONFIG, main
from stream.config import ConfigError, load_config
from stream.kafka import client_settings, security_failure

SECRET = "hunter2-7f3a"
SASL = {"STREAMDRIFT_KAFKA__SECURITY__PROTOCOL": "SASL_SSL",
        "STREAMDRIFT_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMDRIFT_KAFKA__SECURITY__USERNAME": "streamdrift"}


def test_password_from_the_environment_reaches_the_client_settings() -> None:
    conf = load_config(env={**SASL, "STREAMDRIFT_KAFKA__SECURITY__PASSWORD": SECRET}).kafka
    settings = client_settings(conf)
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["sasl.username"] == "streamdrift"
    assert settings["sasl.password"] == SECRET
    assert settings["ssl.endpoint.identification.algorithm"] == "https"


def test_secrets_from_files_are_their_first_line(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\n")
    key_pw = tmp_path / "key-pw"
    key_pw.write_text("key-" + SECRET)
    for name in ("ca.pem", "client.crt", "client.key"):
        (tmp_path / name).write_text("pem")
    conf = load_config(overrides={
        "kafka.security.protocol": "SASL_SSL", "kafka.security.sasl_mechanism": "PLAIN",
        "kafka.security.username": "u", "kafka.security.password_file": str(pw),
        "kafka.security.ssl_ca_file": str(tmp_path / "ca.pem"),
        "kafka.security.ssl_cert_file": str(tmp_path / "client.crt"),
        "kafka.security.ssl_key_file": str(tmp_path / "client.key"),
        "kafka.security.ssl_key_password_file": str(key_pw),
        "kafka.security.ssl_check_hostname": False}).kafka
    settings = client_settings(conf)
    assert settings["sasl.password"] == SECRET
    assert settings["ssl.key.password"] == "key-" + SECRET
    assert settings["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert settings["ssl.certificate.location"] == str(tmp_path / "client.crt")
    assert settings["ssl.key.location"] == str(tmp_path / "client.key")
    assert settings["ssl.endpoint.identification.algorithm"] == "none"


def test_an_empty_password_file_is_a_config_error(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("")
    conf = load_config(env={**SASL, "STREAMDRIFT_KAFKA__SECURITY__PASSWORD_FILE": str(pw)})
    with pytest.raises(ConfigError, match=r"kafka\.security\.password_file: .* is empty"):
        client_settings(conf.kafka)


def test_plaintext_by_default_and_kafka_client_reaches_every_client() -> None:
    conf = load_config(overrides={"kafka.client": {"client.id": "sd-1"}}).kafka
    settings = client_settings(conf)
    assert settings["security.protocol"] == "PLAINTEXT"
    assert not any(k.startswith(("sasl.", "ssl.")) for k in settings)
    assert settings["client.id"] == "sd-1"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kafka.security.protocol": "SASL_SSL"},
     "kafka.security.sasl_mechanism: needed with protocol SASL_SSL"),
    ({"kafka.security.protocol": "SASL_PLAINTEXT", "kafka.security.sasl_mechanism": "PLAIN",
      "kafka.security.username": "u"},
     "kafka.security.password: give one of password or password_file"),
    ({"kafka.security.password": "x"},
     "kafka.security.password: only with protocol SASL_PLAINTEXT or SASL_SSL"),
    ({"kafka.security.protocol": "SASL_SSL", "kafka.security.sasl_mechanism": "GSSAPI"},
     "kafka.security.sasl_mechanism: Input should be 'SCRAM-SHA-256', 'SCRAM-SHA-512' or "
     "'PLAIN'"),
    ({"kafka.security.protocol": "SSL", "kafka.security.ssl_ca_file": "/no/such/ca.pem"},
     "kafka.security.ssl_ca_file: Path does not point to a file"),
    ({"kafka.security.protocol": "TLS"}, "kafka.security.protocol: Input should be"),
    ({"kafka.security.user": "u"}, "kafka.security.user: unknown key"),
    ({"kafka.consumer": {"sasl.password": SECRET}},
     "kafka.consumer: 'sasl.password' belongs in kafka.security"),
    ({"kafka.client": {"security.protocol": "SSL"}},
     "kafka.client: 'security.protocol' belongs in kafka.security"),
])
def test_bad_security_config_is_refused_with_the_key_path(overrides: dict[str, object],
                                                          message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    assert message in str(info.value)
    assert SECRET not in str(info.value)


def test_mtls_needs_both_the_certificate_and_the_key(tmp_path: Path) -> None:
    (tmp_path / "client.crt").write_text("pem")
    with pytest.raises(ConfigError, match=r"kafka\.security\.ssl_key_file: ssl_cert_file and "
                                          r"ssl_key_file go together"):
        load_config(overrides={"kafka.security.protocol": "SSL",
                               "kafka.security.ssl_cert_file": str(tmp_path / "client.crt")})


def test_secrets_are_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(env={**SASL, "STREAMDRIFT_KAFKA__SECURITY__PASSWORD": SECRET})
    assert SECRET not in repr(config)
    assert SECRET not in str(config.kafka.security)
    assert SECRET not in config.model_dump_json()
    # A secret of the wrong type: the error names the key, not the value.
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"kafka.security.password": 20240611})
    assert "kafka.security.password" in str(info.value) and "20240611" not in str(info.value)
    # check-config on a file that holds a password prints neither it nor its hash.
    path = tmp_path / "sd.yaml"
    path.write_text("kafka:\n  security:\n    protocol: SASL_PLAINTEXT\n"
                    "    sasl_mechanism: SCRAM-SHA-256\n    username: u\n"
                    f"    password: {SECRET}\n")
    assert main(["check-config", str(path)]) == 0
    path.write_text(path.read_text() + f"    password_file: {path}\n")
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    out = capsys.readouterr()
    assert "kafka.security.password: give one of password or password_file" in out.err
    assert SECRET not in out.out + out.err


def test_a_key_librdkafka_cannot_load_is_an_authentication_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("client.crt", "client.key"):
        (tmp_path / name).write_text("not a PEM file\n")
    rc = main(["simulate", "--topic", "t", "--events", "1", "--bootstrap-servers",
               "127.0.0.1:9", "--config", str(_config(tmp_path, (
                   "kafka:\n  connect_timeout_seconds: 5\n  security:\n    protocol: SSL\n"
                   f"    ssl_cert_file: {tmp_path / 'client.crt'}\n"
                   f"    ssl_key_file: {tmp_path / 'client.key'}\n"
                   f"    ssl_key_password: {SECRET}\n")))])
    err = capsys.readouterr().err
    assert rc == EXIT_AUTH, err
    assert "authentication failed: the client certificate or key cannot be used" in err
    assert "check kafka.security" in err and SECRET not in err


def _config(folder: Path, text: str) -> Path:
    path = folder / "streamdrift.yaml"
    path.write_text(text)
    return path


def test_security_failures_are_told_apart_from_an_unreachable_broker() -> None:
    sasl = load_config(env={**SASL, "STREAMDRIFT_KAFKA__SECURITY__PASSWORD": SECRET}).kafka
    auth = security_failure(KafkaError(KafkaError._AUTHENTICATION,
                                       "SASL authentication error: invalid credentials"), sasl)
    assert auth is not None and auth.startswith("authentication failed: SCRAM-SHA-512 as user "
                                                "'streamdrift'")
    assert "check kafka.security" in auth
    tls = security_failure(KafkaError(KafkaError._SSL, "certificate verify failed"), sasl)
    assert tls is not None and "TLS handshake" in tls
    refused_cert = security_failure(KafkaError(
        KafkaError._TRANSPORT, "Receive failed: ssl/tls alert bad certificate"), sasl)
    assert refused_cert is not None and "TLS handshake" in refused_cert
    down = security_failure(KafkaError(KafkaError._TRANSPORT, "Connection refused"), sasl)
    assert down is None


def test_a_setting_librdkafka_refuses_is_a_config_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMDRIFT_KAFKA__CLIENT__NO_SUCH_SETTING", "1")
    monkeypatch.setenv("STREAMDRIFT_KAFKA__CONNECT_TIMEOUT_SECONDS", "5")
    rc = main(["simulate", "--topic", "t", "--events", "1", "--bootstrap-servers",
               "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == EXIT_CONFIG, err
    # Refused when the config loads, with the key's path (no client was started).
    assert "kafka.client.no_such_setting: No such configuration property" in err


def test_every_kafka_client_is_built_from_client_settings() -> None:
    """A client made without client_settings would miss kafka.security (the restore
    consumer and the admin client once did); the secured-broker tests catch it at run
    time, this catches it when the code is written: every function of stream/ that makes
    a client (or calls the one that does, _admin) calls client_settings, or a function
    of stream/ that does (e.g. cli._producer_settings)."""
    import ast

    makers = {"Consumer", "Producer", "AdminClient", "_admin"}
    trees = [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in
             sorted(Path(__file__).resolve().parents[2].glob("stream/*.py"))]
    # Functions that build settings from client_settings (e.g. cli._producer_settings).
    builders = {func.name for _, tree in trees for func in ast.walk(tree)
                if isinstance(func, ast.FunctionDef) and "client_settings(" in ast.unparse(func)}
    found = []
    for path, tree in trees:
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef) or func.name == "_admin":
                continue
            if f"{path.name}:{func.name}" == "config.py:_refused":
                continue  # a client with the passthrough settings alone, no broker: a check
            calls = {node.func.id for node in ast.walk(func) if isinstance(node, ast.Call)
                     and isinstance(node.func, ast.Name)}
            made = calls & makers
            if made:
                found.append(f"{path.name}:{func.name}")
                assert calls & builders, (
                    f"{path.name}:{func.name} makes {made} without client_settings")
    # run's and replay's consumers, the restore consumer, the producer, the broker check
    assert len(found) >= 5, found
