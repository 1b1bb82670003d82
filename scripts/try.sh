#!/usr/bin/env bash
# kiln's main job on this machine, from nothing: bring up the local daemon
# and registry through the test harness, build kiln, and run it.
#   ./scripts/try.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/harness.sh" up
. "${KILN_HARNESS_DIR:-/var/lib/kiln-harness}/env"
cd "$ROOT"
cargo build --release --bin kiln
KILN=$ROOT/target/release/kiln
export BUILDKIT_HOST=docker://$KILN_TEST_DOCKER_SOCK
echo "+ kiln info" >&2
"$KILN" info
