#!/usr/bin/env bash
# Compares four etcd clients on the same throwaway etcd 3.5, in one run:
#   perl    EV::Etcd from Perl (the module built here, blib/), io_mode inline
#   perl-bg the same in the background I/O mode (io_mode background)
#   core    the same Rust core driven from Rust through the C ABI the XS
#           layer uses (bench/native, bin compare-core), no Perl
#   native  the etcd-client crate on a tokio current_thread runtime
#           (bench/native, bin compare-native)
# Seven workloads (seq_put seq_get pipe_put pipe_get watch_latency big_range
# many_watch), interleaved, best of 3; prints tables and writes JSON lines to
# bench/results/compare-<timestamp>.jsonl. Every reply is checked; any
# failure (build, call, wrong value) makes the exit status non-zero.
#
#   bash bench/compare.sh                  # the comparison (about 2 minutes after the build),
#                                          # then the Perl floor (bench/floor.pl)
#   bash bench/compare.sh --scale          # instead: 10,000 calls in flight and
#                                          # 10,000 / 100,000 watches, perl client only
#   bash bench/compare.sh --rounds 1 --workloads seq_get,big_range --clients perl,core
#   bash bench/compare.sh --build-only     # build everything, run nothing
#   bash bench/compare.sh --clients-only   # build only the Rust clients, leaving the
#                                          # module's build alone (the test suite does
#                                          # this beside its runs, so a broken bench
#                                          # client fails it)
#
# From a fresh clone it installs what is missing (scripts/install-deps.sh),
# builds the module (perl Makefile.PL && make) and the Rust clients (cargo,
# -j2, target dir bench/native/target). etcd-client needs protoc: PROTOC, or
# else the binary of the protoc-bin-vendored crate in bench/native's
# dependencies. Other options go to bench/compare.pl (see its header).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=scripts/common.sh
. "$root/scripts/common.sh"
cd "$root"
start=$(date +%s)

scale=0
build_only=0
clients_only=0
for a in "$@"; do
    [ "$a" = "--scale" ] && scale=1
    [ "$a" = "--build-only" ] && build_only=1
    [ "$a" = "--clients-only" ] && build_only=1 && clients_only=1
done

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

# The shipped build is what is measured. --build-only (from scripts/test.sh)
# keeps the caller's EV_ETCD_TEST_HOOKS, so that it builds what the suite
# then tests.
[ "$build_only" -eq 1 ] || unset EV_ETCD_TEST_HOOKS

if [ "$clients_only" -eq 0 ]; then
echo "== compare: dependencies"
bash scripts/install-deps.sh
fi

# What the core is built from: Etcd.so and the core client must be built from
# the same source (someone editing src/ during the build would break that).
core_source() {
    cat Cargo.toml Cargo.lock build.rs $(find src -name '*.rs' | sort) proto/*/*.proto | cksum | cut -d' ' -f1
}
source_before="$(core_source)"

# (--clients-only: the module is being tested from blib/ meanwhile, and a
# rebuild would relink the Etcd.so under the running tests.)
if [ "$clients_only" -eq 0 ]; then
    echo "== compare: building EV::Etcd (perl Makefile.PL && make)"
    build_log="$(mktemp "${TMPDIR:-/tmp}/ev-etcd-compare-build.XXXXXX")"
    if ! ev_etcd_build >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        ev_etcd_die "building EV::Etcd failed (full log: $build_log)"
    fi
    rm -f "$build_log"
    [ -f blib/arch/auto/EV/Etcd/Etcd.so ] || ev_etcd_die "make finished but blib/arch/auto/EV/Etcd/Etcd.so is missing"

    ETCD_BIN="$(bash scripts/etcd-bin.sh 3.5)" || ev_etcd_die "no etcd 3.5"
    export ETCD_BIN
fi

native_dir="$root/bench/native"
target="$native_dir/target"
if [ "$scale" -eq 0 ]; then
    echo "== compare: building the Rust clients (bench/native)"
    if [ -z "${PROTOC:-}" ]; then
        # The protoc that protoc-bin-vendored ships for this machine (a
        # dependency of bench/native for that reason alone).
        case "$(uname -m)" in
            x86_64) parch=x86_64 ;;
            aarch64 | arm64) parch=aarch_64 ;;
            i?86) parch=x86_32 ;;
            ppc64le) parch=ppcle_64 ;;
            s390x) parch=s390_64 ;;
            *) ev_etcd_die "no vendored protoc for $(uname -m); set PROTOC" ;;
        esac
        PROTOC="$(cargo metadata --format-version 1 --manifest-path "$native_dir/Cargo.toml" |
            perl -MJSON::PP -MFile::Basename=dirname -0777 -ne '
                for my $p (@{ decode_json($_)->{packages} }) {
                    if ($p->{name} eq "protoc-bin-vendored-linux-'"$parch"'") {
                        print dirname($p->{manifest_path}), "/bin/protoc"; last;
                    }
                }')"
        [ -n "$PROTOC" ] && [ -x "$PROTOC" ] || ev_etcd_die "vendored protoc not found ($PROTOC); set PROTOC"
        export PROTOC
    fi
    cargo build --release -j "$CARGO_BUILD_JOBS" \
        --manifest-path "$native_dir/Cargo.toml" --target-dir "$target"
fi

source_after="$(core_source)"
if [ "$source_before" != "$source_after" ]; then
    echo "compare: WARNING: the Rust core's source changed during the build;" \
        "Etcd.so and compare-core may not be built from the same code" >&2
fi
export COMPARE_CORE_SOURCE="$source_before${source_before:+/}$source_after"

if [ "$build_only" -eq 1 ]; then
    [ -x "$target/release/compare-core" ] && [ -x "$target/release/compare-native" ] ||
        ev_etcd_die "the benchmark clients were not built"
    echo "== compare: built (--build-only), done in $(($(date +%s) - start)) s"
    exit 0
fi

echo "== compare: running"
rc=0
perl -I"$root/blib/lib" -I"$root/blib/arch" -I"$root/t/lib" "$here/compare.pl" \
    --core-bin "$target/release/compare-core" \
    --native-bin "$target/release/compare-native" "$@" || rc=$?
if [ "$scale" -eq 0 ]; then
    # The floor under the Perl rows: the interpreter and EV alone, and the
    # bridge without network (bench/floor.pl).
    echo "== compare: the Perl floor (bench/floor.pl)"
    perl -I"$root/blib/lib" -I"$root/blib/arch" "$here/floor.pl" --ops 5000 || rc=$?
fi
echo "== compare: done in $(($(date +%s) - start)) s (exit status $rc)"
exit "$rc"
