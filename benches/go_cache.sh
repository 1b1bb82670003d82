#!/usr/bin/env bash
# The Go cache bench: one .go file edited on a fresh CI runner (a new,
# empty buildkitd v0.29 with the layer cache imported from the registry),
# with and without kiln's Go build cache, beside `docker buildx build` (remote
# driver on the same kind of fresh buildkitd) with the third-party
# "cache dance" recipe: an extra build that copies a directory into the
# cache mount before the real one.
#   ./benches/go_cache.sh [RUNS]     (default 3; prints medians)
# Rows (each run on its own fresh buildkitd, except "warm"):
#   warm daemon           the edit on the harness's warm buildkitd (kiln)
#   fresh, no Go cache    kiln, --cache-from the registry
#   fresh, Go cache       kiln, --cache-from the registry, --go-cache-from a directory
#   buildx fresh, dance   buildx: the dance build, then the build with --cache-from
# Columns: the whole build (client wall time) and the go build step alone
# (started → completed in the rawjson progress stream).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-3}
"$ROOT/scripts/harness.sh" up >/dev/null 2>&1 || "$ROOT/scripts/harness.sh" up
HARNESS=${KILN_HARNESS_DIR:-/var/lib/kiln-harness}
# shellcheck disable=SC1091
. "$HARNESS/env"
[ -n "${KILN_TEST_BUILDKITD_SOCK:-}" ] || { echo "bench: the harness has no buildkitd (../shared/buildkit)" >&2; exit 1; }
cd "$ROOT"
cargo build --release --bin kiln >&2
KILN=$ROOT/target/release/kiln
export DOCKER_HOST=$KILN_TEST_DOCKER_HOST

WORK=$(mktemp -d)
BK_PID=
cleanup() {
  [ -n "$BK_PID" ] && kill "$BK_PID" 2>/dev/null && wait "$BK_PID" 2>/dev/null
  docker buildx rm kiln-bench-warm >/dev/null 2>&1 || true
  docker buildx rm kiln-bench-fresh >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cp -r examples/hello "$WORK/app"
REG=$KILN_TEST_REGISTRY/kiln-bench/go-cache-$$
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
GO_IMAGE=$(bench_go_image)
write_dockerfile "$WORK/Dockerfile"
# The cache dance: the exported Go cache directory is the context, copied
# into the same cache mount the build uses.
cat >"$WORK/Dockerfile.dance" <<DOCKERFILE
FROM $GO_IMAGE
RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=bind,target=/in \\
    cp -a /in/. /root/.cache/go-build/
DOCKERFILE

# A new buildkitd with its own empty root: a fresh CI runner.
fresh_bk() {
  local dir=$WORK/bk-$RANDOM$RANDOM
  mkdir -p "$dir"
  cat >"$dir/buildkitd.toml" <<TOML
root = "$dir/root"
[grpc]
  address = ["unix://$dir/bk.sock"]
[worker.oci]
  enabled = true
  binary = "/usr/sbin/runc"
[worker.containerd]
  enabled = false
[registry."$KILN_TEST_REGISTRY"]
  http = true
TOML
  "$HARNESS/bin/buildkitd" --config "$dir/buildkitd.toml" >"$dir/log" 2>&1 &
  BK_PID=$!
  for _ in $(seq 100); do
    "$KILN_TEST_BUILDCTL" --addr "unix://$dir/bk.sock" debug workers >/dev/null 2>&1 && break
    sleep 0.1
  done
  BK_ADDR=unix://$dir/bk.sock
  BK_DIR=$dir
}
stop_bk() {
  kill "$BK_PID" 2>/dev/null || true
  wait "$BK_PID" 2>/dev/null || true
  BK_PID=
  rm -rf "$BK_DIR"
}

KILN_ARGS=(build "$WORK/app" --progress rawjson --builder-image "$KILN_TEST_GO_TEMPLATE" --distro trixie
  --go "$KILN_TEST_GO_VERSION" --base-image "$KILN_TEST_STATIC_IMAGE" -o "type=oci,dest=$WORK/out.tar")
kiln_at() { "$KILN" --addr "$1" "${KILN_ARGS[@]}" "${@:2}" >/dev/null 2>"$WORK/progress.json"; }
buildx_at() { # builder, extra args: progress to $WORK/progress.json
  docker buildx build --builder "$1" --progress rawjson -f "$WORK/Dockerfile" \
    -o "type=oci,dest=$WORK/out.tar" "${@:2}" "$WORK/app" >/dev/null 2>"$WORK/progress.json"
}
edit() { echo "// edit $RANDOM$RANDOM" >>"$WORK/app/main.go"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# The go build step's own duration, from the progress stream.
step() {
  python3 - "$WORK/progress.json" <<'PY'
import json, sys
from datetime import datetime
def t(s):
    if isinstance(s, (int, float)):  # kiln's rawjson: nanoseconds since 1970
        return datetime.fromtimestamp(s / 1e9)
    s = s.rstrip("Z")
    if "." in s:
        a, b = s.split(".", 1)
        b = "".join(c for c in b if c.isdigit())[:6]
        s = a + "." + b
    s = s.split("+")[0]
    return datetime.fromisoformat(s)
best = {}
for line in open(sys.argv[1], errors="replace"):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    for v in ev.get("vertexes") or ev.get("Vertexes") or []:
        name = v.get("name") or v.get("Name") or ""
        st, done = v.get("started") or v.get("Started"), v.get("completed") or v.get("Completed")
        if "go build" in name and st and done:
            best[name] = (t(done) - t(st)).total_seconds()
print("%.2f" % max(best.values()) if best else "-")
PY
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Prime: the layer caches in the registry (kiln's and buildx's) and kiln's
# Go cache directory, from the harness's buildkitd.
HARNESS_BK=unix://$KILN_TEST_BUILDKITD_SOCK
kiln_at "$HARNESS_BK" --cache-to "type=registry,ref=$REG:kiln-cache,mode=max" \
  --go-cache-to "type=local,dest=$WORK/gc"
docker buildx create --name kiln-bench-warm --driver remote "$HARNESS_BK" >/dev/null
buildx_at kiln-bench-warm --cache-to "type=registry,ref=$REG:buildx-cache,mode=max"

declare -A WALL STEP
record() { # row wall step
  WALL[$1]+="$2 "
  STEP[$1]+="$3 "
  echo "bench: $1: ${2}s (go build ${3}s)" >&2
}
for _ in $(seq "$RUNS"); do
  edit
  t0=$(now); kiln_at "$HARNESS_BK"; record warm "$(since "$t0")" "$(step)"

  fresh_bk
  t0=$(now); kiln_at "$BK_ADDR" --cache-from "type=registry,ref=$REG:kiln-cache"
  record fresh "$(since "$t0")" "$(step)"
  stop_bk

  fresh_bk
  t0=$(now); kiln_at "$BK_ADDR" --cache-from "type=registry,ref=$REG:kiln-cache" \
    --go-cache-from "type=local,src=$WORK/gc"
  record fresh_gc "$(since "$t0")" "$(step)"
  stop_bk

  fresh_bk
  docker buildx create --name kiln-bench-fresh --driver remote "$BK_ADDR" >/dev/null
  t0=$(now)
  docker buildx build --builder kiln-bench-fresh --progress quiet -f "$WORK/Dockerfile.dance" \
    "$WORK/gc/linux-amd64/gocache" >/dev/null 2>&1
  buildx_at kiln-bench-fresh --cache-from "type=registry,ref=$REG:buildx-cache"
  record buildx_dance "$(since "$t0")" "$(step)"
  docker buildx rm kiln-bench-fresh >/dev/null 2>&1 || true
  stop_bk
done

row() { # label key
  local w s
  w=$(printf '%s\n' ${WALL[$2]} | median)
  s=$(printf '%s\n' ${STEP[$2]} | grep -v '^-$' | median)
  printf '| %s | %ss | %ss |\n' "$1" "$w" "${s:--}"
}
echo "| one .go file edited | whole build | go build step |"
echo "|---|---|---|"
row "warm buildkitd (kiln)" warm
row "fresh buildkitd, no Go cache (kiln)" fresh
row "fresh buildkitd, --go-cache-from (kiln)" fresh_gc
row "fresh buildkitd, buildx + cache dance" buildx_dance
