"""Alerts follow docs/contracts.md's alert contract; metric label values are bounded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors import DriftSignal
from stream import __version__
from stream.alerts import alert_id, build_alert, encode_alert
from stream.metrics import OTHER, LabelBound, Metrics

POSITION: dict[str, Any] = {"model_id": "credit-risk", "feature": "income", "kind": "data_drift",
                            "detector": "adwin", "topic": "model-events", "partition": 0,
                            "offset": 61234}


def signal(**changes: Any) -> DriftSignal:
    fields: dict[str, Any] = {
        "position": 3, "model_id": "credit-risk", "model_version": "7", "feature": "income",
        "kind": "data_drift", "detector": "adwin",
        "stats": {"before": {"mean": 0.01, "n": 60000}, "after": {"mean": 0.74, "n": 1234}}}
    fields.update(changes)
    return DriftSignal(**fields)


def test_alert_id_is_deterministic_across_processes_and_releases() -> None:
    # A consumer drops duplicates by alert_id after a restart or an upgrade, so the id is a
    # fixed function of the source position (no per-process hash seed, no version in it).
    assert alert_id(**POSITION) == "8623e912a82be4140001cd49d8405e0e"


@pytest.mark.parametrize(
    ("field", "other"),
    [("model_id", "fraud"), ("feature", "age"), ("kind", "prediction_drift"),
     ("detector", "page_hinkley"),
     ("topic", "other-events"), ("partition", 1), ("offset", 61235)],
)
def test_alert_id_differs_when_any_identifying_field_differs(field: str, other: Any) -> None:
    assert alert_id(**{**POSITION, field: other}) != alert_id(**POSITION)


def test_a_segment_alert_names_its_segment_and_has_its_own_id() -> None:
    alert = build_alert(signal(segment=("country", "ES")), "e-1", None, "model-events", 0,
                        61234, "abc")
    assert alert["segment"] == {"feature": "country", "value": "ES"}
    assert list(alert["segment"]) == ["feature", "value"]
    assert alert["alert_id"] == alert_id(**POSITION, segment=("country", "ES"))
    assert alert["alert_id"] != alert_id(**POSITION)  # never the whole traffic's id
    assert alert_id(**POSITION, segment=("country", "FR")) != alert["alert_id"]


def test_alert_id_fields_cannot_run_into_each_other() -> None:
    # ("ab", "c") and ("a", "bc") must not hash the same key.
    assert alert_id(**{**POSITION, "model_id": "ab", "feature": "c"}) != alert_id(
        **{**POSITION, "model_id": "a", "feature": "bc"})


def test_alert_has_exactly_the_contract_keys_in_order() -> None:
    alert = build_alert(signal(), "e-061234", 1_795_705_802.0, "model-events", 0, 61234, "abc")
    assert list(alert) == ["alert_id", "model_id", "model_version", "feature", "segment",
                           "kind", "detector", "event_id", "event_time", "source", "stats",
                           "config_hash", "version"]
    assert alert["segment"] is None  # a series of the whole traffic
    assert alert["source"] == {"topic": "model-events", "partition": 0, "offset": 61234}
    assert list(alert["source"]) == ["topic", "partition", "offset"]
    assert list(alert["stats"]) == ["before", "after"]
    assert alert["alert_id"] == alert_id(**POSITION)
    assert alert["event_time"] == "2026-11-26T15:10:02.000Z"
    assert (alert["config_hash"], alert["version"]) == ("abc", __version__)


def test_encoded_alert_keeps_the_contract_key_order() -> None:
    alert = build_alert(signal(), "e-1", None, "model-events", 0, 1, "abc")
    decoded = orjson.loads(encode_alert(alert))
    assert list(decoded) == list(alert)
    assert decoded == alert
    assert decoded["event_time"] is None  # no event time known: null, not a made-up one


def test_same_signal_encodes_to_the_same_bytes() -> None:
    first = encode_alert(build_alert(signal(), "e-1", 1.5, "t", 2, 9, "h"))
    second = encode_alert(build_alert(signal(), "e-1", 1.5, "t", 2, 9, "h"))
    assert first == second


def test_label_bound_admits_the_first_n_values_and_the_rest_read_other() -> None:
    bound = LabelBound(3)
    assert [bound(v) for v in ["a", "b", "c", "d", "a", "e"]] == ["a", "b", "c", OTHER, "a",
                                                                    OTHER]


def test_101st_model_is_counted_under_other() -> None:
    metrics = Metrics(max_models=100)
    models = [f"model-{i:03d}" for i in range(101)]
    metrics.count_events([*models, "model-000", "model-100"])

    def events_total(model_id: str) -> float | None:
        return metrics.registry.get_sample_value("streamdrift_events_total",
                                                 {"model_id": model_id})

    assert events_total("model-000") == 2
    assert events_total("model-099") == 1
    assert events_total("model-100") is None
    assert events_total(OTHER) == 2


def test_features_beyond_max_features_are_labelled_other_per_model() -> None:
    metrics = Metrics(max_features=2)
    assert [metrics.feature("m", f) for f in ["a", "b", "c"]] == ["a", "b", OTHER]
    assert metrics.feature("n", "c") == "c"  # the bound is per model


def test_metrics_use_their_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.count_events(["m"])
    assert first.registry is not second.registry
    assert second.registry.get_sample_value("streamdrift_events_total", {"model_id": "m"}) is None
    assert first.registry.get_sample_value("streamdrift_build_info",
                                           {"version": __version__}) == 1
