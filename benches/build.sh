#!/usr/bin/env bash
# Whole-build benchmark, side by side on the same daemon, same fixture images,
# same example module, OCI tarball output for all:
#   - Docker (the harness's dockerd): `kiln build` vs `docker buildx build` of
#     the equivalent Dockerfile;
#   - standalone buildkitd v0.29 (unix socket): `kiln build` vs `buildctl build`
#     of the very definition kiln sends (`kiln build --print-llb=pb`), so the
#     daemon's work is identical.
#   ./benches/build.sh [RUNS]     (default 3 runs per scenario; prints medians)
# Scenarios: cold (--no-cache), warm (nothing changed), edit (one .go file changed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-3}
"$ROOT/scripts/harness.sh" up >/dev/null 2>&1 || "$ROOT/scripts/harness.sh" up
# shellcheck disable=SC1091
. "${KILN_HARNESS_DIR:-/var/lib/kiln-harness}/env"
cd "$ROOT"
cargo build --release --bin kiln >&2
KILN=$ROOT/target/release/kiln
export DOCKER_HOST=$KILN_TEST_DOCKER_HOST
docker buildx version >/dev/null 2>&1 || { echo "bench: docker buildx is not installed (harness.sh installs docker-buildx)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r examples/hello "$WORK/app"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
write_dockerfile "$WORK/Dockerfile"

KILN_ARGS=(build "$WORK/app" --progress quiet --builder-image "$KILN_TEST_GO_TEMPLATE" --distro trixie
  --go "$KILN_TEST_GO_VERSION" --base-image "$KILN_TEST_STATIC_IMAGE")
kiln_build() {
  "$KILN" --addr "docker://$KILN_TEST_DOCKER_SOCK" "${KILN_ARGS[@]}" -o "type=oci,dest=$WORK/kiln.tar" "$@" >/dev/null
}
kilnbk_build() {
  "$KILN" --addr "unix://$KILN_TEST_BUILDKITD_SOCK" "${KILN_ARGS[@]}" -o "type=oci,dest=$WORK/kilnbk.tar" "$@" >/dev/null
}
buildctl_build() {
  "$KILN_TEST_BUILDCTL" --addr "unix://$KILN_TEST_BUILDKITD_SOCK" build --progress quiet \
    --local "context=$WORK/app" --output "type=oci,dest=$WORK/buildctl.tar" "$@" <"$WORK/def.pb" >/dev/null
}
buildx_build() {
  docker buildx build --builder default -q -f "$WORK/Dockerfile" -o "type=oci,dest=$WORK/buildx.tar" "$@" "$WORK/app" >/dev/null
}
# An edit changes the context, never the definition: buildctl's def.pb
# (made once, below) stays kiln's graph.
edit() { echo "// edit $RANDOM$RANDOM" >>"$WORK/app/main.go"; }
TOOLS=(kiln buildx)
if [ -n "${KILN_TEST_BUILDKITD_SOCK:-}" ] && [ -x "${KILN_TEST_BUILDCTL:-}" ]; then
  "$KILN" --addr "unix://$KILN_TEST_BUILDKITD_SOCK" "${KILN_ARGS[@]}" --print-llb=pb >"$WORK/def.pb"
  TOOLS+=(kilnbk buildctl)
else
  echo "bench: no standalone buildkitd in the harness: the buildkitd rows are skipped" >&2
fi

time_it() { # prints seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A RESULT
for tool in "${TOOLS[@]}"; do
  fn=${tool}_build
  $fn >/dev/null # prime: base images pulled, caches filled
  for scenario in cold warm edit; do
    samples=()
    for _ in $(seq "$RUNS"); do
      case $scenario in
        cold) samples+=("$(time_it $fn --no-cache)") ;;
        warm) samples+=("$(time_it $fn)") ;;
        edit) edit; samples+=("$(time_it $fn)") ;;
      esac
    done
    RESULT[$tool.$scenario]=$(printf '%s\n' "${samples[@]}" | median)
    echo "bench: $tool $scenario: ${samples[*]} (median ${RESULT[$tool.$scenario]}s)" >&2
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '| scenario | Docker: kiln build | docker buildx build | ratio |'
[ ${#TOOLS[@]} -gt 2 ] && printf ' buildkitd: kiln build | buildctl build | ratio |'
printf '\n|---|---|---|---|'
[ ${#TOOLS[@]} -gt 2 ] && printf -- '---|---|---|'
printf '\n'
for scenario in cold warm edit; do
  printf '| %s | %ss | %ss | %s |' "$scenario" "${RESULT[kiln.$scenario]}" "${RESULT[buildx.$scenario]}" \
    "$(ratio "${RESULT[kiln.$scenario]}" "${RESULT[buildx.$scenario]}")"
  if [ ${#TOOLS[@]} -gt 2 ]; then
    printf ' %ss | %ss | %s |' "${RESULT[kilnbk.$scenario]}" "${RESULT[buildctl.$scenario]}" \
      "$(ratio "${RESULT[kilnbk.$scenario]}" "${RESULT[buildctl.$scenario]}")"
  fi
  printf '\n'
done
