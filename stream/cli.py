"""``streamdrift``: run, replay, backtest, simulate, check-config (contracts: docs/contracts.md)."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from stream import __version__
from stream.alerts import describe_alert
from stream.config import AppConfig, ConfigError, load_config
from stream.events import Rejected
from stream.kafka import (
    AuthenticationFailed,
    BrokerUnavailable,
    TopicMismatch,
    check_copartitioned,
    client_settings,
    ensure_changelog,
    ensure_topics,
    topic_max_message_bytes,
    wait_for_broker,
)
from stream.logs import RepeatFilter
from stream.loop import LoopStats, RunLoop
from stream.metrics import Metrics
from stream.records import RecordBatch
from stream.simulate import FEATURES, Scenario, generate, generate_labels
from stream.sinks import (
    BROKER_DEFAULT_MESSAGE_BYTES,
    AlertSink,
    DeadLetterSink,
    DeliveryTracker,
    JsonLinesDeadLetterSink,
    JsonLinesSink,
    KafkaAlertSink,
    KafkaDeadLetterSink,
    SinkError,
    produce,
    producer_message_bytes,
)
from stream.sources import FileSource, KafkaRangeSource, KafkaSource, Source
from stream.state import Changelog, Transactions
from stream.web import WebConfig, load_web_config

log = logging.getLogger("streamdrift")

EXIT_CONFIG = 2  # a bad config or argument
EXIT_UNAVAILABLE = 3  # Kafka unreachable, or records could not be made durable
EXIT_AUTH = 4  # Kafka refused our credentials or TLS handshake, or an ACL refused an action

_NOT_AUTHORIZED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                   KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                   KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                   KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}

#: A warning or error line of one kind is logged at most once per this many seconds.
WARNING_REPEAT_SECONDS = 30.0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config file")
    p.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamdrift", description=__doc__,
        epilog=f"exit codes: 0 done, {EXIT_CONFIG} bad config or argument, {EXIT_UNAVAILABLE} "
               f"Kafka unreachable or records not made durable, {EXIT_AUTH} Kafka "
               f"authentication failed or not authorized (check kafka.security). "
               "Event, label, alert, dead-letter, metrics, CLI and config contracts: "
               "docs/contracts.md in the repository")
    parser.add_argument("--version", action="version", version=f"streamdrift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="consume events, detect drift, publish alerts")
    _common(run)
    for flag in ("events-topic", "labels-topic", "alerts-topic", "dlq-topic", "group-id"):
        run.add_argument(f"--{flag}", dest=f"kafka.{flag.replace('-', '_')}", metavar="NAME")
    run.add_argument("--metrics-port", dest="metrics.port", type=int, metavar="PORT")
    run.add_argument("--processing-guarantee", dest="kafka.processing_guarantee",
                     choices=["at-least-once", "exactly-once"])

    replay = sub.add_parser("replay", help="run the same loop over a file or a time range")
    _common(replay)
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE.jsonl", type=Path)
    source.add_argument("--topic", metavar="T")
    replay.add_argument("--from", dest="start", metavar="TIME", type=_time,
                        help="RFC 3339 or epoch seconds (with --topic)")
    replay.add_argument("--to", dest="end", metavar="TIME", type=_time)
    replay.add_argument("--labels-topic", dest="kafka.labels_topic", metavar="L",
                        help="with --topic: join the labels of this topic (same time range)")
    replay.add_argument("--output", metavar="FILE.jsonl", help="alerts (default: stdout)")
    replay.add_argument("--dlq-output", metavar="FILE.jsonl",
                        help="rejected records (default: a warning per record on stderr)")

    sim = sub.add_parser("simulate", help="write a synthetic, optionally drifting stream")
    _common(sim)
    target = sim.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", metavar="FILE.jsonl")
    target.add_argument("--topic", metavar="T")
    sim.add_argument("--events", type=int, default=100_000, metavar="N")
    sim.add_argument("--seed", type=int, default=0, metavar="S")
    sim.add_argument("--drift-at", type=int, metavar="K")
    sim.add_argument("--drift-period", type=int, metavar="N",
                     help="after --drift-at, switch the drift off and on every N events")
    sim.add_argument("--drift-feature", default="income", choices=FEATURES, metavar="NAME")
    sim.add_argument("--shift", type=float, default=1.0, metavar="SIGMAS")
    sim.add_argument("--models", default="credit-risk", metavar="A,B",
                     help="comma-separated model ids, events go round-robin")
    sim.add_argument("--missing-rate", type=float, default=0.01)
    sim.add_argument("--invalid-rate", type=float, default=0.0,
                     help="share of records that break the event contract")
    sim.add_argument("--start", type=_time, metavar="TIME",
                     help="event time of the first event (default: 2026-01-01T00:00:00Z "
                          "in a file, now on a topic)")
    sim.add_argument("--rate", type=float, metavar="EVENTS_PER_S",
                     help="produce at this pace in real time (default: as fast as possible)")
    sim.add_argument("--partitions", type=int, default=3,
                     help="partitions of the topic if it has to be created")
    sim.add_argument("--labels-topic", metavar="L",
                     help="with --topic: also write the events' labels here (keyed alike)")
    sim.add_argument("--labels-output", metavar="FILE.jsonl",
                     help="with --output: also write the events' labels to this file")
    sim.add_argument("--concept-at", type=int, metavar="K",
                     help="from event K the label's relation to the score changes")
    sim.add_argument("--error-rate", type=float, default=0.1,
                     help="share of wrong predictions (default 0.1)")
    sim.add_argument("--concept-error-rate", type=float, default=0.2,
                     help="share of wrong predictions from --concept-at on (default 0.2)")
    sim.add_argument("--label-delay", type=float, default=30.0, metavar="SECONDS",
                     help="mean delay of a label after its event, exponential (default 30)")
    sim.add_argument("--unlabeled-rate", type=float, default=0.0,
                     help="share of events that never get a label")

    _backtest_parser(sub)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", metavar="FILE")
    return parser


def _backtest_parser(sub: Any) -> None:
    bt = sub.add_parser("backtest", help="replay an input once per config: an HTML report, a "
                        "summary, scores against known drifts")
    bt.add_argument("--config", metavar="FILE", action="append", dest="configs",
                    help="YAML config file; repeat to compare configs on the same input")
    bt.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS")
    bt.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    source = bt.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE.jsonl", type=Path, help="events, as replay")
    source.add_argument("--topic", metavar="T", help="a topic's time range, as replay")
    bt.add_argument("--from", dest="start", metavar="TIME", type=_time,
                    help="RFC 3339 or epoch seconds (with --topic)")
    bt.add_argument("--to", dest="end", metavar="TIME", type=_time)
    bt.add_argument("--labels-topic", dest="kafka.labels_topic", metavar="L",
                    help="with --topic: join the labels of this topic (same time range)")
    bt.add_argument("--truth", metavar="DRIFTS.jsonl", type=Path,
                    help="known drifts, one JSON object a line: model_id, feature, at, until")
    bt.add_argument("--report", metavar="REPORT.html", required=True, type=Path,
                    help="the HTML report (one self-contained file)")
    bt.add_argument("--summary", metavar="SUMMARY.json", type=Path,
                    help="per config (named by its file): counts, alerts, truth scores")
    bt.add_argument("--output", metavar="FILE.jsonl",
                    help="the first config's alerts, as replay --output writes them")


def cmd_backtest(args: argparse.Namespace) -> int:
    try:
        from stream import backtest  # here: its report needs the optional extra `report`
    except ImportError as exc:
        log.error("backtest needs plotly (%s): pip install 'streamdrift[report]'", exc)
        return EXIT_CONFIG

    if args.input is not None and (args.start is not None or args.end is not None):
        log.error("--from/--to go with --topic; a file is replayed whole")
        return EXIT_CONFIG
    overrides = _overrides(args)
    configs = [(backtest.default_name(path), load_config(path, overrides=overrides))
               for path in (args.configs or [None])]

    def source(config: AppConfig) -> Source:
        if args.input is not None:
            return FileSource(args.input, config.kafka.batch_size)
        wait_for_broker(config.kafka)
        topics = [args.topic] + ([config.kafka.labels_topic] if config.kafka.labels_topic
                                 else [])
        return KafkaRangeSource(config.kafka, topics,
                                None if args.start is None else int(args.start * 1000),
                                None if args.end is None else int(args.end * 1000))

    return backtest.main(args, configs, source, _stop_on_signals())


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
    # message.max.bytes: a record the events topic may hold fits in the DLQ with headers
    # (librdkafka's default, 1,000,000, is below a broker's default record size).
    settings = {**client_settings(config.kafka), "acks": "all", "enable.idempotence": True,
                "linger.ms": 5,
                "message.max.bytes": producer_message_bytes(config.limits.max_record_bytes),
                **extra}
    settings.update(config.kafka.producer)
    return settings


def _producer(config: AppConfig, **extra: Any) -> Producer:
    return Producer(_producer_settings(config, **extra))


def live_loop(config: AppConfig, source_class: type[KafkaSource] = KafkaSource,
              loop_class: type[RunLoop] = RunLoop, progress_seconds: float | None = None,
              dlq_max_bytes: int | None = None) -> RunLoop:
    """The run loop as ``run`` wires it: consumer group in; alerts, dead letters and
    detector state out; offsets committed after them (or with them, exactly-once).

    ``dlq_max_bytes``: what the DLQ topic takes per record (its ``max.message.bytes``;
    None: a broker's default); dead letters larger than that, or than the producer's
    ``message.max.bytes``, are written truncated."""
    conf = config.kafka
    metrics = Metrics(max_models=config.metrics.max_models,
                      max_features=config.metrics.max_features)
    exactly_once = conf.processing_guarantee == "exactly-once"
    extra: dict[str, Any] = {}
    if exactly_once:
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


def _web_config(config: AppConfig) -> WebConfig | None:
    path = config.metrics.web_config_file
    return None if path is None else load_web_config(path)


def cmd_run(args: argparse.Namespace, config: AppConfig) -> int:
    conf = config.kafka
    web = _web_config(config)  # a bad web config exits 2 before anything starts
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
        server = metrics.serve(config.metrics.host, config.metrics.port, loop.alive,
                               loop.ready, web)
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


def cmd_replay(args: argparse.Namespace, config: AppConfig) -> int:
    source: Source
    if args.input is not None:
        if args.start is not None or args.end is not None:
            log.error("--from/--to go with --topic; a file is replayed whole")
            return EXIT_CONFIG
        try:
            source = FileSource(args.input, config.kafka.batch_size)
        except OSError as exc:
            log.error("--input: cannot read %s: %s", args.input, exc.strerror)
            return EXIT_CONFIG
    else:
        wait_for_broker(config.kafka)
        topics = [args.topic] + ([config.kafka.labels_topic] if config.kafka.labels_topic
                                 else [])
        source = KafkaRangeSource(config.kafka, topics,
                                  None if args.start is None else int(args.start * 1000),
                                  None if args.end is None else int(args.end * 1000))
    alerts: AlertSink = JsonLinesSink(args.output)
    dead: DeadLetterSink = (JsonLinesDeadLetterSink(args.dlq_output) if args.dlq_output
                            else LogDeadLetterSink())
    loop = RunLoop(source, alerts, dead, config, Metrics(),
                   on_alert=(lambda a: log.info("%s", describe_alert(a))) if args.output
                   else None)
    _summary(loop.run(_stop_on_signals()))
    return 0


def cmd_simulate(args: argparse.Namespace, config: AppConfig) -> int:
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
        produce(producer, topic, value, key.encode(), timestamp=int(when * 1000),
                on_delivery=tracker)
        sent += 1
        producer.poll(0)
    tracker.flush(producer, 60.0)
    log.info("produced %d records to %s", sent, topic)
    return sent


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file, env={})
    _web_config(config)
    print(f"{args.file}: ok (config_hash {config.config_hash()})")
    return 0


def _summary(stats: LoopStats) -> None:
    log.info("stopped: %d records, %d events, %d rejected, %d alerts", stats.records,
             stats.events, stats.rejected, stats.alerts)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if sys.__stderr__ is not None:  # `kill -USR1 PID` prints every thread's stack
        with contextlib.suppress(ValueError, io.UnsupportedOperation):
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr.addFilter(RepeatFilter(every=WARNING_REPEAT_SECONDS))  # a broker away repeats
    logging.basicConfig(level=getattr(args, "log_level", "INFO"), handlers=[stderr])
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
        if err is not None and err.code() in _NOT_AUTHORIZED:
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


if __name__ == "__main__":
    sys.exit(main())
