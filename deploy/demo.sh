#!/usr/bin/env bash
# The demo: a local Kafka broker, a simulated producer whose `income` feature
# drifts after 15,000 events, and `streamdrift run` watching the topic.
#
# Usage: deploy/demo.sh            (or: make demo)
#   KAFKA_PORT=9092      broker port; a broker already running there is reused
#                        and left running, one started here is stopped at the end
#   METRICS_PORT=9108    streamdrift's Prometheus endpoint
#   DEMO_SECONDS=N       stop everything after N seconds and exit 0
#   DEMO_STOP_TIMEOUT=15 seconds to wait for each process after SIGTERM
#   DEMO_FRESH=1         start from a fresh state: delete the demo's topics and its
#                        consumer group (detector state, offsets) first; DEMO_FRESH=0
#                        resumes the previous run's detectors where they stood
# Ctrl-C or SIGTERM stops the producer, streamdrift and the broker if this
# script started it: only processes this script started.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"

export KAFKA_PORT=${KAFKA_PORT:-9092}
METRICS_PORT=${METRICS_PORT:-9108}
DEMO_SECONDS=${DEMO_SECONDS:-}
STOP_TIMEOUT=${DEMO_STOP_TIMEOUT:-15}
DEMO_FRESH=${DEMO_FRESH:-1}
PYTHON=${DEMO_PYTHON:-.venv/bin/python}
GROUP=streamdrift-demo
# Everything the demo writes on the broker: events, alerts, dead letters, detector state.
DEMO_TOPICS=(demo-events demo-alerts demo-dlq "$GROUP-state")
# STREAMDRIFT overrides the CLI path (for testing this script only).
STREAMDRIFT=${STREAMDRIFT:-.venv/bin/streamdrift}
BOOTSTRAP="localhost:$KAFKA_PORT"
LOG_DIR="$REPO_DIR/var/demo"
PRODUCER_LOG="$LOG_DIR/producer.log"

say() { echo "[demo $(date +%H:%M:%S)] $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

[[ -x "$STREAMDRIFT" ]] || die "$STREAMDRIFT not found; run 'make setup' first (or 'make demo')"
if [[ -n "$DEMO_SECONDS" && ! "$DEMO_SECONDS" =~ ^[0-9]+$ ]]; then
  die "DEMO_SECONDS must be whole seconds, got '$DEMO_SECONDS'"
fi
[[ "$DEMO_FRESH" == 0 || "$DEMO_FRESH" == 1 ]] || die "DEMO_FRESH must be 0 or 1, got '$DEMO_FRESH'"
if (exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT") 2>/dev/null; then
  die "port $METRICS_PORT (metrics) is already in use; pick another with METRICS_PORT=..."
fi

cat <<EOF
============================================================================
 streamdrift demo
   Kafka broker      $BOOTSTRAP (deploy/local-kafka.sh; reused if already up)
   producer          streamdrift simulate -> topic demo-events, 500 events/s,
                     'income' shifts by 1.5 sigma after event 15000 (~30 s)
                     (log: var/demo/producer.log)
   monitor           streamdrift run: demo-events -> alerts on demo-alerts,
                     bad events on demo-dlq (output below)
   metrics           http://localhost:$METRICS_PORT/metrics
   state             $(if ((DEMO_FRESH)); then echo "fresh: the previous run's topics and detector state are deleted first"; else echo "resumed: the previous run's detectors and offsets (DEMO_FRESH=0)"; fi)
   stop              Ctrl-C (stops everything this script started)${DEMO_SECONDS:+
   auto-stop         after $DEMO_SECONDS s (DEMO_SECONDS)}
============================================================================
EOF

started_broker=0
producer_pid=
run_pid=
sleep_pid=

# Sends SIGTERM to our child $1, waits up to STOP_TIMEOUT s, then SIGKILL.
stop_child() {
  local pid=$1 name=$2 deadline
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name did not stop within ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # invoked by traps
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Under set -e a failed kill here (the sleep already gone: a SIGTERM sent to the whole
  # process group, as timeout(1) or a service manager does) would end the script before
  # it stopped the broker.
  if [[ -n "$sleep_pid" ]]; then kill "$sleep_pid" 2>/dev/null || true; fi
  stop_child "$producer_pid" producer
  stop_child "$run_pid" "streamdrift run"
  if ((started_broker)); then
    deploy/local-kafka.sh stop || rc=1
  fi
  say "done (exit $rc)"
  exit "$rc"
}
# shellcheck disable=SC2317
on_signal() {
  say "$1 received, shutting down"
  exit "$2"
}
trap cleanup EXIT
trap 'on_signal SIGINT 130' INT
trap 'on_signal SIGTERM 143' TERM

if deploy/local-kafka.sh status >/dev/null 2>&1; then
  say "reusing the broker already running on port $KAFKA_PORT (it stays up afterwards)"
else
  started_broker=1   # set first: a start that times out leaves a broker to stop
  deploy/local-kafka.sh start
fi

if ((DEMO_FRESH)); then
  say "fresh state: deleting the demo's topics and consumer group (DEMO_FRESH=0 resumes instead)"
  "$PYTHON" deploy/demo_reset.py "$BOOTSTRAP" "$GROUP" "${DEMO_TOPICS[@]}" \
    || die "could not delete the previous demo's topics; DEMO_FRESH=0 resumes instead"
else
  say "resuming: the previous run's detector state and offsets are kept (DEMO_FRESH=0)"
fi

mkdir -p "$LOG_DIR"
say "starting the simulated producer (log: $PRODUCER_LOG)"
# Background jobs of a non-interactive shell ignore SIGINT: Ctrl-C reaches this
# script only, and cleanup() sends SIGTERM to each child.
"$STREAMDRIFT" simulate --topic demo-events --bootstrap-servers "$BOOTSTRAP" \
  --events 200000 --rate 500 --drift-at 15000 --drift-feature income --shift 1.5 --seed 7 \
  --invalid-rate 0.001 \
  >"$PRODUCER_LOG" 2>&1 </dev/null &
producer_pid=$!

say "starting streamdrift run (metrics: http://localhost:$METRICS_PORT/metrics)"
"$STREAMDRIFT" run --bootstrap-servers "$BOOTSTRAP" --events-topic demo-events \
  --alerts-topic demo-alerts --dlq-topic demo-dlq --group-id "$GROUP" \
  --metrics-port "$METRICS_PORT" </dev/null &
run_pid=$!

t0=$SECONDS
while :; do
  if ! kill -0 "$run_pid" 2>/dev/null; then
    rc=0
    wait "$run_pid" || rc=$?
    run_pid=
    say "streamdrift run exited with status $rc"
    exit "$rc"
  fi
  if [[ -n "$producer_pid" ]] && ! kill -0 "$producer_pid" 2>/dev/null; then
    rc=0
    wait "$producer_pid" || rc=$?
    producer_pid=
    if ((rc == 0)); then
      say "the producer has sent all its events; streamdrift keeps running (Ctrl-C to stop)"
    else
      say "warning: the producer exited with status $rc; last lines of $PRODUCER_LOG:"
      tail -n 20 "$PRODUCER_LOG" || true
    fi
  fi
  if [[ -n "$DEMO_SECONDS" ]] && ((SECONDS - t0 >= DEMO_SECONDS)); then
    say "DEMO_SECONDS=$DEMO_SECONDS reached"
    exit 0
  fi
  # Sleep in the background so that a signal is handled at once.
  sleep 1 &
  sleep_pid=$!
  wait "$sleep_pid" || true
  sleep_pid=
done
