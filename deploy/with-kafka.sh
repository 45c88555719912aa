#!/usr/bin/env bash
# Runs a command against a local Kafka broker started for it, then stops that
# broker, whatever the command's outcome. Exits with the command's status.
#
# Usage: [KAFKA_PORT=19092] [KAFKA_CLEAN=1] deploy/with-kafka.sh CMD [ARGS...]
#
# The broker is deploy/local-kafka.sh's (same environment variables). The
# command sees TEST_KAFKA_BOOTSTRAP=localhost:$KAFKA_PORT unless it is
# already set. A broker that was already running on that port before (and is
# kept, i.e. KAFKA_CLEAN is not 1) is reused and left running.
set -euo pipefail

if (($# == 0)); then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
fi

LOCAL_KAFKA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/local-kafka.sh"
export KAFKA_PORT=${KAFKA_PORT:-9092}
export TEST_KAFKA_BOOTSTRAP=${TEST_KAFKA_BOOTSTRAP:-localhost:$KAFKA_PORT}

ts() { date -u +%H:%M:%S; }

owned=0
if [[ "${KAFKA_CLEAN:-0}" == 1 ]] || ! "$LOCAL_KAFKA" status >/dev/null 2>&1; then
  owned=1
fi

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((owned)); then
    echo "[$(ts)] with-kafka: stopping the broker on port $KAFKA_PORT" >&2
    "$LOCAL_KAFKA" stop >&2 || echo "with-kafka: warning: stopping the broker failed" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "[$(ts)] with-kafka: starting the broker on port $KAFKA_PORT" >&2
"$LOCAL_KAFKA" start >&2
if ((!owned)); then
  echo "[$(ts)] with-kafka: reusing the broker that was already running; it stays up" >&2
fi

echo "[$(ts)] with-kafka: running: $*" >&2
set +e
"$@"
rc=$?
set -e
echo "[$(ts)] with-kafka: command exited with status $rc" >&2
exit "$rc"
