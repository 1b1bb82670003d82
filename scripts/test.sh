#!/usr/bin/env bash
# The project's one test command (as root):  ./scripts/test.sh [cargo test args]
# Brings the harness up (dockerd with BuildKit, local registry, fixture
# images), loads its env file, then runs `cargo test --workspace "$@"`.
# The exit code is cargo's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/harness.sh" up

ENV_FILE=${KILN_HARNESS_DIR:-/var/lib/kiln-harness}/env
[ -f "$ENV_FILE" ] || { echo "test.sh: ERROR: $ENV_FILE missing after harness.sh up" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV_FILE"
# CI (set by CI runs) is passed through unchanged.
if [ -n "${CI+x}" ]; then export CI; fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || { echo "test.sh: ERROR: cargo not found on PATH (rustup's ~/.cargo/bin?)" >&2; exit 1; }

cd "$ROOT"
echo "test.sh: cargo test --workspace $*" >&2
exec cargo test --workspace "$@"
