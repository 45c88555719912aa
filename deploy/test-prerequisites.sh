#!/usr/bin/env bash
# What `make test` needs besides .venv, checked before anything runs (`make test` calls it;
# so does .ci/run):
#   java (17+) and mvn   the local Kafka broker (deploy/local-kafka.sh fetches its jars)
#   promtool, prometheus Debian's `prometheus` (rule, config and PromQL checks; a real server)
#   amtool               Debian's `prometheus-alertmanager` (Alertmanager config and routes)
#   openssl              the security tests make their keys and certificates with it
# The Prometheus tools (and openssl) are installed here with apt-get when this runs as root
# or with passwordless sudo, as CI does; otherwise, and for Java and Maven, it stops at once
# with the exact command to run.
#
# Usage: deploy/test-prerequisites.sh        check, install what it can, or exit 1
#   TEST_INSTALL_TOOLS=0   never install: only check and print the command
set -euo pipefail

missing_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || printf '%s ' "$tool"
  done
}

SUDO=()
can_install=0
if [[ ${TEST_INSTALL_TOOLS:-1} != 0 ]] && command -v apt-get >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    can_install=1
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
    can_install=1
  fi
fi

failed=0
fail() { echo "make test: $*" >&2; failed=1; }

# Java and Maven: not installed here (a JDK is a choice a developer makes).
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  fail "missing $(missing_tools java mvn)(the local Kafka broker needs Java 17+ and Maven); " \
       "install them, e.g.: sudo apt-get install openjdk-17-jre-headless maven"
fi

# Debian package per tool.
declare -A PACKAGE=([promtool]=prometheus [prometheus]=prometheus
                    [amtool]=prometheus-alertmanager [openssl]=openssl)
read -r -a absent <<<"$(missing_tools promtool prometheus amtool openssl)"
if ((${#absent[@]})); then
  packages=()
  for tool in "${absent[@]}"; do
    [[ " ${packages[*]} " == *" ${PACKAGE[$tool]} "* ]] || packages+=("${PACKAGE[$tool]}")
  done
  command_line="sudo apt-get install --no-install-recommends ${packages[*]}"
  if ((can_install)); then
    echo "make test: installing ${packages[*]} (for ${absent[*]}) with apt-get" \
         "(TEST_INSTALL_TOOLS=0 to only check)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q || echo "warning: apt-get update failed; trying the install anyway"
    # Installing the package must not start a Prometheus server here.
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
      "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
      created_policy=1
    fi
    install_rc=0
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}" || install_rc=$?
    if ((created_policy)); then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi
    if ((install_rc != 0)); then
      fail "apt-get install ${packages[*]} failed (status $install_rc); run: $command_line"
    fi
    read -r -a still <<<"$(missing_tools "${absent[@]}")"
    if ((${#still[@]})) && ((install_rc == 0)); then
      fail "${still[*]} still missing after installing ${packages[*]}"
    fi
  else
    fail "missing ${absent[*]}; run: $command_line"
  fi
fi

if ((failed)); then
  echo "make test: see README > The two commands for every prerequisite" >&2
  exit 1
fi
echo "prerequisites: $(command -v java) $(command -v mvn) $(command -v promtool)" \
     "$(command -v prometheus) $(command -v amtool) $(command -v openssl)"
