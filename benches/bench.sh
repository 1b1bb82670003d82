#!/usr/bin/env bash
# kiln's speed, side by side, in one command on a fresh machine:
#   ./benches/bench.sh [RESULTS.md]     (default benches/results.md)
# brings up the harness (daemons, registry, fixtures), QEMU for arm64 and an
# arm64 golang fixture (scripts/harness.sh qemu; about 10 min the first time,
# cached after), builds kiln (release), then benches/bench.py measures every
# row — kiln vs `docker buildx build` on Docker, kiln vs `buildctl` (fed the
# Definition kiln sends) on standalone buildkitd v0.29 — and writes the
# markdown table README quotes.
# Environment: RUNS (default 5 runs per row), ROWS (comma-separated
# substrings of "DAEMON: ROW NAME" to run only some rows).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/benches/results.md}
"$ROOT/scripts/harness.sh" up >/dev/null 2>&1 || "$ROOT/scripts/harness.sh" up
# shellcheck disable=SC1091
. "${KILN_HARNESS_DIR:-/var/lib/kiln-harness}/env"
if line=$("$ROOT/scripts/harness.sh" qemu | grep '^KILN_BENCH_GO_ARM64_IMAGE='); then
  export "${line?}"
else
  echo "bench: no QEMU for arm64 here (scripts/harness.sh qemu failed): the QEMU row is skipped" >&2
fi
[ -x /usr/bin/time ] || apt-get install -y -q time >&2 || { echo "bench: GNU time is needed (apt-get install time)" >&2; exit 1; }
export DOCKER_HOST=$KILN_TEST_DOCKER_HOST
docker buildx version >/dev/null 2>&1 || { echo "bench: docker buildx is not installed (harness.sh installs docker-buildx)" >&2; exit 1; }
cd "$ROOT"
cargo build --release --bin kiln >&2
export KILN_BENCH_KILN=$ROOT/target/release/kiln
exec python3 "$ROOT/benches/bench.py" "$OUT"
