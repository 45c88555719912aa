"""deploy/local-kafka.sh's cluster ids, drawn by the launcher itself (no broker, no Java).

A fresh data dir is formatted with `kafka-storage format --cluster-id ID`; an id that
begins with '-' is read there as a flag and the broker never starts. A raw draw
begins with '-' one time in 64, so 2,000 draws without one show the redraw works.
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest

LAUNCHER = Path(__file__).resolve().parents[2] / "deploy" / "local-kafka.sh"
DRAWS = 2_000


@pytest.mark.timeout(600)  # 2,000 draws fork 4,000 processes: slow on a loaded machine
def test_cluster_ids_never_begin_with_a_dash_and_are_kafka_uuids() -> None:
    done = subprocess.run([str(LAUNCHER), "cluster-id", str(DRAWS)], capture_output=True,
                          text=True, timeout=300, check=True)
    ids = done.stdout.split()
    assert len(ids) == DRAWS
    assert not [i for i in ids if i.startswith("-")]
    for cluster_id in ids:
        # Kafka's Uuid.toString: 16 bytes, URL-safe base64 without padding (22 chars).
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
        raw = base64.urlsafe_b64decode(cluster_id + "==")
        assert len(raw) == 16
        assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id
    assert len(set(ids)) == DRAWS, "random: no id twice"


def test_one_cluster_id_by_default_and_a_bad_count_is_refused() -> None:
    one = subprocess.run([str(LAUNCHER), "cluster-id"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert len(one.stdout.split()) == 1
    bad = subprocess.run([str(LAUNCHER), "cluster-id", "many"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0
    assert "N must be a whole number" in bad.stderr
