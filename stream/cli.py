"""``streamdrift``: run, replay, backtest, simulate, check-config (contracts: docs/contracts.md).

Only the standard library is imported before the arguments are parsed (``--version`` and
``--help`` answer at once); each command imports what it uses.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream import __version__

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from stream.config import AppConfig
    from stream.events import Rejected
    from stream.loop import LoopStats, RunLoop
    from stream.records import RecordBatch
    from stream.sources import KafkaSource

log = logging.getLogger("streamdrift")

EXIT_CONFIG = 2  # a bad config or argument
EXIT_UNAVAILABLE = 3  # Kafka unreachable, or records could not be made durable
EXIT_AUTH = 4  # Kafka refused our credentials or TLS handshake, or an ACL refused an action
EXIT_ALL_REJECTED = 5  # replay: there were records, and every one was rejected
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) outside a loop, or a second SIGTERM/SIGINT

#: ``simulate`` stopped by SIGTERM or SIGINT: seconds it waits for the broker to take
#: the records already queued before it reports those it did not take.
SIMULATE_STOP_FLUSH_SECONDS = 10.0

#: ``simulate --drift-feature`` choices: stream/simulate.py's FEATURES (a test keeps them
#: equal), spelled out so that parsing imports nothing of the detectors.
SIMULATED_FEATURES = ("income", "age", "balance", "utilization", "transactions", "country",
                      "device")

#: A warning or error line of one kind is logged at most once per this many seconds.
WARNING_REPEAT_SECONDS = 30.0


#: Config-backed flags of ``run``: flag -> (config key, what it names). The help shows
#: each default from the config schema (a test keeps the text equal to it).
_RUN_FLAGS = {
    "events-topic": ("kafka.events_topic", "model-events", "topic of the events to watch"),
    "labels-topic": ("kafka.labels_topic", "none",
                     "topic of labels that arrive after their events (concept drift)"),
    "alerts-topic": ("kafka.alerts_topic", "drift-alerts", "topic the alerts are published to"),
    "dlq-topic": ("kafka.dlq_topic", "model-events-dlq",
                  "topic rejected records go to, with the reason"),
    "group-id": ("kafka.group_id", "streamdrift",
                 "consumer group; its detector state is in the topic <group-id>-state"),
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="YAML config file (default: none; built-in defaults, then "
                        "STREAMDRIFT_* variables, then flags)")
    p.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS",
                   help="Kafka brokers, host:port[,host:port] (kafka.bootstrap_servers; "
                        "default: localhost:9092)")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log lines on stderr from this level on (default: INFO)")


def build_parser() -> argparse.ArgumentParser:
    """The command line; building and parsing it imports nothing beyond the standard
    library (``stream`` itself)."""
    parser = argparse.ArgumentParser(
        prog="streamdrift",
        description="Watch ML model events for drift: run (live, a Kafka consumer group), "
                    "replay (a file or a topic's time range), backtest (configs side by "
                    "side, an HTML report), simulate, check-config.",
        epilog=f"exit codes: 0 done, {EXIT_CONFIG} bad config or argument, {EXIT_UNAVAILABLE} "
               f"Kafka unreachable or records not made durable, {EXIT_AUTH} Kafka "
               f"authentication failed or not authorized (check kafka.security), "
               f"{EXIT_ALL_REJECTED} replay rejected every record, {EXIT_INTERRUPTED} "
               "interrupted (Ctrl-C outside a loop, or a second signal). "
               "Event, label, alert, dead-letter, metrics, CLI and config contracts: "
               "docs/contracts.md in the repository")
    parser.add_argument("--version", action="version", version=f"streamdrift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="consume events, detect drift, publish alerts",
                         description="Consume the events (and labels) topic as a member of "
                                     "the consumer group; publish alerts, dead letters and "
                                     "detector state; serve Prometheus metrics. SIGTERM or "
                                     "SIGINT: finish the batch, checkpoint, exit 0.")
    _common(run)
    for flag, (key, default, what) in _RUN_FLAGS.items():
        run.add_argument(f"--{flag}", dest=key, metavar="NAME",
                         help=f"{what} ({key}; default: {default})")
    run.add_argument("--metrics-port", dest="metrics.port", type=int, metavar="PORT",
                     help="serve /metrics, /healthz and /readyz on this port, 0 for any free "
                          "one (metrics.port; default: 9108)")
    run.add_argument("--processing-guarantee", dest="kafka.processing_guarantee",
                     choices=["at-least-once", "exactly-once"],
                     help="at-least-once: a crash may repeat alerts (their alert_id is "
                          "stable); exactly-once: Kafka transactions "
                          "(kafka.processing_guarantee; default: at-least-once)")

    replay = sub.add_parser(
        "replay", help="run the same loop over a file or a time range",
        description="Run the detectors over a JSON-lines file (plain or gzip, '-' for "
                    "stdin) or a topic's time range; never commits. A progress display on "
                    "stderr when it is a terminal; a one-line summary at the end.")
    _common(replay)
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE.jsonl",
                        help="events, one JSON object per line; gzip is recognised by its "
                             "content (e.g. FILE.jsonl.gz); '-' reads stdin")
    source.add_argument("--topic", metavar="T", help="a topic, every partition")
    replay.add_argument("--from", dest="start", metavar="TIME", type=_time,
                        help="first event time, RFC 3339 (without offset: UTC) or epoch "
                             "seconds: the record timestamp on a topic, each event's "
                             "'timestamp' in a file (default: the beginning)")
    replay.add_argument("--to", dest="end", metavar="TIME", type=_time,
                        help="event time to stop before, as --from (default: the end of "
                             "the file, or the end offsets seen at start)")
    replay.add_argument("--labels-topic", dest="kafka.labels_topic", metavar="L",
                        help="with --topic: join the labels of this topic over the same "
                             "range (default: none)")
    replay.add_argument("--output", metavar="FILE.jsonl", type=_writable,
                        help="alerts as JSON lines (default: stdout)")
    replay.add_argument("--dlq-output", metavar="FILE.jsonl", type=_writable,
                        help="rejected records as JSON lines (default: a warning per "
                             "record on stderr)")
    replay.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show the progress display (default: only when stderr is a "
                             "terminal)")

    sim = sub.add_parser("simulate", help="write a synthetic, optionally drifting stream",
                         description="Write a synthetic, reproducible stream of events "
                                     "(the same --seed gives the same bytes).")
    _common(sim)
    target = sim.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", metavar="FILE.jsonl", type=_writable,
                        help="write the events to this file")
    target.add_argument("--topic", metavar="T",
                        help="produce the events to this topic, keyed by model_id")
    sim.add_argument("--events", type=_COUNT, default=100_000, metavar="N",
                     help="number of events (default: 100000)")
    sim.add_argument("--seed", type=int, default=0, metavar="S",
                     help="random seed (default: 0)")
    sim.add_argument("--drift-at", type=_COUNT, metavar="K",
                     help="first drifting event (default: no drift)")
    sim.add_argument("--drift-period", type=_number(int, 1), metavar="N",
                     help="after --drift-at, switch the drift off and on every N events "
                          "(default: drift stays on)")
    sim.add_argument("--drift-feature", default="income", choices=SIMULATED_FEATURES,
                     metavar="NAME",
                     help=f"the drifting feature: {', '.join(SIMULATED_FEATURES)} "
                          "(default: income)")
    sim.add_argument("--shift", type=float, default=1.0, metavar="SIGMAS",
                     help="shift in standard deviations; categorical: a share "
                          "min(1, SIGMAS/4) becomes a new category (default: 1.0)")
    sim.add_argument("--models", default="credit-risk", metavar="A,B", type=_model_ids,
                     help="comma-separated model ids, events go round-robin "
                          "(default: credit-risk)")
    sim.add_argument("--missing-rate", type=_SHARE, default=0.01, metavar="SHARE",
                     help="share of missing 'balance' values (default: 0.01)")
    sim.add_argument("--invalid-rate", type=_SHARE, default=0.0, metavar="SHARE",
                     help="share of records that break the event contract (default: 0)")
    sim.add_argument("--start", type=_time, metavar="TIME",
                     help="event time of the first event (default: 2026-01-01T00:00:00Z "
                          "in a file, now on a topic)")
    sim.add_argument("--rate", type=_number(float, 0.0, above=True), metavar="EVENTS_PER_S",
                     help="produce at this pace in real time (default: as fast as possible)")
    sim.add_argument("--partitions", type=_number(int, 1), default=3, metavar="N",
                     help="partitions of the topic if it has to be created (default: 3)")
    sim.add_argument("--labels-topic", metavar="L",
                     help="with --topic: also write the events' labels here, keyed alike "
                          "(default: none)")
    sim.add_argument("--labels-output", metavar="FILE.jsonl", type=_writable,
                     help="with --output: also write the events' labels to this file "
                          "(default: none)")
    sim.add_argument("--concept-at", type=_COUNT, metavar="K",
                     help="from event K the label's relation to the score changes "
                          "(default: never)")
    sim.add_argument("--error-rate", type=_SHARE, default=0.1, metavar="SHARE",
                     help="share of wrong predictions (default: 0.1)")
    sim.add_argument("--concept-error-rate", type=_SHARE, default=0.2, metavar="SHARE",
                     help="share of wrong predictions from --concept-at on (default: 0.2)")
    sim.add_argument("--label-delay", type=_number(float, 0.0), default=30.0, metavar="SECONDS",
                     help="mean delay of a label after its event, exponential (default: 30)")
    sim.add_argument("--unlabeled-rate", type=_SHARE, default=0.0, metavar="SHARE",
                     help="share of events that never get a label (default: 0)")

    _backtest_parser(sub)

    check = sub.add_parser(
        "check-config", help="validate a config file with the environment applied",
        description="Validate the config as run would see it: FILE (optional), then the "
                    "STREAMDRIFT_* variables (e.g. STREAMDRIFT_KAFKA__BATCH_SIZE=500 for "
                    "kafka.batch_size). Prints 'ok' and the config hash, or each bad key "
                    "with its path (exit 2).")
    check.add_argument("file", metavar="FILE", nargs="?",
                       help="YAML config file (default: none, the built-in defaults)")
    check.add_argument("--config", dest="config_file", metavar="FILE",
                       help="the same as FILE, as the other commands take it (default: none)")
    check.add_argument("--show", action="store_true",
                       help="also print the effective config as YAML, every key with its "
                            "value (secrets masked)")
    return parser


def _backtest_parser(sub: Any) -> None:
    bt = sub.add_parser(
        "backtest", help="replay an input once per config: an HTML report, a summary, "
                         "scores against known drifts",
        description="Replay a file or a topic's time range (as replay) once per --config "
                    "and write one self-contained HTML report; with --truth, score each "
                    "config against known drifts, side by side.")
    bt.add_argument("--config", metavar="FILE", action="append", dest="configs",
                    help="YAML config file; repeat to compare configs on the same input "
                         "(default: one run with the built-in defaults)")
    bt.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS",
                    help="Kafka brokers, host:port[,host:port], with --topic "
                         "(kafka.bootstrap_servers; default: localhost:9092)")
    bt.add_argument("--log-level", default="INFO", type=str.upper,
                    choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                    help="log lines on stderr from this level on (default: INFO)")
    source = bt.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE.jsonl",
                        help="events, as replay: plain or gzip, '-' reads stdin")
    source.add_argument("--topic", metavar="T", help="a topic, every partition, as replay")
    bt.add_argument("--from", dest="start", metavar="TIME", type=_time,
                    help="first event time, as replay --from (default: the beginning)")
    bt.add_argument("--to", dest="end", metavar="TIME", type=_time,
                    help="event time to stop before, as replay --to (default: the end)")
    bt.add_argument("--labels-topic", dest="kafka.labels_topic", metavar="L",
                    help="with --topic: join the labels of this topic over the same range "
                         "(default: none)")
    bt.add_argument("--truth", metavar="DRIFTS.jsonl", type=Path,
                    help="known drifts, one JSON object a line: model_id, feature, at, until "
                         "(default: none, no scores)")
    bt.add_argument("--report", metavar="REPORT.html", required=True, type=_writable_path,
                    help="the HTML report, one self-contained file (required; no default)")
    bt.add_argument("--summary", metavar="SUMMARY.json", type=_writable_path,
                    help="per config (named by its file): counts, alerts, truth scores "
                         "(default: none)")
    bt.add_argument("--output", metavar="FILE.jsonl", type=_writable,
                    help="the first config's alerts, as replay --output writes them "
                         "(default: none)")


def _replay_flags_refused(args: argparse.Namespace) -> str:
    """What replay and backtest refuse in their flags together, or "": a labels topic
    with a file (its events carry their labels, 'label'), --from not before --to."""
    if args.input is not None and getattr(args, "kafka.labels_topic", None):
        return ("--labels-topic goes with --topic; a file's events carry their labels "
                "themselves ('label')")
    if args.start is not None and args.end is not None and args.start >= args.end:
        return "--from must be before --to"
    return ""


def cmd_backtest(args: argparse.Namespace) -> int:
    try:
        from stream import backtest  # here: its report needs the optional extra `report`
    except ImportError as exc:
        log.error("backtest needs plotly (%s): pip install 'streamdrift[report]'", exc)
        return EXIT_CONFIG

    from stream.config import load_config
    from stream.kafka import wait_for_broker
    from stream.sources import Source, replay_source

    refused = _replay_flags_refused(args)
    if refused:
        log.error("%s", refused)
        return EXIT_CONFIG
    overrides = _overrides(args)
    configs = [(backtest.default_name(path), load_config(path, overrides=overrides))
               for path in (args.configs or [None])]

    def source(config: AppConfig) -> Source:
        # replay's own source: a file (gzip or not, '-' for stdin) or a topic's range,
        # --from/--to on event times for both.
        if args.input is None:
            wait_for_broker(config.kafka)
        return replay_source(config.kafka, path=args.input, topic=args.topic,
                             start=args.start, end=args.end,
                             max_line_bytes=config.limits.max_record_bytes)

    _collect_less()
    return backtest.main(args, configs, source, _stop_on_signals())


def _writable(text: str) -> str:
    """An output file argument, checked when the command line is read (before any work):
    '-' (stdout), or a path that is not a directory, in a directory that exists and can
    be written. argparse exits 2 naming the argument."""
    if text == "-":
        return text
    path = Path(text)
    parent = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a directory")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists()
                                                    and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    return text


def _writable_path(text: str) -> Path:
    return Path(_writable(text))


def _number(kind: Callable[[str], Any], low: float, high: float | None = None,
            above: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` at least ``low`` (more than ``low`` with
    ``above``) and at most ``high``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or (value <= low if above else value < low) or (
                high is not None and value > high):
            bound = (f"more than {low:g}" if above else f"at least {low:g}") + (
                f" and at most {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"{text}: must be {bound}")
        return value
    return parse


_COUNT = _number(int, 0)
_SHARE = _number(float, 0.0, 1.0)


def _model_ids(text: str) -> str:
    if not [m for m in text.split(",") if m]:
        raise argparse.ArgumentTypeError("at least one model id (A or A,B,...)")
    return text


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither RFC 3339 nor epoch seconds"
                                         ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if "." in k and v is not None}


#: The cyclic garbage collector's thresholds while a loop runs (Python's default: 700,
#: 10, 10). A batch allocates tens of thousands of short-lived objects (a dict per event,
#: its values) that reference counting frees; every 700 of them started a collection,
#: every 100 a scan of the middle generation and now and then one of every live object,
#: the detector state included: 1.4-1.6 us of CPU an event with 200 models (of ~24), 0.4
#: with 2 (of ~12); with these, 0.2 and 0 (bench/throughput.py's events through RunLoop in
#: process, 2026-12-02: medians of 3 interleaved runs 23.9 -> 22.7 and 11.9 -> 11.6 us).
GC_THRESHOLDS = (100_000, 20, 10)


def _collect_less() -> None:
    """Fewer cyclic collections for a long-lived loop (``gc.set_threshold``), and the
    objects alive once started (modules, config) moved out of their scans for good
    (``gc.freeze``; https://docs.python.org/3/library/gc.html). Detector state made later
    is collected as usual: freezing it would keep any cycle of it that dies."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second signal: the user means it
            raise KeyboardInterrupt
        log.info("%s: finishing the batch, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _producer_settings(config: AppConfig, **extra: Any) -> dict[str, Any]:
    from stream.kafka import client_settings
    from stream.sinks import producer_limits

    # message.max.bytes: a record the events topic may hold fits in the DLQ with headers
    # (librdkafka's default, 1,000,000, is below a broker's default record size).
    # queue.buffering.max.kbytes: a snapshot's records are produced as the broker takes
    # them, not all copied into librdkafka's queue at once.
    settings = {**client_settings(config.kafka), "acks": "all", "enable.idempotence": True,
                "linger.ms": 5, **extra}
    settings.update(config.kafka.producer)
    settings.update(producer_limits(config.kafka.producer, config.limits.max_record_bytes))
    return settings


def _producer(config: AppConfig, **extra: Any) -> Producer:
    from confluent_kafka import Producer

    return Producer(_producer_settings(config, **extra))


def live_loop(config: AppConfig, source_class: type[KafkaSource] | None = None,
              loop_class: type[RunLoop] | None = None, progress_seconds: float | None = None,
              dlq_max_bytes: int | None = None) -> RunLoop:
    """The run loop as ``run`` wires it: consumer group in; alerts, dead letters and
    detector state out; offsets committed after them (or with them, exactly-once).

    ``source_class``/``loop_class``: default ``KafkaSource``/``RunLoop``.
    ``dlq_max_bytes``: what the DLQ topic takes per record (its ``max.message.bytes``;
    None: a broker's default); dead letters larger than that, or than the producer's
    ``message.max.bytes``, are written truncated."""
    from confluent_kafka import Producer

    from stream.alerts import describe_alert
    from stream.loop import RunLoop
    from stream.metrics import Metrics
    from stream.sinks import (
        BROKER_DEFAULT_MESSAGE_BYTES,
        DeliveryTracker,
        KafkaAlertSink,
        KafkaDeadLetterSink,
    )
    from stream.sources import KafkaSource
    from stream.state import Changelog, Transactions

    source_class = source_class or KafkaSource
    loop_class = loop_class or RunLoop
    conf = config.kafka
    _collect_less()
    metrics = Metrics(max_models=config.metrics.max_models,
                      max_features=config.metrics.max_features)
    exactly_once = conf.processing_guarantee == "exactly-once"
    extra: dict[str, Any] = {}
    if exactly_once:
        import socket

        extra = {"transactional.id": conf.transactional_id
                 or f"streamdrift-{conf.group_id}-{socket.gethostname()}",
                 "transaction.timeout.ms": int(conf.transaction_timeout_seconds * 1000)}
    settings = _producer_settings(config, **extra)
    producer = Producer(settings)
    dlq_bytes = min(int(settings["message.max.bytes"]),
                    BROKER_DEFAULT_MESSAGE_BYTES if dlq_max_bytes is None else dlq_max_bytes)
    tracker = DeliveryTracker()
    holder: dict[str, RunLoop] = {}
    topics = [conf.events_topic] + ([conf.labels_topic] if conf.labels_topic else [])
    source = source_class(conf, topics,
                          on_stats=lambda stats: holder["loop"].update_lag(stats))
    transactions = (Transactions(producer, source.group_metadata,
                                 timeout=conf.connect_timeout_seconds)
                    if exactly_once else None)
    state = Changelog(conf, config.state_topic, producer, config.config_hash(),
                      on_delivery=tracker, detectors=config.detectors,
                      hmac_key=config.state.hmac_key(),
                      on_reject=lambda reason: metrics.state_rejected.labels(reason).inc())
    loop = holder["loop"] = loop_class(
        source, KafkaAlertSink(producer, conf.alerts_topic, tracker),
        KafkaDeadLetterSink(producer, conf.dlq_topic, tracker, max_bytes=dlq_bytes), config,
        metrics,
        on_alert=lambda alert: log.info("%s", describe_alert(alert)),
        progress_seconds=progress_seconds, state=state, transactions=transactions,
        checkpoint_seconds=conf.checkpoint_interval_seconds)
    return loop


def _web_config(config: AppConfig) -> Any:
    from stream.web import load_web_config

    path = config.metrics.web_config_file
    return None if path is None else load_web_config(path)


def _port_taken(host: str, port: int | None, error: OSError) -> str:
    """What ``run`` says when it cannot serve its metrics on ``host:port``."""
    return (f"metrics.port {port} on {host}: {error.strerror or error}; pick another with "
            "--metrics-port or metrics.port (0: any free one)")


def cmd_run(args: argparse.Namespace, config: AppConfig) -> int:
    from stream.kafka import (
        TopicMismatch,
        check_copartitioned,
        ensure_changelog,
        ensure_topics,
        topic_max_message_bytes,
        wait_for_broker,
    )
    from stream.web import bind_error

    conf = config.kafka
    web = _web_config(config)  # a bad web config exits 2 before anything starts
    port = config.metrics.port
    taken = bind_error(config.metrics.host, port) if port else None  # 0: any free one
    if taken is not None:  # before anything starts, too
        log.error("%s", _port_taken(config.metrics.host, port, taken))
        return EXIT_CONFIG
    admin = wait_for_broker(conf)
    if conf.create_topics:
        ensure_topics(admin, [conf.events_topic, conf.alerts_topic, conf.dlq_topic,
                              conf.labels_topic or ""],
                      conf.topic_partitions, conf.topic_replication_factor)
    try:
        if conf.labels_topic:
            check_copartitioned(admin, conf.events_topic, conf.labels_topic)
        ensure_changelog(admin, conf.events_topic, config.state_topic, conf.create_topics,
                         conf.topic_replication_factor)
    except TopicMismatch as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    loop = live_loop(config, progress_seconds=30.0,
                     dlq_max_bytes=topic_max_message_bytes(admin, conf.dlq_topic))
    metrics = loop.metrics
    if config.metrics.port is not None:
        try:
            server = metrics.serve(config.metrics.host, config.metrics.port, loop.alive,
                                   loop.ready, web)
        except OSError as exc:  # taken since the check above
            log.error("%s", _port_taken(config.metrics.host, config.metrics.port, exc))
            loop.source.close()
            return EXIT_CONFIG
        tls = web is not None and web.tls_server_config is not None
        log.info("metrics on %s://%s:%d/metrics (/healthz, /readyz)%s",
                 "https" if tls else "http", config.metrics.host, server.port,
                 " with basic auth" if web is not None and web.basic_auth_users else "")
    log.info("streamdrift %s: %s -> alerts %s, dead letters %s, state %s (group %s, %s)",
             __version__, conf.events_topic, conf.alerts_topic, conf.dlq_topic,
             config.state_topic, conf.group_id, conf.processing_guarantee)
    _summary(loop.run(_stop_on_signals()))
    return 0


class LogDeadLetterSink:
    """Rejected records as warnings, when a replay has no --dlq-output."""

    def send(self, records: RecordBatch, rejected: Rejected) -> None:
        row = rejected.row
        log.warning("rejected %s[%d]@%d: %s: %s", records.topics[row], records.partitions[row],
                    records.offsets[row], rejected.reason, rejected.detail,
                    extra={"every_line": True})  # the replay's report: never held back

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


#: Reasons that say the input is not JSON lines at all (a CSV, a binary file).
_NOT_JSON_LINES = {"not_json", "not_utf8", "not_object"}


def cmd_replay(args: argparse.Namespace, config: AppConfig) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from stream.alerts import describe_alert
    from stream.kafka import wait_for_broker
    from stream.loop import RunLoop
    from stream.metrics import Metrics
    from stream.progress import ProgressSource, RejectionCounter, summary
    from stream.sinks import DeadLetterSink, JsonLinesDeadLetterSink, JsonLinesSink
    from stream.sources import replay_source

    refused = _replay_flags_refused(args)
    if refused:
        log.error("%s", refused)
        return EXIT_CONFIG
    if args.input is None:
        wait_for_broker(config.kafka)
    try:
        inner = replay_source(config.kafka, path=args.input, topic=args.topic,
                              start=args.start, end=args.end,
                              max_line_bytes=config.limits.max_record_bytes)
    except OSError as exc:
        log.error("--input: cannot read %s: %s", args.input, exc.strerror or exc)
        return EXIT_CONFIG
    source = ProgressSource(inner, sys.stderr, enabled=args.progress)
    dead = RejectionCounter(JsonLinesDeadLetterSink(args.dlq_output) if args.dlq_output
                            else LogDeadLetterSink())
    dead_sink: DeadLetterSink = dead
    loop = RunLoop(source, JsonLinesSink(args.output), dead_sink, config, Metrics(),
                   on_alert=(lambda a: log.info("%s", describe_alert(a))) if args.output
                   else None)
    source.stats = loop.stats
    redirect = (logging_redirect_tqdm(loggers=[logging.getLogger()]) if source.shown
                else contextlib.nullcontext())
    with redirect:
        _collect_less()
        stats = loop.run(_stop_on_signals())
    print(summary(stats, dead.reasons, getattr(inner, "outside", 0)), file=sys.stderr)
    loop.log_warming_up("replay")
    if stats.records and stats.rejected == stats.records:
        hint = (" (the input must be JSON lines: one event object per line, plain or gzip)"
                if set(dead.reasons) <= _NOT_JSON_LINES else "")
        print(f"streamdrift: every record was rejected{hint}", file=sys.stderr)
        return EXIT_ALL_REJECTED
    return 0


def cmd_simulate(args: argparse.Namespace, config: AppConfig) -> int:
    from stream.kafka import ensure_topics, wait_for_broker
    from stream.simulate import Scenario, generate, generate_labels

    # On a topic the record timestamps are event times: start now, or the broker's
    # time-based retention may delete records stamped months ago while they are read.
    start = args.start if args.start is not None else (
        float(int(time.time())) if args.topic else None)
    scenario = Scenario(events=args.events, seed=args.seed,
                        models=tuple(m for m in args.models.split(",") if m),
                        drift_at=args.drift_at, drift_period=args.drift_period,
                        drift_feature=args.drift_feature,
                        shift=args.shift, missing_rate=args.missing_rate,
                        invalid_rate=args.invalid_rate, concept_at=args.concept_at,
                        error_rate=args.error_rate,
                        concept_error_rate=args.concept_error_rate,
                        label_delay=args.label_delay, unlabeled_rate=args.unlabeled_rate,
                        **({"start": start} if start is not None else {}),
                        **({"events_per_second": args.rate} if args.rate else {}))
    if (args.labels_output and not args.output) or (args.labels_topic and not args.topic):
        log.error("--labels-output goes with --output, --labels-topic with --topic")
        return EXIT_CONFIG
    for flag, at in (("--drift-at", args.drift_at), ("--concept-at", args.concept_at)):
        if at is not None and at >= args.events:
            log.warning("%s %d is past the last event (%d events): nothing changes", flag, at,
                        args.events)
    records = generate(scenario)
    if args.output:
        for path, lines in ((args.output, records),
                            (args.labels_output, generate_labels(scenario))):
            if path:
                with open(path, "wb") as out:
                    for _key, value, _when in lines:
                        out.write(value + b"\n")
                log.info("wrote %s", path)
        return 0
    admin = wait_for_broker(config.kafka)
    ensure_topics(admin, [args.topic, args.labels_topic or ""], args.partitions,
                  config.kafka.topic_replication_factor)
    sent = _produce(config, args, args.topic, records)
    if args.labels_topic and sent == scenario.events:
        _produce(config, args, args.labels_topic, generate_labels(scenario))
    return 0


def _produce(config: AppConfig, args: argparse.Namespace, topic: str,
             records: Iterator[tuple[str, bytes, float]]) -> int:
    from stream.sinks import DeliveryTracker, produce

    producer = _producer(config)
    tracker = DeliveryTracker()
    stop = _stop_on_signals()
    began = time.monotonic()
    sent = 0
    for key, value, when in records:
        if stop.is_set():
            break
        if args.rate:
            wait = began + sent / args.rate - time.monotonic()
            if wait > 0:
                stop.wait(wait)  # pacing, not synchronisation
        # The record timestamp is the event time, so replay --from/--to selects by it.
        if not produce(producer, topic, value, key.encode(), stop=stop,
                       timestamp=int(when * 1000),
                       on_delivery=tracker):
            break  # stopped while the queue was full (a broker away)
        sent += 1
        producer.poll(0)
    # Stopped by a signal: what the broker has not taken by then is reported, not
    # waited for (a broker away would hold the process for the whole timeout).
    tracker.flush(producer, SIMULATE_STOP_FLUSH_SECONDS if stop.is_set() else 60.0)
    log.info("produced %d records to %s", sent, topic)
    return sent


def cmd_check_config(args: argparse.Namespace) -> int:
    """The config as ``run`` would load it (file, then ``STREAMDRIFT_*`` variables)."""
    from stream.config import effective_yaml, load_config

    if args.file and args.config_file and args.file != args.config_file:
        print("streamdrift: check-config takes one file: FILE or --config FILE",
              file=sys.stderr)
        return EXIT_CONFIG
    path = args.file or args.config_file
    config = load_config(path, env=os.environ)
    _web_config(config)
    if args.show:
        print(effective_yaml(config), end="")
    print(f"{path or '(no file)'}: ok (config_hash {config.config_hash()})")
    return 0


def _summary(stats: LoopStats) -> None:
    log.info("stopped: %d records, %d events, %d rejected, %d alerts", stats.records,
             stats.events, stats.rejected, stats.alerts)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if sys.__stderr__ is not None:  # `kill -USR1 PID` prints every thread's stack
        with contextlib.suppress(ValueError, io.UnsupportedOperation):
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__)

    from confluent_kafka import KafkaError, KafkaException

    from stream.config import ConfigError, load_config
    from stream.kafka import AuthenticationFailed, BrokerUnavailable
    from stream.logs import RepeatFilter
    from stream.sinks import SinkError

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr.addFilter(RepeatFilter(every=WARNING_REPEAT_SECONDS))  # a broker away repeats
    logging.basicConfig(level=getattr(args, "log_level", "INFO"), handlers=[stderr])
    not_authorized = {KafkaError.TOPIC_AUTHORIZATION_FAILED,
                      KafkaError.GROUP_AUTHORIZATION_FAILED,
                      KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                      KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                      KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
    try:
        if args.command == "check-config":
            return cmd_check_config(args)
        if args.command == "backtest":
            return cmd_backtest(args)
        config = load_config(args.config, overrides=_overrides(args))
        handler = {"run": cmd_run, "replay": cmd_replay, "simulate": cmd_simulate}
        return handler[args.command](args, config)
    except ConfigError as exc:
        print(f"streamdrift: bad config:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokerUnavailable as exc:
        print(f"streamdrift: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except AuthenticationFailed as exc:
        print(f"streamdrift: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except KafkaException as exc:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if err is not None and err.code() in not_authorized:
            print(f"streamdrift: not authorized: {err.str()}; check kafka.security and the "
                  f"ACLs of its user", file=sys.stderr)
            return EXIT_AUTH
        if err is not None and err.code() == KafkaError._INVALID_ARG:
            # librdkafka refused our settings merged with kafka.consumer/kafka.producer
            # (each of those alone passed the config check).
            print(f"streamdrift: bad config: librdkafka refused a setting: {err.str()}",
                  file=sys.stderr)
            return EXIT_CONFIG
        print(f"streamdrift: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except SinkError as exc:
        print(f"streamdrift: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ValueError as exc:  # a bad argument found late, e.g. a replay topic that is missing
        print(f"streamdrift: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:  # Ctrl-C where no handler waits for it, or a second signal
        print("streamdrift: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
