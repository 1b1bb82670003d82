#!/usr/bin/env bash
# The project's one test command (as root):  ./scripts/test.sh [test-name filter…]
#
# Brings the harness up (two dockerds, a standalone buildkitd, the local
# registry, the fixture images), then runs every unit test once and the
# daemon suite (tests/it) once per daemon of the matrix, the daemons
# concurrently:
#
#   docker          Docker Engine 28, containerd image store   (docker://)
#   docker-classic  Docker Engine 28, classic image store      (docker://)
#   buildkitd       buildkitd v0.29.0 on a unix socket         (unix://)
#   buildkitd-tls   the same buildkitd on tcp with mutual TLS  (tcp://)
#
# The harness also starts podman (storage of its own, a buildkitd in the
# podman container kiln-buildkitd for podman-container://) and a containerd of
# its own; tests reach them from the rows (KILN_TEST_PODMAN*, KILN_TEST_CONTAINERD).
#
# KILN_TEST_DAEMONS=docker,buildkitd limits the matrix (default: all four).
# Without ../shared/buildkit (a fresh clone on a laptop) the buildkitd rows
# are skipped with one line saying so; in CI (CI=true) they must run.
# Extra arguments go to the test binaries (e.g. a test-name filter).
# Then, for a whole run (no arguments), README's ./scripts/try.sh.
# Logs: target/kiln-test-logs/<daemon>.log. Exit code: 0 only if every row passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL=(docker docker-classic buildkitd buildkitd-tls)
IFS=, read -r -a WANT <<<"${KILN_TEST_DAEMONS:-$(IFS=,; echo "${ALL[*]}")}"
ci=0
case "${CI:-}" in true | 1) ci=1 ;; esac

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

for d in "${WANT[@]}"; do
  case " ${ALL[*]} " in *" $d "*) ;; *) die "unknown daemon '$d' in KILN_TEST_DAEMONS (use: ${ALL[*]})" ;; esac
done
want() { case " ${WANT[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# The harness starts what the chosen rows need (the containerd-store dockerd
# always: it also runs the images tests push), and podman (with a buildkitd in
# a podman container, for podman-container://) and a containerd of its own
# always: tests of every row load images into them.
hd=docker,podman,containerd
want docker-classic && hd=$hd,docker-classic
{ want buildkitd || want buildkitd-tls; } && hd=$hd,buildkitd
KILN_HARNESS_DAEMONS=$hd "$ROOT/scripts/harness.sh" up

ENV_FILE=${KILN_HARNESS_DIR:-/var/lib/kiln-harness}/env
[ -f "$ENV_FILE" ] || die "$ENV_FILE missing after harness.sh up"
# shellcheck disable=SC1090
. "$ENV_FILE"
if [ -n "${CI+x}" ]; then export CI; fi
# Podman, its buildkitd and containerd are not rows: tests reach them from the
# rows. In CI they must be there; elsewhere the tests that need them say so.
missing=()
[ -n "${KILN_TEST_PODMAN:-}" ] || missing+=("KILN_TEST_PODMAN (the podman service)")
[ -n "${KILN_TEST_PODMAN_BUILDKIT:-}" ] || missing+=("KILN_TEST_PODMAN_BUILDKIT (the buildkitd in podman; needs ../shared/buildkit)")
[ -n "${KILN_TEST_CONTAINERD:-}" ] || missing+=("KILN_TEST_CONTAINERD (the harness's containerd)")
if [ ${#missing[@]} -gt 0 ]; then
  [ "$ci" = 1 ] && die "CI=true but the harness set up no ${missing[*]}"
  log "not set up by the harness: ${missing[*]}; the tests that need them fail or say so"
fi

ROWS=()
for d in "${WANT[@]}"; do
  case "$d" in
    buildkitd | buildkitd-tls)
      if [ -z "${KILN_TEST_BUILDKITD_SOCK:-}" ]; then
        [ "$ci" = 1 ] && die "CI=true but the harness set up no buildkitd (is ../shared/buildkit there?): the $d row must run in CI"
        log "skipping the $d row: the harness has no buildkitd (../shared/buildkit is missing)"
        continue
      fi ;;
  esac
  ROWS+=("$d")
done
[ ${#ROWS[@]} -gt 0 ] || die "no daemon row left to run"

if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (rustup's ~/.cargo/bin?)"
cd "$ROOT"

LOGS=$ROOT/target/kiln-test-logs
mkdir -p "$LOGS"
log "building the workspace and its tests (log: $LOGS/build.log)"
if ! cargo test --workspace --no-run >"$LOGS/build.log" 2>&1; then
  cat "$LOGS/build.log" >&2
  die "the build failed"
fi
# The daemon suite's binary, to run once per row without cargo's lock.
IT_BIN=$(cargo test --test it --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "it" and m.get("executable"):
        print(m["executable"])')
[ -x "$IT_BIN" ] || die "cannot find the tests/it binary"

declare -A PIDS T0
rm -f "$LOGS"/*.end
trap 'kill 0' INT TERM
t_all=$EPOCHREALTIME

# Unit and doc tests of every crate (no daemon), then each daemon row, all
# at once: the rows talk to different daemons, and each test keeps to its
# own names, so they do not see each other.
(
  set -e
  cargo test --workspace --lib --bins "$@"
  cargo test --workspace --doc "$@"
  cargo test --workspace --exclude kiln --test '*' "$@"
  # The criterion benches, in their quick mode on the dev profile, so they
  # cannot rot (numbers come from `cargo bench`, release).
  if [ $# -eq 0 ]; then
    python3 -m py_compile benches/bench.py
    for f in benches/*.sh; do bash -n "$f"; done
    cargo bench --profile dev -p kiln-llb -p kiln-session --bench marshal --bench filesync -- \
      --quick --warm-up-time 0.5 --measurement-time 1 --noplot --discard-baseline
    # The parsers of user input, fuzzed 15 s a target (fuzz/, scripts/fuzz.sh;
    # cold, with cargo-fuzz's install and the build, about 7 to 10 minutes).
    KILN_FUZZ_SECONDS="${KILN_FUZZ_SECONDS:-15}" "$ROOT/scripts/fuzz.sh"
  fi
) >"$LOGS/unit.log" 2>&1 && echo "$EPOCHREALTIME" >"$LOGS/unit.end" || { rc=$?; echo "$EPOCHREALTIME" >"$LOGS/unit.end"; exit $rc; } &
PIDS[unit]=$!
T0[unit]=$EPOCHREALTIME
for d in "${ROWS[@]}"; do
  (
    cd "$ROOT"
    KILN_TEST_DAEMON=$d "$IT_BIN" "$@" 2>&1 | sed -u "s/^/[$d] /"
    rc=${PIPESTATUS[0]}
    echo "$EPOCHREALTIME" >"$LOGS/$d.end"
    exit "$rc"
  ) >"$LOGS/$d.log" 2>&1 &
  PIDS[$d]=$!
  T0[$d]=$EPOCHREALTIME
done

declare -A RC SECS
for r in unit "${ROWS[@]}"; do
  rc=0
  wait "${PIDS[$r]}" || rc=$?
  RC[$r]=$rc
  SECS[$r]=$(awk -v a="${T0[$r]}" -v b="$(cat "$LOGS/$r.end" 2>/dev/null || echo "$EPOCHREALTIME")" 'BEGIN { printf "%.0f", b - a }')
done

# The exclusive phase: tests that prune a daemon's whole build cache
# (tests/it/exclusive.rs), once every row is done, one row at a time (the
# buildkitd rows share one daemon).
# Skipped when a filter names other tests.
if [ $# -eq 0 ] || [[ " $* " == *exclusive* ]]; then
  for d in "${ROWS[@]}"; do
    rc=0
    (
      cd "$ROOT"
      KILN_TEST_DAEMON=$d KILN_TEST_EXCLUSIVE=1 "$IT_BIN" exclusive:: --test-threads=1 2>&1 | sed -u "s/^/[$d exclusive] /"
      exit "${PIPESTATUS[0]}"
    ) >>"$LOGS/$d.log" 2>&1 || rc=$?
    [ "${RC[$d]}" = 0 ] && RC[$d]=$rc
  done
fi

# README's first command, kiln's main job (./scripts/try.sh), after the
# suite so it does not compete for the two cores; only for a whole run.
if [ $# -eq 0 ]; then
  log "running ./scripts/try.sh, README's first command (log: $LOGS/try.log)"
  T0[try]=$EPOCHREALTIME
  rc=0
  "$ROOT/scripts/try.sh" >"$LOGS/try.log" 2>&1 || rc=$?
  # README's install command, with try.sh's release build, into a root of
  # its own (tests/it/examples.rs checks this line is here).
  if [ "$rc" = 0 ]; then
    { cargo install --path . --locked --offline --root "$LOGS/cargo-root" &&
      "$LOGS/cargo-root/bin/kiln" --version; } >>"$LOGS/try.log" 2>&1 || rc=$?
  fi
  RC[try]=$rc
  SECS[try]=$(awk -v a="${T0[try]}" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
  ROWS+=(try)
fi

failed=0
for r in unit "${ROWS[@]}"; do
  echo "==================== $r (exit ${RC[$r]}) ===================="
  if [ "${RC[$r]}" = 0 ]; then
    grep -E '^(\[[a-z-]+\] )?test result:' "$LOGS/$r.log" || true
  else
    failed=1
    cat "$LOGS/$r.log"
  fi
done
echo
echo "summary ($(awk -v a="$t_all" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s):"
for r in unit "${ROWS[@]}"; do
  res=$({ grep -hE 'test result:' "$LOGS/$r.log" || true; } | awk '{ for (i = 2; i <= NF; i++) {
      if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } }
    END { printf "%d passed, %d failed", p, f }')
  [ "$r" = try ] && res="README's ./scripts/try.sh"
  printf '  %-15s %-6s %5s s  %s\n' "$r" "$([ "${RC[$r]}" = 0 ] && echo ok || echo FAILED)" "${SECS[$r]}" "$res"
done
exit "$failed"
