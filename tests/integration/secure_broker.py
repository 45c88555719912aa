"""A second local broker with SCRAM, TLS and mTLS listeners, for the security tests.

Keys and certificates are made here with the ``openssl`` command line (a test CA,
a server certificate for localhost/127.0.0.1, a client certificate whose key is
encrypted with a password), then ``deploy/local-kafka.sh`` starts the broker from
the same jar cache with these listeners added (``KAFKA_EXTRA_PROPERTIES``) and
SCRAM users created when its storage is formatted (``KAFKA_SCRAM_USERS``).

Ports, from ``base`` (TEST_SECURE_KAFKA_PORT, default the main test broker's
port + 4, i.e. 19096 beside `make test`'s 19092, so both run at once):

=========  ==============  ==========================================
base       PLAINTEXT       inter-broker and the launcher's readiness check only
base + 1   CONTROLLER      KRaft
base + 2   SASL_SSL        SCRAM-SHA-512, SCRAM-SHA-256, PLAIN over TLS
base + 3   SSL             TLS with a required client certificate (mTLS)
base + 4   SASL_PLAINTEXT  SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, no TLS
=========  ==============  ==========================================
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "deploy" / "local-kafka.sh"

USER = "streamdrift"
PASSWORD = "scram-pw-6d1f0c2a"  # test-only credential, never used outside this broker
CLIENT_KEY_PASSWORD = "client-key-pw-41e7"


@dataclass(frozen=True)
class Pki:
    ca: Path            # the test CA's certificate (PEM)
    server: Path        # server key (PKCS#8) + certificate, Kafka's PEM keystore
    client_cert: Path   # client certificate signed by the CA
    client_key: Path    # its key, PKCS#8 encrypted with CLIENT_KEY_PASSWORD
    other_ca: Path      # a CA that signed nothing here (a client trusting it must fail)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days",
                 "2", "-subj", f"/CN=streamdrift test {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                 f"/CN={'localhost' if name == 'server' else USER}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=folder)
    _openssl("pkcs8", "-topk8", "-in", "client.key", "-out", "client.enc.key", "-v2",
             "aes-256-cbc", "-passout", f"pass:{CLIENT_KEY_PASSWORD}", cwd=folder)
    server = folder / "server.pem"
    server.write_text((folder / "server.key").read_text() + (folder / "server.crt").read_text())
    for path in folder.iterdir():
        path.chmod(0o600)
    return Pki(ca=folder / "ca.pem", server=server, client_cert=folder / "client.crt",
               client_key=folder / "client.enc.key", other_ca=folder / "other-ca.pem")


@dataclass(frozen=True)
class SecureBroker:
    base: int
    pki: Pki

    @property
    def sasl_ssl(self) -> str:
        return f"localhost:{self.base + 2}"

    @property
    def ssl(self) -> str:
        return f"localhost:{self.base + 3}"

    @property
    def sasl_plaintext(self) -> str:
        return f"localhost:{self.base + 4}"

    def env(self) -> dict[str, str]:
        return {"KAFKA_PORT": str(self.base), "KAFKA_CONTROLLER_PORT": str(self.base + 1)}


def _properties(base: int, pki: Pki) -> str:
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
             f'user_{USER}="{PASSWORD}";')
    lines = [
        f"listeners=PLAINTEXT://127.0.0.1:{base},CONTROLLER://127.0.0.1:{base + 1},"
        f"SASL_SSL://127.0.0.1:{base + 2},SSL://127.0.0.1:{base + 3},"
        f"SASL_PLAINTEXT://127.0.0.1:{base + 4}",
        f"advertised.listeners=PLAINTEXT://localhost:{base},SASL_SSL://localhost:{base + 2},"
        f"SSL://localhost:{base + 3},SASL_PLAINTEXT://localhost:{base + 4}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "SASL_SSL:SASL_SSL,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={pki.server}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki.ca}",
        "listener.name.ssl.ssl.client.auth=required",
    ]
    for listener in ("sasl_ssl", "sasl_plaintext"):
        lines += [f"listener.name.{listener}.scram-sha-512.sasl.jaas.config={scram}",
                  f"listener.name.{listener}.scram-sha-256.sasl.jaas.config={scram}",
                  f"listener.name.{listener}.plain.sasl.jaas.config={plain}"]
    return "\n".join(lines) + "\n"


def start(base: int, folder: Path) -> SecureBroker:
    """Make the keys, then start the broker (a fresh state dir); stop it with ``stop``."""
    pki = make_pki(folder / "pki")
    props = folder / "secure.properties"
    props.write_text(_properties(base, pki))
    broker = SecureBroker(base, pki)
    users = "\n".join(f"{m}=[name={USER},password={PASSWORD}]"
                      for m in ("SCRAM-SHA-512", "SCRAM-SHA-256"))
    try:
        subprocess.run([str(LAUNCHER), "start"], check=True, timeout=240,
                       env={**os.environ, **broker.env(), "KAFKA_CLEAN": "1",
                            "KAFKA_EXTRA_PROPERTIES": str(props), "KAFKA_SCRAM_USERS": users})
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        stop(broker)  # a broker that started but never answered must not outlive the test
        raise
    return broker


def stop(broker: SecureBroker) -> None:
    subprocess.run([str(LAUNCHER), "stop"], check=False, timeout=120,
                   env={**os.environ, **broker.env()})
