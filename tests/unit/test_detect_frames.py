"""detect(df): the role columns (prediction, label, model_id/model, model_version, event_id,
timestamp) are read as such, other columns as features only when their dtype is one, and
an input that ends during the warm-up says so."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pandas as pd
import pytest

from detectors import DetectorConfig, detect
from detectors.frames import FrameColumnWarning, WarmingUpWarning, frame_events

START = 1_767_225_600  # 2026-01-01T00:00:00Z


def rows(n: int = 8000, change_at: int = 4000, seed: int = 1) -> list[dict[str, Any]]:
    """Two models; from ``change_at`` the labels agree less with the score (concept drift)
    while every feature and the score keep their distribution."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        score = rng.random()
        wrong = rng.random() < (0.1 if i < change_at else 0.35)
        out.append({"model": "a" if i % 2 else "b", "event_id": f"e{i}", "model_version": "3",
                    "timestamp": pd.Timestamp(START + i, unit="s"), "x": rng.gauss(0, 1),
                    "c": rng.choice("pq"), "prediction": round(score, 3),
                    "label": int((score >= 0.5) != wrong)})
    return out


def as_dicts(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"model_id": r["model"], "event_id": r["event_id"],
             "model_version": r["model_version"], "timestamp": r["timestamp"].timestamp(),
             "features": {"x": r["x"], "c": r["c"]}, "prediction": r["prediction"],
             "label": r["label"]} for r in table]


def quiet_detect(*args: Any, **kwargs: Any) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected
        return detect(*args, **kwargs)


def test_a_frame_finds_what_the_same_rows_as_event_dicts_find() -> None:
    table = rows()
    from_frame = quiet_detect(pd.DataFrame(table))
    assert from_frame == quiet_detect(as_dicts(table))
    concept = [s for s in from_frame if s.kind == "concept_drift"]
    assert {s.model_id for s in concept} == {"a", "b"}  # the `model` column, not "model"
    assert all(s.position >= 4000 for s in concept)
    # prediction and label were not monitored as features
    assert not {s.feature for s in from_frame} & {"prediction", "label", "event_id"}


def test_role_columns_are_not_features() -> None:
    frame = pd.DataFrame(rows(n=3))
    first = next(frame_events(frame))
    assert first["features"].keys() == {"x", "c"}
    assert first["model_id"] == "b" and first["model_version"] == "3"
    assert first["event_id"] == "e0" and first["label"] in (0, 1)
    assert first["timestamp"] == float(START)  # a naive datetime64 is UTC


def test_columns_names_other_columns_for_a_role_or_turns_one_off() -> None:
    table = rows()
    renamed = pd.DataFrame(table).rename(columns={"timestamp": "ts", "label": "y",
                                                  "model": "m"})
    assert quiet_detect(renamed, columns={"timestamp": "ts", "label": "y", "model_id": "m"}
                        ) == quiet_detect(pd.DataFrame(table))
    plain = next(frame_events(pd.DataFrame(table[:1]), columns={"label": None}))
    assert "label" in plain["features"] and "label" not in plain
    with pytest.raises(ValueError, match="unknown role"):
        detect(pd.DataFrame(table[:5]), columns={"time": "timestamp"})
    with pytest.raises(ValueError, match="'nope' is not a column"):
        detect(pd.DataFrame(table[:5]), columns={"timestamp": "nope"})
    with pytest.raises(TypeError, match="DataFrame"):
        detect(as_dicts(table[:5]), columns={"timestamp": "ts"})


def test_datetime_and_other_non_feature_columns_are_skipped_with_a_warning() -> None:
    frame = pd.DataFrame(rows(n=10))
    frame["signup"] = pd.to_datetime(frame["timestamp"]) - pd.Timedelta(days=3)
    frame["wait"] = pd.to_timedelta(frame.index, unit="s")
    frame["tags"] = [["t"]] * len(frame)
    frame["flag"] = frame.index % 2 == 0  # a boolean: a (categorical) feature
    with pytest.warns(FrameColumnWarning) as caught:
        first = next(frame_events(frame))
    message = str(caught[0].message)
    for name in ("'signup' (datetime64", "'wait' (timedelta64", "'tags' (object (list))"):
        assert name in message
    assert "columns={'timestamp': NAME}" in message
    assert first["features"].keys() == {"x", "c", "flag"}


def test_an_input_that_ends_during_the_warm_up_warns_instead_of_a_silent_empty_list() -> None:
    with pytest.warns(WarmingUpWarning, match=r"6 of 6 series were still warming up "
                                              r".*a/prediction.*warmup=1000"):
        assert detect(pd.DataFrame(rows(n=300))) == []
    # Long enough: no warning (quiet_detect turns one into an error).
    quiet_detect(pd.DataFrame(rows(n=3000)), DetectorConfig(warmup=500))


def test_missing_values_are_missing_not_nan_strings() -> None:
    frame = pd.DataFrame({"x": [1.0, None], "c": ["a", None], "label": [1, None]})
    events = list(frame_events(frame))
    assert events[1]["features"] == {"x": None, "c": None}
    assert events[1]["label"] is None and events[0]["model_id"] == "model"
