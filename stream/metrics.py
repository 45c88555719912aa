"""Prometheus metrics (docs/contracts.md lists them), with label values bounded.

Label values come from the data, so a bad producer could create a series per
event. ``LabelBound`` admits the first N distinct values and counts the rest
under ``other``.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter as Counter_  # prometheus_client has a Counter too
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app

from stream import __version__
from stream.web import BasicAuth, MetricsServer, WebConfig

OTHER = "other"


class LabelBound:
    """Admits at most ``limit`` distinct values; later ones read as ``other``.

    >>> b = LabelBound(2)
    >>> [b("a"), b("b"), b("c"), b("a")]
    ['a', 'b', 'other', 'a']
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    """Every metric of one process, in its own registry (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None, max_models: int = 100,
                 max_features: int = 200) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.model = LabelBound(max_models)
        self._feature_bounds: dict[str, LabelBound] = {}
        self.max_features = max_features
        self.events = Counter("streamdrift_events", "Valid events processed.", ["model_id"],
                              registry=r)
        self.invalid = Counter("streamdrift_events_invalid",
                               "Records rejected to the dead-letter queue, by reason.",
                               ["reason"], registry=r)
        self.alerts = Counter("streamdrift_drift_alerts", "Drift alerts published.",
                              ["model_id", "feature", "kind", "detector"], registry=r)
        self.drift_active = Gauge("streamdrift_feature_drift_active",
                                  "1 while a feature is in its post-alert cooldown.",
                                  ["model_id", "feature"], registry=r)
        self.drift_score = Gauge(
            "streamdrift_feature_drift_score",
            "Drift score of a feature's recent window against its reference: psi (population "
            "stability index), jensen_shannon (distance, 0..1), wasserstein (Wasserstein-1 in "
            "reference standard deviations).", ["model_id", "feature", "score"], registry=r)
        # Per input partition, its latest scores under their bounded label values.
        self._scores: dict[int, dict[tuple[str, str, str], float]] = {}
        self.batch_duration = Histogram(
            "streamdrift_batch_duration_seconds", "Time to process one batch, commit included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r)
        self.lag = Gauge("streamdrift_consumer_lag", "Records behind the end of the partition.",
                         ["topic", "partition"], registry=r)
        self.last_event = Gauge("streamdrift_last_event_timestamp_seconds",
                                "Event time of the newest event seen, per model (trusted "
                                "times only: limits.max_clock_skew_seconds).", ["model_id"],
                                registry=r)
        self.clock_skew = Counter(
            "streamdrift_events_clock_skew",
            "Events (and labels) whose time ran further ahead of their record timestamp than "
            "limits.max_clock_skew_seconds: not trusted (processed with the record timestamp, "
            "or dead-lettered, per limits.clock_skew_policy).", ["model_id"], registry=r)
        self.series_unmonitored = Gauge(
            "streamdrift_series_unmonitored",
            "Models (reason max_models) and model features (reason max_features_per_model) "
            "past the detectors' bounds, so not monitored now; summed over the assigned "
            "partitions.", ["reason"], registry=r)
        self.events_unmonitored = Counter(
            "streamdrift_events_unmonitored",
            "Events of models past detectors.max_models (reason max_models) and values of "
            "features past detectors.max_features_per_model (reason "
            "max_features_per_model): not monitored.", ["reason"], registry=r)
        self.models_retired = Counter(
            "streamdrift_models_retired",
            "Models idle for detectors.retire_idle_models_seconds whose detector state was "
            "dropped to make room for a new model.", registry=r)
        self.checkpoint_duration = Histogram(
            "streamdrift_checkpoint_duration_seconds",
            "Time to make alerts, detector state and offsets durable (or commit the transaction).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r)
        self.state_bytes = Gauge("streamdrift_state_bytes",
                                 "Size of the last detector-state snapshot written, per partition.",
                                 ["partition"], registry=r)
        self.restore_duration = Histogram(
            "streamdrift_state_restore_seconds",
            "Time to restore the detector state of newly assigned partitions.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0), registry=r)
        self.state_rejected = Counter(
            "streamdrift_state_rejected",
            "Detector-state snapshots refused on restore, by reason (stream/state.py's "
            "REJECT_REASONS).", ["reason"], registry=r)
        self.labels = Counter("streamdrift_labels",
                              "Labels by what became of them: joined to their prediction, late "
                              "(prediction expired), orphan (no prediction), duplicate, or "
                              "expired (a prediction that never got its label).",
                              ["model_id", "outcome"], registry=r)
        self.join_store = Gauge("streamdrift_label_join_store_size",
                                "Predictions waiting for their label and labels waiting for "
                                "their prediction, assigned partitions.", registry=r)
        self.labels_held = Gauge("streamdrift_labels_held",
                                 "Labels read but held until their partition's events pass "
                                 "their timestamp.", registry=r)
        self.label_delay = Histogram(
            "streamdrift_label_delay_seconds",
            "Event time from a prediction to its label, for joined labels.",
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400),
            registry=r)
        self.error_rate = Gauge("streamdrift_model_error_rate",
                                "Realized error rate of recent joined labels, per model.",
                                ["model_id"], registry=r)
        self.performance = Gauge(
            "streamdrift_model_performance",
            "Realized performance of the last detectors.concept.recent_window joined labels, "
            "per model version: accuracy, error_rate, precision, recall, roc_auc (binary); mae, "
            "rmse (regression).", ["model_id", "model_version", "metric"], registry=r)
        self.estimated = Gauge(
            "streamdrift_model_estimated_performance",
            "Performance estimated from calibrated probabilities before labels (CBPE), last "
            "window of predictions: accuracy, roc_auc (binary), and <metric>_band, the half-width "
            "of each one's confidence band.", ["model_id", "metric"], registry=r)
        self._versions: dict[str, LabelBound] = {}
        self.mistyped = Counter(
            "streamdrift_feature_values_mistyped",
            "Values of the other kind than their series' (a string in a numeric feature, a "
            "number in a categorical one), counted as missing for the series.",
            ["model_id", "feature"], registry=r)
        self.categories_capped = Counter(
            "streamdrift_category_values_capped",
            "Categorical values longer than limits.max_category_bytes, replaced by a digest.",
            registry=r)
        self.build = Info("streamdrift_build", "Version of the running streamdrift.", registry=r)
        self.build.info({"version": __version__})

    def feature(self, model_id: str, feature: str) -> str:
        """The feature's label value: bounded per bounded model label, so every model
        past ``max_models`` (all ``other``) shares one ``other`` feature label too."""
        if self.model(model_id) == OTHER:
            return OTHER
        bound = self._feature_bounds.get(model_id)
        if bound is None:
            bound = self._feature_bounds[model_id] = LabelBound(self.max_features)
        return bound(feature)

    def version(self, model_id: str, version: str) -> str:
        """The model version's label value: at most 10 per bounded model label."""
        if self.model(model_id) == OTHER:
            return OTHER
        bound = self._versions.get(model_id)
        if bound is None:
            bound = self._versions[model_id] = LabelBound(10)
        return bound(version)

    def set_drift_scores(self, partition: int,
                         scores: Iterable[tuple[str, str, Mapping[str, float]]]) -> None:
        """A partition's current (model_id, feature, {score: value}) replace its previous ones.

        The gauge shows, per bounded (model_id, feature) label pair and score, the largest
        value any partition reports: a model spread over partitions shows its worst one,
        and so do the features counted under ``other``. A series no partition reports any
        more (warming up again, or its partition went away) is removed.
        """
        new: dict[tuple[str, str, str], float] = {}
        for model_id, feature, values in scores:
            labels = (self.model(model_id), self.feature(model_id, feature))
            for name, value in values.items():
                key = (*labels, name)
                if value > new.get(key, -math.inf):
                    new[key] = value
        old = self._scores.pop(partition, {})
        if new:
            self._scores[partition] = new
        self._publish_scores([k for k in old.keys() | new.keys() if old.get(k) != new.get(k)])

    def forget_drift_scores(self, partition: int) -> None:
        """The partition is no longer ours: its scores leave the gauge."""
        self._publish_scores(list(self._scores.pop(partition, {})))

    def _publish_scores(self, keys: Iterable[tuple[str, str, str]]) -> None:
        for key in keys:
            values = [scores[key] for scores in self._scores.values() if key in scores]
            if values:
                self.drift_score.labels(*key).set(max(values))
            else:
                with contextlib.suppress(KeyError):  # never published
                    self.drift_score.remove(*key)

    def count_events(self, model_ids: Iterable[str]) -> None:
        for m, n in Counter_(model_ids).items():
            self.events.labels(self.model(m)).inc(n)

    def serve(self, host: str, port: int, live: Probe | None = None,
              ready: Probe | None = None, web: WebConfig | None = None) -> MetricsServer:
        """Serve /metrics, /healthz and /readyz in the background (stream/web.py: bounded
        threads and timeouts; TLS and basic auth from ``web``). The server's ``port`` is
        the bound one (useful with port 0); ``close()`` stops it."""
        app: Any = HealthApp(make_wsgi_app(self.registry), live or _always, ready or _always)
        web = web or WebConfig()
        if web.basic_auth_users:
            app = BasicAuth(app, web.basic_auth_users)
        return MetricsServer(app, host, port, tls=web.ssl_context())


Probe = Callable[[], tuple[bool, str]]


def _always() -> tuple[bool, str]:
    return True, "ok"


class HealthApp:
    """/healthz (alive) and /readyz (ready) for container and Kubernetes probes; the rest
    is Prometheus' exposition."""

    def __init__(self, metrics_app: Any, live: Probe, ready: Probe) -> None:
        self.metrics_app, self.probes = metrics_app, {"/healthz": live, "/readyz": ready}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        probe = self.probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return self.metrics_app(environ, start_response)  # type: ignore[no-any-return]
        ok, why = probe()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "text/plain; charset=utf-8")])
        return [why.encode() + b"\n"]

