#!/usr/bin/env bash
# Whole test suite, once against etcd 3.4 and once against etcd 3.5.
# Installs missing dependencies, builds (reusing an earlier build), runs
#   prove -b -It/lib -r t
# with ETCD_BIN set to each server, and ends with one line
#   N passed, M failed
# counting test files over both runs.  Exit status is non-zero if any fails.
# Environment: TEST_JOBS (prove -j, default 1), ETCD34_BIN / ETCD35_BIN.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
cd "$EV_ETCD_ROOT"

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

# The Rust core's own unit tests count as one more test program.
printf '\n======== Rust unit tests (cargo test) ========\n'
if cargo test --release --locked --quiet; then
    total_pass=$((total_pass + 1))
else
    total_fail=$((total_fail + 1))
    status=1
fi

for v in 3.4 3.5; do
    bin="$(bash scripts/etcd-bin.sh "$v")" || { total_fail=$((total_fail + 1)); status=1; continue; }
    printf '\n======== etcd %s (%s) ========\n' "$(etcd_version_of "$bin")" "$bin"
    rc=0
    ETCD_BIN="$bin" prove -b -It/lib -r --timer -j "${TEST_JOBS:-1}" t 2>&1 \
        | tee "$logdir/prove-$v.log" || rc=$?
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
