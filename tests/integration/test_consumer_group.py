"""Two `streamdrift run` processes in one group share the partitions and lose nothing."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.integration.conftest import (
    Running,
    committed_offsets,
    end_offsets,
    metric,
    streamdrift,
    wait_until,
)

pytestmark = pytest.mark.integration

EVENTS = 9_000


def _events_total(run: Running) -> float:
    return metric(run, "streamdrift_events_total")


def test_two_members_split_the_partitions_and_commit_everything(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running]) -> None:
    events, group = names("events"), names("group")
    made = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", events,
                       "--partitions", "3", "--events", str(EVENTS), "--seed", "2",
                       "--models", "a,b,c,d,e,f")
    assert made.returncode == 0, made.stderr
    args = ("--bootstrap-servers", bootstrap, "--events-topic", events, "--alerts-topic",
            names("alerts"), "--dlq-topic", names("dlq"), "--group-id", group)
    first = spawn(*args)
    wait_until(lambda: _events_total(first) > 0, 60, "the first member to consume")
    second = spawn(*args)  # joins mid-stream or after: a rebalance either way

    def all_processed() -> bool:
        for run in (first, second):
            assert run.process.poll() is None, run.log()
        return _events_total(first) + _events_total(second) >= EVENTS

    wait_until(all_processed, 90, "both members together to process every event",
               progress=lambda: _events_total(first) + _events_total(second))
    wait_until(lambda: "assigned it-" in second.log(), 120, "the second member to get partitions")
    for run in (second, first):
        run.process.send_signal(signal.SIGTERM)
        assert run.process.wait(120) == 0, run.log()
    ends = end_offsets(bootstrap, events)
    committed = committed_offsets(bootstrap, group, events)
    assert {p: o for p, o in committed.items() if o >= 0} == {p: o for p, o in ends.items() if o}
