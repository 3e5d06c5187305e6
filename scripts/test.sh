#!/usr/bin/env bash
# Whole test suite, three times: against etcd 3.4 and etcd 3.5 in the
# default I/O mode (calls and watches on the Perl thread), and against etcd
# 3.5 with every client in the background I/O mode (EV_ETCD_IO_MODE).
# Installs missing dependencies, builds (reusing an earlier build), runs
#   prove -b -It/lib -r t
# with ETCD_BIN set to each server, and ends with one line
#   N passed, M failed
# counting test files over all runs.  Exit status is non-zero if any fails.
# Environment: TEST_JOBS (prove -j, default 1), TEST_SERIAL (run them one
# after the other), ETCD34_BIN / ETCD35_BIN.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
cd "$EV_ETCD_ROOT"

# The suite runs against a build with the test hooks (t/47, t/48, t/67),
# and with this set their tests fail rather than skip if the hooks are
# missing. xt/dist.t builds and checks the shipped tarball without them.
export EV_ETCD_TEST_HOOKS=1
# Strict: a test whose etcd, module or tool is missing fails instead of
# skipping (t/lib/EtcdTest.pm ci_mode). install-deps.sh provides all of
# them, so a skip here would only hide a broken setup. (A user's own
# `make test` skips, saying why; so does an install inside a pipeline that
# merely sets CI.)
export EV_ETCD_STRICT_TESTS=1

if ! bash scripts/install-deps.sh || ! ev_etcd_build; then
    echo "test.sh: could not install dependencies or build" >&2
    echo
    echo "0 passed, 1 failed"
    exit 1
fi

logdir="$(mktemp -d "${TMPDIR:-/tmp}/ev-etcd-test.XXXXXX")"
trap 'rm -rf "$logdir"' EXIT

total_pass=0
total_fail=0
status=0

# The Rust core's own unit tests, as shipped and with the test hooks, count
# as one more test program.
printf '\n======== Rust unit tests (cargo test, and with --features test-hooks) ========\n'
if cargo test --release --locked --quiet &&
    cargo test --release --locked --quiet --features test-hooks; then
    total_pass=$((total_pass + 1))
else
    total_fail=$((total_fail + 1))
    status=1
fi


# One run ("VERSION" or "VERSION-MODE", MODE an io_mode for every client):
# prove's output goes to $logdir/prove-$run.log, the exit code to
# $logdir/rc-$run.
run_version() {
    local run="$1" v="${1%%-*}" mode='' bin rc=0
    [ "$run" = "$v" ] || mode="${run#*-}"
    {
        if ! bin="$(bash scripts/etcd-bin.sh "$v")"; then
            echo "test.sh: no etcd $v"
            echo 1 >"$logdir/rc-$run"
            return
        fi
        printf '\n======== etcd %s (%s)%s ========\n' "$(etcd_version_of "$bin")" "$bin" \
            "${mode:+, io_mode $mode}"
        EV_ETCD_IO_MODE="$mode" ETCD_BIN="$bin" \
            prove -b -It/lib -r --timer -j "${TEST_JOBS:-1}" t 2>&1 || rc=$?
        echo "$rc" >"$logdir/rc-$run"
    } >"$logdir/prove-$run.log" 2>&1
}

# Author tests: POD syntax and coverage, MANIFEST, versions, no debugging
# output left behind, and the release tarball built and tested in a fresh
# directory (xt/dist.t, against etcd 3.5). One more test program. Its cargo
# build runs at low priority, so that the timing of the suites beside it
# hardly changes.
# The benchmark clients (bench/native) call the core's C ABI from Rust:
# building them is one more test program, so a change of that ABI that
# leaves them behind fails here rather than in the next benchmark. It runs
# first in the author tests' job (at low priority, beside the suites), and
# builds the clients only: the module the suites test stays as it is.
run_bench_build() {
    local rc=0
    {
        printf '\n======== benchmark clients build (bench/compare.sh --clients-only) ========\n'
        nice -n 15 bash bench/compare.sh --clients-only 2>&1 || rc=$?
        echo "$rc" >"$logdir/rc-bench"
    } >"$logdir/prove-bench.log" 2>&1
}

run_author_tests() {
    local rc=0 bin
    {
        printf '\n======== author tests (prove -b xt) ========\n'
        bin="$(bash scripts/etcd-bin.sh 3.5)" || bin=''
        ETCD_BIN="$bin" nice -n 15 prove -b --timer xt 2>&1 || rc=$?
        echo "$rc" >"$logdir/rc-xt"
    } >"$logdir/prove-xt.log" 2>&1
}

# The tests mostly wait on servers and timers (a run uses about a sixth of
# one core), so the runs go side by side, each against its own servers on
# its own ports, and beside the author tests; TEST_SERIAL=1 runs them one
# after the other.
versions=(3.4 3.5 3.5-background)
if [ -n "${TEST_SERIAL:-}" ]; then
    run_bench_build; cat "$logdir/prove-bench.log"
    run_author_tests; cat "$logdir/prove-xt.log"
    for v in "${versions[@]}"; do run_version "$v"; cat "$logdir/prove-$v.log"; done
else
    { run_bench_build; run_author_tests; } & xt_pid=$!
    pids=()
    for v in "${versions[@]}"; do run_version "$v" & pids+=($!); done
    wait "$xt_pid" || true
    cat "$logdir/prove-bench.log" "$logdir/prove-xt.log"
    for i in "${!versions[@]}"; do
        wait "${pids[$i]}" || true
        cat "$logdir/prove-${versions[$i]}.log"
    done
fi

if [ "$(cat "$logdir/rc-bench" 2>/dev/null || echo 1)" -eq 0 ]; then
    total_pass=$((total_pass + 1))
else
    total_fail=$((total_fail + 1))
    status=1
fi
if [ "$(cat "$logdir/rc-xt" 2>/dev/null || echo 1)" -eq 0 ]; then
    total_pass=$((total_pass + 1))
else
    total_fail=$((total_fail + 1))
    status=1
fi

for v in "${versions[@]}"; do
    rc="$(cat "$logdir/rc-$v" 2>/dev/null || echo 1)"
    # Files=N is prove's total.  A file failed when its entry in the
    # "Test Summary Report" names failed tests, a non-zero exit or wait
    # status, or parse errors ("TODO passed" alone is not a failure).  No
    # summary at all means prove itself broke: count that as one failure.
    read -r files failed < <(perl -ne '
        if (/^Files=(\d+),/) { $files = $1; next }
        if (/^Test Summary Report/) { $in = 1; next }
        next unless $in;
        if (/^(\S.*?)\s+\(Wstat:/) { $cur = $1; next }
        $bad{$cur} = 1 if defined $cur
            && /^\s+(?:Failed tests?:|Non-zero (?:exit|wait) status|Parse errors)/;
        END { printf "%d %d\n", $files // -1, scalar keys %bad }' "$logdir/prove-$v.log")
    if [ "$files" -lt 0 ]; then
        files=1; failed=1
    elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1; [ "$files" -ge 1 ] || files=1
    fi
    [ "$rc" -eq 0 ] || status=1
    total_pass=$((total_pass + files - failed))
    total_fail=$((total_fail + failed))
done

echo
echo "$total_pass passed, $total_fail failed"
exit "$status"
