"""Delete the demo's topics and consumer group on a broker, so that `make demo` starts
from a fresh state (deploy/demo.sh runs it unless DEMO_FRESH=0).

Usage: python deploy/demo_reset.py BOOTSTRAP GROUP TOPIC...

Waits until the broker no longer lists the topics (a topic being deleted cannot be
created again yet) and exits 0; 1 with the broker's error otherwise. Topics or a group
that do not exist are fine.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

TIMEOUT_SECONDS = 60.0


#: The group coordinator is not there yet (a broker that just started has not loaded
#: its offsets topic): asking again shortly after succeeds.
COORDINATOR_NOT_READY = frozenset({KafkaError.NOT_COORDINATOR,
                                   KafkaError.COORDINATOR_NOT_AVAILABLE,
                                   KafkaError.COORDINATOR_LOAD_IN_PROGRESS})


def delete_group(admin: Any, group: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Delete consumer group ``group``; False if it does not exist. Asks again while the
    coordinator is not ready (``COORDINATOR_NOT_READY``), up to ``timeout`` seconds;
    raises ``KafkaException`` for any other error, or the last one at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.delete_consumer_groups([group], request_timeout=timeout)[group].result()
            return True
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.GROUP_ID_NOT_FOUND:
                return False
            if code not in COORDINATOR_NOT_READY or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def reset(bootstrap: str, group: str, topics: list[str]) -> list[str]:
    """Delete ``group`` and ``topics``; the names of those that existed."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=TIMEOUT_SECONDS).topics)
    present = [t for t in topics if t in existing]
    deleted = []
    # The group first: a group holding offsets of a deleted topic is harmless anyway.
    if delete_group(admin, group):
        deleted.append(f"group {group}")
    if present:
        for future in admin.delete_topics(present, operation_timeout=TIMEOUT_SECONDS).values():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while set(present) & set(admin.list_topics(timeout=TIMEOUT_SECONDS).topics):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics still listed after {TIMEOUT_SECONDS:.0f} s: "
                                   f"{', '.join(present)}")
            time.sleep(0.2)
        deleted += [f"topic {t}" for t in present]
    return deleted


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        deleted = reset(argv[0], argv[1], argv[2:])
    except (KafkaException, TimeoutError) as exc:
        print(f"demo reset: {exc}", file=sys.stderr)
        return 1
    print(f"deleted {', '.join(deleted)}" if deleted else "nothing to delete")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
