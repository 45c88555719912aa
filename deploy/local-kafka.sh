#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for development,
# tests, the demo and CI. Jars come from Maven Central (deploy/kafka/pom.xml),
# no Docker, no Kafka tarball.
#
# Usage: deploy/local-kafka.sh start|stop|status|topics [TopicCommand args...]|cluster-id [N]
#
#   start       start the broker in the background and wait until it answers a
#               metadata request; a no-op if our broker on this port already runs
#   stop        stop the broker whose pid is in our pid file (TERM, then KILL)
#   status      print running/stopped; exit 0 if running, 1 if not
#   topics      run Kafka's topic tool against the broker, e.g. `topics --list`
#   cluster-id  print N (default 1) new cluster ids, one a line, drawn as `start`
#               draws the id it formats a new data dir with
#
# Environment:
#   KAFKA_PORT             client port (default 9092), listens on 127.0.0.1,
#                          advertised as localhost:$KAFKA_PORT
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
#   KAFKA_STATE_DIR        config, data, logs, pid file
#                          (default <repo>/var/kafka-$KAFKA_PORT)
#   KAFKA_CLEAN=1          with start: stop our broker if it runs, wipe the state dir
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms256m -Xmx512m")
#   KAFKA_JAR_CACHE      cache root (default ~/.cache/streamdrift); jars go to
#                          $KAFKA_JAR_CACHE/kafka-4.1.1/libs
#   JAVA_HOME              Java 17+ to use (default: java on PATH)
#   KAFKA_EXTRA_PROPERTIES file appended to the generated server.properties (its
#                          keys win): extra listeners, TLS, SASL (tests/integration/
#                          secure_broker.py adds SASL_SSL, SSL and SASL_PLAINTEXT ones)
#   KAFKA_SCRAM_USERS      SCRAM credentials created when the storage is formatted,
#                          one per line: MECHANISM=[name=USER,password=PASSWORD]
#                          (kafka-storage format --add-scram; KRaft keeps them)
set -euo pipefail

KAFKA_VERSION=4.1.1

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
POM="$SCRIPT_DIR/kafka/pom.xml"

PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
STATE_DIR=${KAFKA_STATE_DIR:-$REPO_DIR/var/kafka-$PORT}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
CACHE_DIR=${KAFKA_JAR_CACHE:-$HOME/.cache/streamdrift}/kafka-$KAFKA_VERSION
LIBS="$CACHE_DIR/libs"
MARKER="$CACHE_DIR/libs.complete"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
PID_FILE="$STATE_DIR/kafka.pid"
SERVER_PROPS="$STATE_DIR/server.properties"
LOG4J_BROKER="$STATE_DIR/log4j2.xml"
LOG4J_TOOLS="$STATE_DIR/log4j2-tools.xml"
CLIENT_PROPS="$STATE_DIR/client.properties"

# Short-lived tool JVMs: start fast, stay small.
TOOL_JVM_OPTS=(-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)

log() { echo "local-kafka[$PORT]: $*"; }
die() { echo "local-kafka[$PORT]: error: $*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# --- processes ---------------------------------------------------------------

# True if pid $1 is alive and not a zombie (PID 1 in some sandboxes never reaps).
pid_alive() {
  local pid=$1 state
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || true
    [[ "$state" != Z && "$state" != X ]] || return 1
  fi
  return 0
}

# True if pid $1 is a broker started by this script for this state dir
# (guards against a recycled pid in a stale pid file).
pid_is_ours() {
  local pid=$1 cmdline
  pid_alive "$pid" || return 1
  [[ -r /proc/$pid/cmdline ]] || return 0   # no procfs: trust kill -0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$SERVER_PROPS"* ]]
}

# Prints our broker's pid and returns 0 if it runs; drops a stale pid file.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid=$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)
  if [[ -n "$pid" ]] && pid_is_ours "$pid"; then
    echo "$pid"
    return 0
  fi
  rm -f "$PID_FILE"
  return 1
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Who listens on port $1 (best effort, for error messages).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "( sport = :$1 )" 2>/dev/null | head -3 || true
  fi
}

# --- jars ----------------------------------------------------------------------

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

libs_ready() {
  [[ -f "$MARKER" && -d "$LIBS" ]] && [[ "$(cat "$MARKER")" == "$(pom_hash)" ]]
}

fetch_libs() {
  libs_ready && return 0
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to fetch the Kafka jars; install it (apt-get install maven)"
  mkdir -p "$CACHE_DIR"
  # Another start (another port) may be fetching into the same cache.
  exec 9>"$CACHE_DIR/.fetch.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if ! libs_ready; then
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (first use only)"
    local t0=$SECONDS tmp="$CACHE_DIR/libs.partial"
    rm -rf "$tmp" "$MARKER"
    if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
         -DoutputDirectory="$tmp" >"$CACHE_DIR/fetch.log" 2>&1; then
      tail -n 40 "$CACHE_DIR/fetch.log" >&2
      die "Maven could not fetch the Kafka jars (full log: $CACHE_DIR/fetch.log)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "fetch finished but kafka_2.13-$KAFKA_VERSION.jar is missing in $tmp"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    pom_hash >"$MARKER"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
  fi
  exec 9>&-
}

# --- configuration -----------------------------------------------------------

write_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  # Written on every start so that a changed port takes effect.
  cat >"$SERVER_PROPS" <<EOF
# Generated by deploy/local-kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://localhost:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# Static single-voter quorum: the voter set comes from this file, so a changed
# controller port just works with an existing data dir.
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
log.dirs=$DATA_DIR

# Single node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# Small machine (2 cores, tests alongside).
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1

# Local data: small segments, one day or 1 GiB per partition at most.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.bytes=1073741824
log.retention.check.interval.ms=60000
EOF
  if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
    [[ -r "$KAFKA_EXTRA_PROPERTIES" ]] || die "KAFKA_EXTRA_PROPERTIES: cannot read $KAFKA_EXTRA_PROPERTIES"
    { echo; echo "# From KAFKA_EXTRA_PROPERTIES ($KAFKA_EXTRA_PROPERTIES)"
      cat "$KAFKA_EXTRA_PROPERTIES"; } >>"$SERVER_PROPS"
  fi

  cat >"$LOG4J_BROKER" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local-kafka.sh: broker logs go to files, not the terminal. -->
<Configuration status="warn" name="local-kafka">
  <Appenders>
    <RollingFile name="server" fileName="$LOG_DIR/server.log" filePattern="$LOG_DIR/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Logger name="org.apache.kafka.clients" level="warn"/>
  </Loggers>
</Configuration>
EOF

  cat >"$LOG4J_TOOLS" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local-kafka.sh: command-line tools log errors only. -->
<Configuration status="warn" name="local-kafka-tools">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="%p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="error"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
EOF

  cat >"$CLIENT_PROPS" <<'EOF'
# Used by deploy/local-kafka.sh's readiness check and `topics`.
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# A new cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid).
# One that begins with '-' is read by the storage tool as a flag: draw again (as
# Kafka's Uuid.randomUuid does). tests/unit/test_local_kafka.py draws many.
new_cluster_id() {
  local id=-
  while [[ $id == -* ]]; do
    id=$(head -c 16 /dev/urandom | base64)
    id=${id:0:22}  # without the padding "=="
    id=${id//+/-}
    id=${id//\//_}
  done
  echo "$id"
}

# Formats the KRaft metadata/data dir once (meta.properties marks it done).
format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id line
  local scram=()
  while IFS= read -r line; do
    [[ -n "$line" ]] && scram+=(--add-scram "$line")
  done <<<"${KAFKA_SCRAM_USERS:-}"
  cluster_id=$(new_cluster_id)
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  if ! "$JAVA" "${TOOL_JVM_OPTS[@]}" -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$LIBS/*" \
       kafka.tools.StorageTool format --config "$SERVER_PROPS" --cluster-id "$cluster_id" \
       "${scram[@]}" >"$LOG_DIR/format.log" 2>&1; then
    cat "$LOG_DIR/format.log" >&2
    die "formatting the KRaft storage failed"
  fi
}

run_tool() {
  "$JAVA" "${TOOL_JVM_OPTS[@]}" -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$LIBS/*" "$@"
}

# --- commands ----------------------------------------------------------------

print_log_tail() {
  local f
  for f in "$LOG_DIR/server.log" "$LOG_DIR/kafka.out"; do
    if [[ -s "$f" ]]; then
      echo "----- last 30 lines of $f -----" >&2
      tail -n 30 "$f" >&2
    fi
  done
}

cmd_start() {
  is_uint "$PORT" || die "KAFKA_PORT must be a port number, got '$PORT'"
  is_uint "$CONTROLLER_PORT" || die "KAFKA_CONTROLLER_PORT must be a port number, got '$CONTROLLER_PORT'"
  is_uint "$START_TIMEOUT" || die "KAFKA_START_TIMEOUT must be whole seconds, got '$START_TIMEOUT'"
  local pid
  if [[ "${KAFKA_CLEAN:-0}" == 1 ]]; then
    if running_pid >/dev/null; then
      log "KAFKA_CLEAN=1: stopping the running broker first"
      cmd_stop
    fi
    if [[ -d "$STATE_DIR" ]]; then
      log "KAFKA_CLEAN=1: wiping $STATE_DIR"
      rm -rf "$STATE_DIR"
    fi
  fi
  if pid=$(running_pid); then
    log "already running (pid $pid, bootstrap localhost:$PORT, state $STATE_DIR)"
    return 0
  fi
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      echo "local-kafka[$PORT]: error: port $p on 127.0.0.1 is already in use by a process that is not" \
           "this script's broker for $STATE_DIR (no live pid in $PID_FILE)." >&2
      port_owner "$p" >&2
      echo "Stop that process, or pick other ports with KAFKA_PORT=... (and KAFKA_CONTROLLER_PORT=...)." >&2
      exit 1
    fi
  done
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found; install Java 17 or set JAVA_HOME"
  fetch_libs
  write_config
  format_storage

  local t0=$SECONDS
  # shellcheck disable=SC2206  # HEAP_OPTS is a list of JVM flags
  local jvm_opts=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    -Dlog4j2.configurationFile="$LOG4J_BROKER" -Dkafka.logs.dir="$LOG_DIR")
  rm -f "$PID_FILE"
  : >"$LOG_DIR/kafka.out"
  # New session (setsid) so that Ctrl-C in the calling terminal does not reach
  # the broker; the inner shell writes its own pid, then becomes the JVM.
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAVA" "${jvm_opts[@]}" -cp "$LIBS/*" kafka.Kafka "$SERVER_PROPS" \
    >>"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$PID_FILE" ]] && break
    sleep 0.1
  done
  pid=$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)
  [[ -n "$pid" ]] || die "the broker process did not start (see $LOG_DIR/kafka.out)"
  log "started broker pid $pid (Kafka $KAFKA_VERSION, KRaft, controller port $CONTROLLER_PORT); waiting up to ${START_TIMEOUT}s"

  # Ready = the broker answers a real metadata request (list topics).
  local deadline=$((t0 + START_TIMEOUT)) remaining
  while :; do
    if ! pid_alive "$pid"; then
      rm -f "$PID_FILE"
      print_log_tail
      die "the broker exited during startup (logs in $LOG_DIR)"
    fi
    remaining=$((deadline - SECONDS))
    if ((remaining <= 0)); then
      print_log_tail
      echo "local-kafka[$PORT]: error: broker not ready after ${START_TIMEOUT}s; it is still running" \
           "as pid $pid (stop it with: KAFKA_PORT=$PORT $0 stop)" >&2
      exit 1
    fi
    if port_open "$PORT" &&
       timeout "$((remaining < 20 ? remaining : 20))" \
         "$JAVA" "${TOOL_JVM_OPTS[@]}" -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$LIBS/*" \
         org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$PORT" \
         --command-config "$CLIENT_PROPS" --list >"$LOG_DIR/ready-check.log" 2>&1; then
      break
    fi
    sleep 0.5
  done
  log "ready in $((SECONDS - t0)) s: bootstrap servers localhost:$PORT (logs in $LOG_DIR)"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    log "not running (no live broker pid in $PID_FILE)"
    return 0
  fi
  log "stopping broker pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while pid_alive "$pid" && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if pid_alive "$pid"; then
    log "still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.2
    done
    pid_alive "$pid" && die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    echo "running (pid $pid, bootstrap localhost:$PORT, controller port $CONTROLLER_PORT, state $STATE_DIR)"
    return 0
  fi
  echo "stopped (port $PORT, state $STATE_DIR)"
  return 1
}

cmd_topics() {
  running_pid >/dev/null || die "not running; start it with: KAFKA_PORT=$PORT $0 start"
  fetch_libs
  run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$PORT" \
    --command-config "$CLIENT_PROPS" "$@"
}

cmd_cluster_id() {
  local n=${1:-1} i
  is_uint "$n" || die "cluster-id: N must be a whole number, got '$n'"
  for ((i = 0; i < n; i++)); do
    new_cluster_id
  done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  topics) shift; cmd_topics "$@" ;;
  cluster-id) shift; cmd_cluster_id "$@" ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
