#!/usr/bin/env bash
# Builds EV::Etcd and runs eg/demo.pl against a throwaway etcd on a free
# loopback port (started by the test harness and stopped afterwards).
# DEMO_ETCD_VERSION=3.4 picks Debian's etcd instead of 3.5; ETCD_BIN wins
# over both.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
cd "$EV_ETCD_ROOT"

bash scripts/install-deps.sh
unset EV_ETCD_TEST_HOOKS    # the shipped build
ev_etcd_build
[ -f eg/demo.pl ] || ev_etcd_die "eg/demo.pl not found"

if [ -z "${ETCD_BIN:-}" ]; then
    ETCD_BIN="$(bash scripts/etcd-bin.sh "${DEMO_ETCD_VERSION:-3.5}")"
fi
export ETCD_BIN

exec perl scripts/with-etcd.pl -- perl -Mblib eg/demo.pl "$@"
