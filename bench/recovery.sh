#!/usr/bin/env bash
# The long variant of tests/integration/test_state_recovery.py: a longer stream and
# more SIGKILLs, against a broker of its own (port $BENCH_KAFKA_PORT, default 19094).
#
# Usage: bench/recovery.sh [EVENTS] [KILLS]     (defaults: 200000 events, 12 kills)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export RECOVERY_EVENTS=${1:-200000} RECOVERY_KILLS=${2:-12}
export KAFKA_PORT=${BENCH_KAFKA_PORT:-19094} KAFKA_CLEAN=1
export TEST_KAFKA_BOOTSTRAP=localhost:$KAFKA_PORT
exec deploy/with-kafka.sh .venv/bin/pytest -p no:cacheprovider -o timeout=3600 -q \
  tests/integration/test_state_recovery.py
