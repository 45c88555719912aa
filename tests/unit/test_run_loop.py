"""RunLoop with an in-memory source and sinks: DLQ, metrics, detection, checkpoint order,
batch-boundary invariance, partition lifecycle."""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors import DetectorBank, DetectorConfig
from detectors.config import AdwinSettings, NumericSettings, PageHinkleySettings
from stream.alerts import encode_alert
from stream.config import AppConfig
from stream.events import Rejected, format_time
from stream.loop import RunLoop
from stream.metrics import Metrics
from stream.records import RecordBatch
from stream.simulate import DEFAULT_START, MALFORMED, Scenario, generate
from stream.sinks import SinkError
from stream.sources import Partition, PartitionListener

TOPIC = "model-events"
WARMUP = 200
RECORD_MS = 1_767_225_600_000

# (topic, partition, offset, value)
Record = tuple[str, int, int, bytes | None]


class ListSource:
    """Yields ``records`` in batches of ``batch_size``, then None; logs commits to ``calls``."""

    def __init__(self, records: Sequence[Record], batch_size: int, calls: list[Any],
                 before_poll: Callable[[int], None] | None = None) -> None:
        self.records = list(records)
        self.batch_size = batch_size
        self.calls = calls
        self.before_poll = before_poll
        self.listener: PartitionListener | None = None
        self.batches: list[RecordBatch] = []
        self.commits: list[dict[Partition, int]] = []
        self.closed = False
        self._next = 0

    def poll(self) -> RecordBatch | None:
        if self.before_poll is not None:
            self.before_poll(self._next)
        if self._next >= len(self.records):
            return None
        batch = RecordBatch()
        for topic, partition, offset, value in self.records[self._next:
                                                            self._next + self.batch_size]:
            batch.append(topic, partition, offset, RECORD_MS + offset, None, value)
        self._next += len(batch)
        self.batches.append(batch)
        return batch

    def commit(self, offsets: dict[Partition, int]) -> None:
        self.calls.append(("commit", dict(offsets)))
        self.commits.append(dict(offsets))

    def close(self) -> None:
        self.closed = True


class RecordingAlertSink:
    def __init__(self, calls: list[Any], fail_flush: bool = False) -> None:
        self.calls = calls
        self.fail_flush = fail_flush
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def send(self, alert: dict[str, Any]) -> None:
        self.calls.append("alerts.send")
        self.sent.append(alert)

    def flush(self, timeout: float | None = None) -> None:
        if self.fail_flush:
            raise SinkError("broker did not acknowledge")
        self.calls.append("alerts.flush")

    def close(self) -> None:
        self.closed = True


class RecordingDeadLetterSink:
    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls
        self.sent: list[tuple[Partition, int, str, bytes | None]] = []
        self.closed = False

    def send(self, records: RecordBatch, rejected: Rejected) -> None:
        self.calls.append("dead_letters.send")
        row = rejected.row
        self.sent.append(((records.topics[row], records.partitions[row]), records.offsets[row],
                          rejected.reason, records.values[row]))

    def flush(self, timeout: float | None = None) -> None:
        self.calls.append("dead_letters.flush")

    def close(self) -> None:
        self.closed = True


class Harness:
    """A RunLoop wired to the fakes, with its own metrics registry."""

    def __init__(self, records: Sequence[Record], batch_size: int = 500,
                 detectors: DetectorConfig | None = None, fail_flush: bool = False,
                 before_poll: Callable[[int], None] | None = None,
                 metrics: Metrics | None = None) -> None:
        self.calls: list[Any] = []
        self.source = ListSource(records, batch_size, self.calls, before_poll)
        self.alerts = RecordingAlertSink(self.calls, fail_flush)
        self.dead_letters = RecordingDeadLetterSink(self.calls)
        self.metrics = metrics or Metrics()
        config = AppConfig(detectors=detectors or DetectorConfig(warmup=WARMUP))
        self.loop = RunLoop(self.source, self.alerts, self.dead_letters, config, self.metrics)

    def run(self) -> Harness:
        self.loop.run()
        return self

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def simulated(scenario: Scenario) -> list[bytes]:
    return [item[1] for item in generate(scenario)]


def one_partition(values: Sequence[bytes | None], partition: int = 0) -> list[Record]:
    return [(TOPIC, partition, offset, v) for offset, v in enumerate(values)]


def valid_event(i: int, model: str = "credit-risk") -> bytes:
    return orjson.dumps({"event_id": f"v-{i}", "model_id": model,
                         "features": {"income": 1000.0 + i % 7, "country": "DE"}})


BAD_RECORDS: list[tuple[bytes | None, str]] = [
    (b"not json at all", "not_json"),
    (b"\xff\xfe\x00garbage", "not_utf8"),
    (b"[1, 2, 3]", "not_object"),
    (b'{"model_id": "credit-risk", "features": {}}', "missing_field"),
    (b'{"event_id": "", "model_id": "credit-risk", "features": {}}', "empty_field"),
    (b'{"event_id": "b", "model_id": "credit-risk", "features": {"income": [1]}}',
     "wrong_type"),
    (b'{"event_id": "b", "model_id": "credit-risk", "features": {"income": NaN}}',
     "non_finite_number"),
    (b'{"event_id": "b", "model_id": "credit-risk", "features": {"x": 1e999}}',
     "non_finite_number"),
    (b"", "empty_value"),
    (None, "empty_value"),
    (b'{"event_id": "b", "model_id": "m", "features": {}, "timestamp": "later"}',
     "bad_timestamp"),
    (b'{"event_id": "b", "model_id": "m", "features": {"x": "' + b"y" * 2_000_000 + b'"}}',
     "oversized"),
]


def test_malformed_records_go_to_dlq_with_reason_and_are_counted() -> None:
    values: list[bytes | None] = []
    expected_dlq = []
    for i, (bad, reason) in enumerate(BAD_RECORDS):
        values.extend(valid_event(10 * i + k) for k in range(5))
        expected_dlq.append(((TOPIC, 0), len(values), reason, bad))
        values.append(bad)
    h = Harness(one_partition(values), batch_size=7).run()  # bad rows in many batch positions

    assert h.dead_letters.sent == expected_dlq
    for reason in {r for _, r in BAD_RECORDS}:
        expected = sum(r == reason for _, r in BAD_RECORDS)
        assert h.sample("streamdrift_events_invalid_total", reason=reason) == expected
    valid = len(values) - len(BAD_RECORDS)
    assert h.sample("streamdrift_events_total", model_id="credit-risk") == valid
    assert (h.loop.stats.records, h.loop.stats.events, h.loop.stats.rejected) == (
        len(values), valid, len(BAD_RECORDS))


def test_simulated_invalid_records_are_counted_and_valid_ones_counted_per_model() -> None:
    scenario = Scenario(events=3000, seed=5, models=("credit-risk", "fraud"), invalid_rate=0.05)
    items = list(generate(scenario))
    h = Harness(one_partition([item[1] for item in items]), batch_size=250).run()

    invalid = sum(item[1] in MALFORMED for item in items)
    assert invalid > 0
    assert len(h.dead_letters.sent) == invalid
    counted = sum(h.sample("streamdrift_events_invalid_total", reason=reason) or 0.0
                  for reason in {d[2] for d in h.dead_letters.sent})
    assert counted == invalid
    for model in scenario.models:
        valid = sum(item[0] == model and item[1] not in MALFORMED for item in items)
        assert h.sample("streamdrift_events_total", model_id=model) == valid


@pytest.mark.parametrize(
    ("feature", "shift", "allowed_extra"),
    [
        ("balance", 1.0, set()),
        ("utilization", 1.0, set()),
        ("country", 2.0, set()),
        ("device", 2.0, set()),
        # income feeds the score, so the prediction legitimately drifts with it
        ("income", 1.0, {("prediction", "prediction_drift")}),
    ],
    ids=["balance", "utilization", "country", "device", "income"],
)
def test_drift_in_one_feature_alerts_that_feature_only(
        feature: str, shift: float, allowed_extra: set[tuple[str, str]]) -> None:
    drift_at = 2000
    scenario = Scenario(events=4000, seed=11, drift_at=drift_at, drift_feature=feature,
                        shift=shift)
    h = Harness(one_partition(simulated(scenario))).run()

    fired = [(a["feature"], a["kind"]) for a in h.alerts.sent]
    assert (feature, "data_drift") in fired
    assert set(fired) <= {(feature, "data_drift")} | allowed_extra
    assert fired.count((feature, "data_drift")) == 1  # re-baselined, not re-firing
    first = next(a for a in h.alerts.sent if a["feature"] == feature)
    assert first["model_id"] == "credit-risk"
    assert drift_at <= first["source"]["offset"] < drift_at + 500
    assert h.sample("streamdrift_drift_alerts_total", model_id="credit-risk", feature=feature,
                    kind="data_drift", detector=first["detector"]) == 1


def test_stationary_simulated_stream_raises_no_alert() -> None:
    h = Harness(one_partition(simulated(Scenario(events=6000, seed=3)))).run()
    assert h.alerts.sent == []
    assert h.loop.stats.events == 6000


def test_alert_points_at_the_record_that_fired() -> None:
    scenario = Scenario(events=4000, seed=2, drift_at=2000, drift_feature="balance")
    values = simulated(scenario)
    h = Harness(one_partition(values), batch_size=333).run()

    assert h.alerts.sent
    for alert in h.alerts.sent:
        offset = alert["source"]["offset"]
        event = orjson.loads(values[offset])
        assert alert["source"] == {"topic": TOPIC, "partition": 0, "offset": offset}
        assert alert["event_id"] == event["event_id"] == f"e-{offset:09d}"
        assert alert["event_time"] == event["timestamp"] == format_time(
            DEFAULT_START + offset / scenario.events_per_second)
        assert alert["model_version"] == "1"


def test_commit_follows_flush_with_next_offset_per_partition() -> None:
    # Two partitions interleaved, gaps in offsets (compaction, transaction markers).
    scenario = Scenario(events=3000, seed=1, drift_at=1500, drift_feature="balance",
                        invalid_rate=0.02)
    records: list[Record] = [(TOPIC, i % 2, 10_000 * (i % 2) + 3 * i, value)
                             for i, value in enumerate(simulated(scenario))]
    h = Harness(records, batch_size=64).run()

    assert h.alerts.sent and h.dead_letters.sent  # both sinks had something to make durable
    assert len(h.source.commits) == len(h.source.batches)
    since_commit: list[str] = []
    commit_index = 0
    for call in h.calls:
        if isinstance(call, tuple):
            # Everything sent for this batch is flushed, and nothing is sent after the flush.
            assert since_commit[-2:] == ["alerts.flush", "dead_letters.flush"]
            batch = h.source.batches[commit_index]
            expected: dict[Partition, int] = {}
            for topic, partition, offset in zip(batch.topics, batch.partitions, batch.offsets,
                                                strict=True):
                expected[(topic, partition)] = max(expected.get((topic, partition), -1),
                                                   offset + 1)
            assert call[1] == expected
            commit_index += 1
            since_commit = []
        else:
            since_commit.append(call)
    last = {(TOPIC, p): max(o for _, q, o, _ in records if q == p) + 1 for p in (0, 1)}
    assert h.source.commits[-1] == last


def test_failed_flush_leaves_offsets_uncommitted_and_closes_everything() -> None:
    h = Harness(one_partition([valid_event(i) for i in range(50)]), batch_size=10,
                fail_flush=True)
    with pytest.raises(SinkError):
        h.loop.run()
    assert h.source.commits == []
    assert h.source.closed and h.alerts.closed and h.dead_letters.closed


@pytest.mark.parametrize("batch_sizes", [(1000, 137, 6000), (1, 6000)],
                         ids=["1000-137-whole", "1-whole"])
def test_alerts_are_byte_identical_for_any_batch_size(batch_sizes: tuple[int, ...]) -> None:
    scenario = Scenario(events=6000, seed=4, models=("credit-risk", "fraud"), drift_at=2500,
                        drift_feature="balance", shift=1.5, missing_rate=0.05,
                        invalid_rate=0.01)
    records = one_partition(simulated(scenario))
    outputs = []
    for size in batch_sizes:
        h = Harness(records, batch_size=size).run()
        outputs.append([encode_alert(a) for a in h.alerts.sent])
    assert outputs[0], "the scenario must produce alerts for the comparison to mean anything"
    assert {orjson.loads(a)["model_id"] for a in outputs[0]} == {"credit-risk", "fraud"}
    for other in outputs[1:]:
        assert other == outputs[0]


def test_same_records_give_same_alert_ids_across_runs() -> None:
    records = one_partition(simulated(Scenario(events=4000, seed=8, drift_at=2000,
                                               drift_feature="country", shift=2.0)))
    first = [a["alert_id"] for a in Harness(records).run().alerts.sent]
    second = [a["alert_id"] for a in Harness(records).run().alerts.sent]
    assert first and first == second


def test_run_loop_registers_as_the_sources_partition_listener() -> None:
    h = Harness([])
    assert h.source.listener is h.loop


def test_revoked_partition_keeps_its_state_only_if_it_resumes_where_it_stopped() -> None:
    records = [(TOPIC, i % 2, i // 2, valid_event(i)) for i in range(600)]
    h = Harness(records)
    h.loop.assigned([(TOPIC, 0), (TOPIC, 1)])
    batch = RecordBatch()
    for topic, partition, offset, value in records:
        batch.append(topic, partition, offset, RECORD_MS, None, value)
    h.loop.process(batch)
    kept = h.loop.banks[1]
    assert h.loop.banks[0].models  # partition 0 has state before the revoke

    before = h.loop.banks[0]
    h.loop.revoked([(TOPIC, 0), (TOPIC, 1)])  # an eager rebalance revokes everything
    # Partition 1 resumes where this member stopped; another member moved 0 on meanwhile.
    h.loop.assigned([(TOPIC, 0), (TOPIC, 1)], {(TOPIC, 0): 400, (TOPIC, 1): 300})

    resumed = RecordBatch()
    for offset in range(300, 350):
        resumed.append(TOPIC, 1, offset, RECORD_MS, None, valid_event(offset))
    h.loop.process(resumed)
    assert h.loop.banks[1] is kept
    moved_on = RecordBatch()
    for offset in range(400, 450):
        moved_on.append(TOPIC, 0, offset, RECORD_MS, None, valid_event(offset))
    h.loop.process(moved_on)
    fresh = h.loop.banks[0]
    assert fresh is not before
    assert fresh.models["credit-risk"].series["income"].values.warming_up  # type: ignore[union-attr]
    assert not kept.models["credit-risk"].series["income"].values.warming_up  # type: ignore[union-attr]


def drift_active(metrics: Metrics, feature: str) -> float | None:
    return metrics.registry.get_sample_value(
        "streamdrift_feature_drift_active", {"model_id": "credit-risk", "feature": feature})


def test_feature_drift_active_is_one_after_alert_and_zero_after_rebaseline() -> None:
    scenario = Scenario(events=4000, seed=0, drift_at=2000, drift_feature="balance",
                        missing_rate=0.0)
    metrics = Metrics()
    readings: list[tuple[int, float | None]] = []  # (records processed, gauge) at each poll
    h = Harness(one_partition(simulated(scenario)), batch_size=50, metrics=metrics,
                before_poll=lambda done: readings.append((done, drift_active(metrics, "balance"))))
    h.run()

    alerts = [a for a in h.alerts.sent if a["feature"] == "balance"]
    assert len(alerts) == 1
    fired = alerts[0]["source"]["offset"]
    batch_end = (fired // 50 + 1) * 50  # the reading before the next poll sees that batch
    assert all(not value for done, value in readings if done <= fired)
    assert dict(readings)[batch_end] == 1.0
    rebaselined = fired + WARMUP + 50
    after = [value for done, value in readings if done >= rebaselined]
    assert after and all(value == 0.0 for value in after)


def test_revoking_a_drifting_partition_clears_feature_drift_active() -> None:
    scenario = Scenario(events=2400, seed=0, drift_at=2000, drift_feature="balance",
                        missing_rate=0.0)
    h = Harness([])
    batch = RecordBatch()
    for topic, partition, offset, value in one_partition(simulated(scenario)):
        batch.append(topic, partition, offset, RECORD_MS, None, value)
        if len(batch) == 100:
            h.loop.process(batch)
            batch = RecordBatch()
            if h.alerts.sent:
                break
    assert [a["feature"] for a in h.alerts.sent] == ["balance"]
    assert drift_active(h.metrics, "balance") == 1.0  # still in its re-baseline warm-up

    h.loop.revoked([(TOPIC, 0)])

    assert drift_active(h.metrics, "balance") == 0.0


def test_last_event_timestamp_is_the_newest_event_time() -> None:
    scenario = Scenario(events=500, seed=1)
    h = Harness(one_partition(simulated(scenario)), batch_size=64).run()
    newest = DEFAULT_START + 499 / scenario.events_per_second
    assert h.sample("streamdrift_last_event_timestamp_seconds",
                    model_id="credit-risk") == pytest.approx(newest)


def test_event_time_out_of_datetime_range_never_crashes_the_loop() -> None:
    scenario = Scenario(events=4000, seed=0, drift_at=2000, drift_feature="balance")
    values = []
    for i, value in enumerate(simulated(scenario)):
        event = orjson.loads(value)
        event["timestamp"] = 1_767_225_600_000 + 10 * i  # milliseconds sent as seconds
        values.append(orjson.dumps(event))
    h = Harness(one_partition(values)).run()
    assert h.loop.stats.events + h.loop.stats.rejected == len(values)


def test_revoke_checkpoints_what_was_processed_before_the_partitions_go() -> None:
    h = Harness([])
    h.loop.checkpoint_seconds = 3600.0  # no checkpoint of its own in between
    batch = RecordBatch()
    for offset in range(120):
        batch.append(TOPIC, 0, offset, RECORD_MS, None, valid_event(offset))
    h.loop.assigned([(TOPIC, 0)])
    h.loop.process(batch)
    assert h.source.commits == []

    h.loop.revoked([(TOPIC, 0)])

    assert h.source.commits == [{(TOPIC, 0): 120}]
    assert h.calls[-3:] == ["alerts.flush", "dead_letters.flush", ("commit", {(TOPIC, 0): 120})]


def test_lost_partitions_drop_their_state_and_commit_nothing() -> None:
    h = Harness([])
    h.loop.checkpoint_seconds = 3600.0
    batch = RecordBatch()
    for offset in range(120):
        batch.append(TOPIC, offset % 2, offset // 2, RECORD_MS, None, valid_event(offset))
    h.loop.assigned([(TOPIC, 0), (TOPIC, 1)])
    h.loop.process(batch)

    h.loop.lost([(TOPIC, 0)])  # another member may have it already: nothing to commit for it

    assert 0 not in h.loop.banks and 1 in h.loop.banks
    h.loop.checkpoint()
    assert h.source.commits == [{(TOPIC, 1): 60}]


# --- streamdrift_feature_drift_score ---------------------------------------------------------

SCORES = DetectorConfig(warmup=WARMUP, recent_window=400)


def drift_score(metrics: Metrics, feature: str, score: str, model: str = "credit-risk"
                ) -> float | None:
    return metrics.registry.get_sample_value(
        "streamdrift_feature_drift_score", {"model_id": model, "feature": feature,
                                            "score": score})


def score_series(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    return {(s.labels["model_id"], s.labels["feature"], s.labels["score"]): s.value
            for family in metrics.registry.collect()
            if family.name == "streamdrift_feature_drift_score" for s in family.samples}


def test_drift_scores_are_exported_per_feature_once_the_window_is_full() -> None:
    values = simulated(Scenario(events=2000, seed=4, missing_rate=0.0))
    h = Harness(one_partition(values[:WARMUP + 100]), detectors=SCORES).run()
    assert score_series(h.metrics) == {}  # past the warm-up, the window not full yet

    h = Harness(one_partition(values), detectors=SCORES).run()
    exported = score_series(h.metrics)
    bank = h.loop.banks[0]
    assert exported == {("credit-risk", feature, name): value
                        for _, feature, scores in bank.drift_scores()
                        for name, value in scores.items()}
    assert drift_score(h.metrics, "country", "psi") is not None
    assert drift_score(h.metrics, "country", "wasserstein") is None  # categorical
    assert drift_score(h.metrics, "balance", "wasserstein") is not None
    assert drift_score(h.metrics, "prediction", "jensen_shannon") is not None
    # Stationary, but a 200-value reference and a 400-value window: PSI's noise alone is
    # about 9 / 200 + 9 / 400; still under the 0.25 "significant change" line.
    assert all(v < 0.25 for (_, _, name), v in exported.items() if name == "psi")


def test_stationary_drift_scores_stay_under_the_no_change_line_with_the_defaults() -> None:
    values = simulated(Scenario(events=3000, seed=4, missing_rate=0.0))
    h = Harness(one_partition(values), detectors=DetectorConfig()).run()
    exported = score_series(h.metrics)
    assert len(exported) == 8 * 2 + 6  # 8 series (6 numeric, with the prediction)
    # Warm-up and window of 1,000: PSI about 0.02 without drift, under the 0.1 line.
    assert all(v < 0.1 for (_, _, name), v in exported.items() if name == "psi")
    assert all(v < 0.15 for (_, _, name), v in exported.items() if name != "psi")


def test_drift_score_shows_a_shift_the_detectors_do_not_reset() -> None:
    quiet = NumericSettings(adwin=AdwinSettings(enabled=False),
                            spread=AdwinSettings(enabled=False),
                            page_hinkley=PageHinkleySettings(enabled=False))
    config = DetectorConfig(warmup=WARMUP, recent_window=400, numeric=quiet,
                            anchored={"enabled": False})
    scenario = Scenario(events=2000, seed=5, drift_at=1000, drift_feature="balance",
                        shift=1.0, missing_rate=0.0)
    h = Harness(one_partition(simulated(scenario)), detectors=config).run()
    assert not [a for a in h.alerts.sent if a["feature"] == "balance"]
    shifted = drift_score(h.metrics, "balance", "wasserstein")
    steady = drift_score(h.metrics, "utilization", "wasserstein")
    assert shifted is not None and steady is not None
    assert shifted > 0.5 > steady
    assert (drift_score(h.metrics, "balance", "psi") or 0.0) > 0.25


def test_drift_score_labels_are_bounded_like_the_other_feature_metrics() -> None:
    metrics = Metrics(max_features=2)
    h = Harness(one_partition(simulated(Scenario(events=1000, seed=6, missing_rate=0.0))),
                detectors=SCORES, metrics=metrics).run()
    exported = score_series(metrics)
    features = {feature for _, feature, _ in exported}
    assert len(features) == 3 and "other" in features
    # The two admitted are the ones streamdrift_feature_drift_active would show: the
    # first features that metrics.feature() saw for the model.
    admitted = features - {"other"}
    assert all(metrics.feature("credit-risk", f) == f for f in admitted)
    # 'other' shows the largest score of the features it stands for.
    scores = h.loop.banks[0].drift_scores()
    rest = [s["psi"] for _, f, s in scores if f not in admitted]
    assert exported[("credit-risk", "other", "psi")] == max(rest)


def test_revoked_partition_drift_scores_are_removed_and_others_kept() -> None:
    values = simulated(Scenario(events=800, seed=7, missing_rate=0.0))
    other = simulated(Scenario(events=800, seed=8, models=("fraud",), missing_rate=0.0))
    h = Harness([], detectors=SCORES)
    h.loop.assigned([(TOPIC, 0), (TOPIC, 1)])
    batch = RecordBatch()
    for offset, (a, b) in enumerate(zip(values, other, strict=True)):
        batch.append(TOPIC, 0, offset, RECORD_MS, None, a)
        batch.append(TOPIC, 1, offset, RECORD_MS, None, b)
    h.loop.process(batch)
    h.loop.export_scores(now=True)
    models = {m for m, _, _ in score_series(h.metrics)}
    assert models == {"credit-risk", "fraud"}

    h.loop.revoked([(TOPIC, 0)])

    assert {m for m, _, _ in score_series(h.metrics)} == {"fraud"}
    h.loop.export_scores(now=True)  # a parked partition's bank is not exported
    assert {m for m, _, _ in score_series(h.metrics)} == {"fraud"}
    h.loop.assigned([(TOPIC, 0)])  # given back: its kept bank's scores return
    h.loop.export_scores(now=True)
    assert {m for m, _, _ in score_series(h.metrics)} == {"credit-risk", "fraud"}


def test_a_model_on_two_partitions_shows_its_larger_score() -> None:
    metrics = Metrics()
    metrics.set_drift_scores(0, [("m", "x", {"psi": 0.3, "jensen_shannon": 0.1})])
    metrics.set_drift_scores(1, [("m", "x", {"psi": 0.05, "jensen_shannon": 0.2})])
    assert drift_score(metrics, "x", "psi", "m") == 0.3
    assert drift_score(metrics, "x", "jensen_shannon", "m") == 0.2
    metrics.set_drift_scores(0, [])  # partition 0's series warms up again
    assert drift_score(metrics, "x", "psi", "m") == 0.05
    metrics.forget_drift_scores(1)
    assert score_series(metrics) == {}


def test_drift_scores_are_computed_at_most_once_per_interval(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = one_partition(simulated(Scenario(events=1200, seed=9, missing_rate=0.0)))
    calls: list[int] = []
    real = DetectorBank.drift_scores

    def counting(bank: DetectorBank) -> list[tuple[str, str, dict[str, float]]]:
        calls.append(1)
        return real(bank)

    monkeypatch.setattr(DetectorBank, "drift_scores", counting)
    monkeypatch.setattr("stream.loop.SCORES_SHARE", math.inf)  # no spacing by cost
    for seconds, expected in ((1e9, 2), (0.0, 12)):  # the first batch and the end; every batch
        monkeypatch.setattr("stream.loop.SCORES_SECONDS", seconds)
        calls.clear()
        Harness(values, batch_size=100, detectors=SCORES).run()
        assert len(calls) == expected, seconds


def test_values_of_the_other_kind_are_counted_per_feature() -> None:
    events = [orjson.dumps({"event_id": f"e{i}", "model_id": "m",
                            "features": {"amount": "n/a" if i in (30, 31) else float(i)}})
              for i in range(60)]
    h = Harness(one_partition(events)).run()
    assert h.sample("streamdrift_feature_values_mistyped_total", model_id="m",
                    feature="amount") == 2.0


def test_model_performance_gauges_follow_the_model_task() -> None:
    """c07 (issue 12): integer classes 0/1/2, errors 4.8% -> 36.8% from event 3,000."""
    path = Path(__file__).resolve().parents[1] / "data" / "cases" / "c07_int_classes.jsonl.gz"
    values = gzip.decompress(path.read_bytes()).splitlines()
    h = Harness(one_partition(values[:3000]), batch_size=7).run()
    assert 0.03 < h.sample("streamdrift_model_error_rate", model_id="m") < 0.07  # type: ignore[operator]
    h = Harness(one_partition(values), batch_size=2000).run()
    assert 0.33 < h.sample("streamdrift_model_error_rate", model_id="m") < 0.41  # type: ignore[operator]
    accuracy = h.sample("streamdrift_model_performance", model_id="m", model_version="",
                        metric="accuracy")
    assert accuracy is not None and 0.59 < accuracy < 0.67
    assert h.sample("streamdrift_model_performance", model_id="m", model_version="",
                    metric="roc_auc") is None  # multiclass: no binary metric
    assert h.sample("streamdrift_labels_total", model_id="m", outcome="joined") == 9000
    assert [(a["feature"], a["kind"]) for a in h.alerts.sent if a["kind"] == "concept_drift"
            ] == [("error_rate", "concept_drift")]


def test_estimated_performance_gauge_before_any_label() -> None:
    rows = []
    for i in range(3000):
        top = 0.9 if i % 2 else 0.7
        rows.append(orjson.dumps({"event_id": f"e{i}", "model_id": "clf", "features": {},
                                  "prediction": {"a": top, "b": round(1 - top, 2)}}))
    h = Harness(one_partition(rows)).run()
    assert h.sample("streamdrift_model_estimated_performance", model_id="clf",
                    metric="accuracy") == pytest.approx(0.8)
    band = h.sample("streamdrift_model_estimated_performance", model_id="clf",
                    metric="accuracy_band")
    assert band is not None and 0 < band < 0.1


class ResizableSource(ListSource):
    """A ListSource whose poll size the loop may change, as KafkaSource's."""

    def resize(self, records: int) -> None:
        self.batch_size = records


@pytest.mark.parametrize(("batch_size", "sizes"), [
    ("auto", [2000, 2000, 3000]),  # 12 models seen in the second batch: 250 each
    (700, [700, 700, 700]),  # a number is used as it is
])
def test_polls_grow_with_the_models_monitored_only_with_auto(
        batch_size: int | str, sizes: list[int]) -> None:
    models = [f"m{i}" for i in range(12)]
    # Two models for 2,000 records, then all twelve.
    records = one_partition([valid_event(i, models[i % (2 if i < 2000 else 12)])
                             for i in range(7000)])
    calls: list[Any] = []
    source = ResizableSource(records, 2000 if batch_size == "auto" else 700, calls)
    config = AppConfig(detectors=DetectorConfig(warmup=WARMUP), kafka={"batch_size": batch_size})
    loop = RunLoop(source, RecordingAlertSink(calls), RecordingDeadLetterSink(calls), config,
                   Metrics())
    loop.run()
    assert [len(b) for b in source.batches][:3] == sizes
