#!/usr/bin/env bash
# kiln test harness: a Docker Engine (with embedded BuildKit and the containerd
# image store), a local registry and the fixture images the tests build from.
#
#   scripts/harness.sh [up]   install what is missing, start what is down,
#                             push missing fixtures, verify, write the env file
#   scripts/harness.sh down   stop dockerd and the registry (caches are kept)
#   scripts/harness.sh status one line per component
#   scripts/harness.sh env    print the env file (shell `export` lines)
#
# Runs as root on Debian bookworm. State and caches live in
# ${KILN_HARNESS_DIR:-/var/lib/kiln-harness}, never in the repository.
# Only Debian's mirror is needed: nothing is pulled from Docker Hub.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURES=$HERE/fixtures
DIR=${KILN_HARNESS_DIR:-/var/lib/kiln-harness}
RUN=$DIR/run
CACHE=$DIR/cache
SOCK=$RUN/docker.sock
DOCKER_HOST_URL=unix://$SOCK
REGISTRY=127.0.0.1:5000
GO_REPO=kiln-fixtures/golang
GO_TAGS=(1.24-trixie 1.24-bookworm)
GO_IMAGE=$REGISTRY/$GO_REPO:${GO_TAGS[0]}
STATIC_REPO=kiln-fixtures/static
STATIC_TAGS=(nonroot latest)
STATIC_IMAGE=$REGISTRY/$STATIC_REPO:${STATIC_TAGS[0]}
MIRROR=http://deb.debian.org/debian
GO_SUITE=trixie
GO_INCLUDE=golang-1.24-go,git,git-lfs,ca-certificates,openssh-client
SID_LIST=/etc/apt/kiln-sid.sources.list
SID_LISTS_DIR=$DIR/apt-sid-lists
BOOKWORM_PKGS=(debootstrap socat docker-registry openssl git openssh-server
  openssh-client apache2-utils curl ca-certificates iptables runc python3)
PYTHON=python3

T_START=$EPOCHREALTIME

log() { printf 'harness: %s\n' "$*" >&2; }
die() {
  printf 'harness: ERROR: %s\n' "$1" >&2
  shift
  local l
  for l in "$@"; do printf 'harness:   %s\n' "$l" >&2; done
  exit 1
}
# elapsed seconds since $1 (an $EPOCHREALTIME value), one decimal
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
step_begin() { STEP_NAME=$1; STEP_T0=$EPOCHREALTIME; log "[$STEP_NAME] ..."; }
step_end() { log "[$STEP_NAME] ${1:-ok} ($(since "$STEP_T0")s)"; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (try: sudo $0 ${1:-up})"
}

dk() { DOCKER_HOST=$DOCKER_HOST_URL docker "$@"; }

docker_ping() {
  [ -S "$SOCK" ] && [ "$(curl -s --max-time 3 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]
}

registry_ping() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$REGISTRY/v2/" 2>/dev/null)" = 200 ]
}

pid_alive() { # pidfile process-name: the pid runs and is that program
  local pid
  [ -f "$1" ] && pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# ---------------------------------------------------------------------------
# 1. packages

pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0
policy_rc_on() {
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\n# kiln harness: do not start services during package installs\nexit 101\n' >"$POLICY_RC"
    chmod 0755 "$POLICY_RC"
    POLICY_RC_OURS=1
  fi
}
policy_rc_off() {
  if [ "$POLICY_RC_OURS" = 1 ]; then rm -f "$POLICY_RC"; POLICY_RC_OURS=0; fi
}

APT_SID=(-o "Dir::Etc::sourcelist=$SID_LIST" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$SID_LISTS_DIR"
  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)

apt_retry() { # apt-get args...: retry once (mirror hiccups)
  local out=$RUN/apt.log
  # Wait for the dpkg lock instead of failing when another apt runs.
  set -- -o DPkg::Lock::Timeout=300 "$@"
  if apt-get "$@" >"$out" 2>&1; then return 0; fi
  log "apt-get $* failed, retrying in 5s (tail of $out):"
  tail -n 5 "$out" | sed 's/^/harness:   /' >&2
  sleep 5
  if apt-get "$@" >"$out" 2>&1; then return 0; fi
  tail -n 30 "$out" | sed 's/^/harness:   /' >&2
  return 1
}

ensure_packages() {
  step_begin packages
  export DEBIAN_FRONTEND=noninteractive
  local missing=() p
  for p in "${BOOKWORM_PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  local sid=()
  pkg_installed docker.io || sid+=(docker.io)
  pkg_installed docker-buildx || sid+=(docker-buildx)
  command -v docker >/dev/null 2>&1 || sid+=(docker-cli)
  if [ ${#missing[@]} -eq 0 ] && [ ${#sid[@]} -eq 0 ]; then
    check_dockerd_version
    step_end "all installed"
    return
  fi
  trap policy_rc_off EXIT
  policy_rc_on
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing from bookworm: ${missing[*]}"
    apt_retry update || die "apt-get update failed" "see $RUN/apt.log; is deb.debian.org reachable?"
    # runc and iptables come from bookworm on purpose: sid's versions would
    # drag in sid's libc6/libstdc++ and upgrade half of the system.
    apt_retry install -y --no-install-recommends "${missing[@]}" ||
      die "apt-get install ${missing[*]} failed" "see $RUN/apt.log"
  fi
  if [ ${#sid[@]} -gt 0 ]; then
    log "installing from sid (separate source list $SID_LIST): ${sid[*]}"
    echo "deb $MIRROR sid main" >"$SID_LIST"
    mkdir -p "$SID_LISTS_DIR/partial"
    apt_retry "${APT_SID[@]}" update || die "apt-get update of the sid list failed" "see $RUN/apt.log"
    # Refuse anything that would upgrade an installed package to sid (core
    # libraries): only new packages may come from sid.
    local sim upgrades
    sim=$(apt-get "${APT_SID[@]}" install -s --no-install-recommends "${sid[@]}" 2>&1) ||
      die "apt-get cannot resolve ${sid[*]} from sid" "$(printf '%s\n' "$sim" | tail -n 5)"
    upgrades=$(printf '%s\n' "$sim" | awk '/^Inst [^ ]+ \[/ { print $2 }' | tr '\n' ' ')
    if [ -n "$upgrades" ]; then
      die "installing ${sid[*]} from sid would upgrade installed packages to sid: $upgrades" \
        "refusing to turn this bookworm system into sid; install bookworm's versions of the dependencies first"
    fi
    log "from sid: $(printf '%s\n' "$sim" | awk '/^Inst / { v = $3; gsub(/[()]/, "", v); printf "%s%s=%s", sep, $2, v; sep = ", " }')"
    apt_retry "${APT_SID[@]}" install -y --no-install-recommends "${sid[@]}" ||
      die "apt-get install ${sid[*]} (sid) failed" "see $RUN/apt.log"
  fi
  policy_rc_off
  trap - EXIT
  check_dockerd_version
  step_end "installed"
}

check_dockerd_version() {
  local v
  v=$(dockerd --version 2>/dev/null) || die "dockerd is not installed or does not run" "expected Debian sid's docker.io 28.x"
  case "$v" in
    "Docker version 28."*) ;;
    "Docker version 29."* | "Docker version "[3-9][0-9].*)
      log "WARNING: $v (the harness was verified with 28.x; sid has moved on)" ;;
    *) die "dockerd is older than 28.x: $v" "remove it (apt-get remove docker.io) and run $0 up again" ;;
  esac
}

# ---------------------------------------------------------------------------
# 2. dockerd

write_daemon_json() {
  # Returns 0 if the file changed.
  local want
  want='{
  "features": { "containerd-snapshotter": true },
  "builder": { "entitlements": { "network-host": true, "security-insecure": true } },
  "log-level": "info"
}'
  if [ -f "$DIR/daemon.json" ] && [ "$(cat "$DIR/daemon.json")" = "$want" ]; then return 1; fi
  printf '%s\n' "$want" >"$DIR/daemon.json"
  return 0
}

stop_pidfile() { # process-name pidfile
  local pid
  pid_alive "$2" "$1" || { rm -f "$2"; return 0; }
  pid=$(cat "$2")
  log "stopping $1 (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$1 did not stop in 30s, killing it"
    kill -9 "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$2"
}

ensure_dockerd() {
  step_begin dockerd
  mkdir -p "$RUN/exec" "$DIR/docker-data"
  local changed=0
  write_daemon_json && changed=1
  if docker_ping; then
    if [ "$changed" = 1 ] && pid_alive "$RUN/dockerd.pid" dockerd; then
      log "daemon.json changed: restarting dockerd"
      stop_pidfile dockerd "$RUN/dockerd.pid"
    else
      check_buildkit
      step_end "already running (pid $(cat "$RUN/dockerd.pid" 2>/dev/null || echo '?'))"
      return
    fi
  fi
  if pid_alive "$RUN/dockerd.pid" dockerd; then
    # Running but not answering: give it a moment (it may be starting), then restart.
    for _ in $(seq 1 10); do docker_ping && break; sleep 1; done
    if docker_ping; then check_buildkit; step_end "already running"; return; fi
    stop_pidfile dockerd "$RUN/dockerd.pid"
  fi
  rm -f "$RUN/dockerd.pid" "$SOCK" "$RUN/net-verified"
  [ -f "$RUN/dockerd.log" ] && mv -f "$RUN/dockerd.log" "$RUN/dockerd.log.1"
  log "starting dockerd (log: $RUN/dockerd.log)"
  # setsid + nohup: the daemon outlives this script and its terminal/CI step.
  setsid nohup dockerd \
    --data-root "$DIR/docker-data" \
    --exec-root "$RUN/exec" \
    --pidfile "$RUN/dockerd.pid" \
    -H "$DOCKER_HOST_URL" \
    --config-file "$DIR/daemon.json" \
    >"$RUN/dockerd.log" 2>&1 </dev/null 9>&- &
  local dpid=$!
  for _ in $(seq 1 120); do
    docker_ping && break
    kill -0 "$dpid" 2>/dev/null || { log "dockerd exited during startup"; break; }
    sleep 0.5
  done
  if ! docker_ping; then
    tail -n 30 "$RUN/dockerd.log" | sed 's/^/harness:   dockerd: /' >&2
    die "dockerd did not answer on $SOCK within 60s" "full log: $RUN/dockerd.log"
  fi
  check_buildkit
  step_end "started (pid $(cat "$RUN/dockerd.pid"), $(dk version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
}

check_buildkit() {
  # After the 101 curl waits for data that never comes: cut it short.
  local out t
  for t in 0.3 1 3; do
    out=$(curl -s -i --max-time "$t" --unix-socket "$SOCK" -X POST \
      -H 'Connection: Upgrade' -H 'Upgrade: h2c' http://d/grpc 2>/dev/null | head -n 1) || true
    case "$out" in *"101 Switching Protocols"*) return 0 ;; esac
  done
  case "$out" in
    *) die "dockerd on $SOCK does not offer BuildKit on POST /grpc (got: ${out:-nothing})" \
      "see $RUN/dockerd.log; try: $0 down && $0 up" ;;
  esac
}

# ---------------------------------------------------------------------------
# 3. registry

write_registry_config() {
  local want
  want="version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/registry-data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY
  headers:
    X-Content-Type-Options: [nosniff]"
  if [ -f "$DIR/registry.yml" ] && [ "$(cat "$DIR/registry.yml")" = "$want" ]; then return 1; fi
  printf '%s\n' "$want" >"$DIR/registry.yml"
  return 0
}

ensure_registry() {
  step_begin registry
  mkdir -p "$DIR/registry-data" "$RUN"
  local changed=0
  write_registry_config && changed=1
  if registry_ping; then
    if [ "$changed" = 1 ] && pid_alive "$RUN/registry.pid" docker-registry; then
      log "registry.yml changed: restarting the registry"
      stop_pidfile docker-registry "$RUN/registry.pid"
    else
      step_end "already answering on $REGISTRY"
      return
    fi
  fi
  stop_pidfile docker-registry "$RUN/registry.pid"
  [ -f "$RUN/registry.log" ] && mv -f "$RUN/registry.log" "$RUN/registry.log.1"
  log "starting docker-registry on $REGISTRY (log: $RUN/registry.log)"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid nohup bash -c 'echo $$ >"$1"; exec docker-registry serve "$2"' _ \
    "$RUN/registry.pid" "$DIR/registry.yml" >"$RUN/registry.log" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 60); do registry_ping && break; sleep 0.25; done
  if ! registry_ping; then
    tail -n 20 "$RUN/registry.log" | sed 's/^/harness:   registry: /' >&2
    die "the registry did not answer on http://$REGISTRY/v2/ within 15s" \
      "is port 5000 taken by something else? (ss -ltnp | grep :5000); full log: $RUN/registry.log"
  fi
  step_end "started (pid $(cat "$RUN/registry.pid"))"
}

# ---------------------------------------------------------------------------
# 4. fixtures

ensure_static_fixture() {
  step_begin "fixture static"
  local ca=/etc/ssl/certs/ca-certificates.crt work=$CACHE/static
  [ -s "$ca" ] || die "$ca is missing" "install ca-certificates"
  mkdir -p "$work"
  SOURCE_DATE_EPOCH=0 $PYTHON "$FIXTURES/ocipush.py" static-layer --ca "$ca" \
    --out "$work/layer.tar.gz" --meta "$work/layer.json" 2>/dev/null
  local args=() t
  for t in "${STATIC_TAGS[@]}"; do args+=(--tag "$t"); done
  SOURCE_DATE_EPOCH=0 $PYTHON "$FIXTURES/ocipush.py" push --registry "$REGISTRY" --repo "$STATIC_REPO" \
    "${args[@]}" --platform linux/amd64 --platform linux/arm64/v8 \
    --layer "$work/layer.json" --config "$FIXTURES/static-config.json" \
    --created-by "kiln harness: static base (stand-in for distroless/static-debian12)" ||
    die "pushing $STATIC_IMAGE failed"
  step_end
}

# Cache key: everything that determines the rootfs contents.
golang_cache_key() {
  {
    echo "debootstrap --variant=minbase --arch=amd64 --include=$GO_INCLUDE $GO_SUITE $MIRROR"
    echo "tar --numeric-owner --sort=name --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* | gzip -6"
    cat "$FIXTURES/customize-golang-rootfs.sh"
  } | sha256sum | cut -c1-12
}

umount_under() { # dir: unmount anything a killed debootstrap left mounted
  local m
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

build_golang_rootfs() { # out-dir
  local out=$1 work=$CACHE/golang-work
  umount_under "$work"
  rm -rf --one-file-system "$work"
  mkdir -p "$work"
  log "debootstrap $GO_SUITE minbase + $GO_INCLUDE (about 80 s; log: $work/debootstrap.log)"
  local t0=$EPOCHREALTIME
  debootstrap --variant=minbase --arch=amd64 --include="$GO_INCLUDE" \
    "$GO_SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 &
  local pid=$! n=0 rc=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    n=$((n + 1))
    if [ $((n % 15)) = 0 ]; then
      log "debootstrap ${n}s: $(tail -n 1 "$work/debootstrap.log" 2>/dev/null | cut -c1-100)"
    fi
  done
  wait "$pid" || rc=$?
  umount_under "$work"
  if [ "$rc" != 0 ]; then
    tail -n 25 "$work/debootstrap.log" | sed 's/^/harness:   debootstrap: /' >&2
    die "debootstrap of $GO_SUITE failed (exit $rc)" "full log: $work/debootstrap.log (debootstrap leaves details in $work/rootfs/debootstrap/debootstrap.log)"
  fi
  log "debootstrap done ($(since "$t0")s)"
  bash "$FIXTURES/customize-golang-rootfs.sh" "$work/rootfs" || die "customizing the rootfs failed"
  "$work/rootfs/usr/lib/go-1.24/bin/go" version >/dev/null 2>&1 || die "the rootfs has no working go"
  log "packing the layer (tar | gzip)"
  t0=$EPOCHREALTIME
  mkdir -p "$out.tmp"
  tar --numeric-owner --sort=name --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -C "$work/rootfs" -cf - . |
    $PYTHON "$FIXTURES/ocipush.py" compress --level 6 --out "$out.tmp/layer.tar.gz" --meta "$out.tmp/layer.json" ||
    die "packing the golang rootfs failed"
  log "packed ($(since "$t0")s)"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  rm -rf --one-file-system "$work"
}

ensure_golang_fixture() {
  step_begin "fixture golang"
  local key out
  key=$(golang_cache_key)
  out=$CACHE/golang-$key
  if [ -s "$out/layer.json" ] && [ -s "$out/layer.tar.gz" ]; then
    log "using cached rootfs layer $out"
  else
    # Drop layers of older recipes.
    find "$CACHE" -maxdepth 1 -name 'golang-*' ! -name "golang-$key" -exec rm -rf {} + 2>/dev/null || true
    build_golang_rootfs "$out"
  fi
  # Also tag it like the official image, by the exact Go release it ships
  # (`1.24.4-trixie`), so `kiln build --builder-image …:{go}-{distro}` works.
  if [ ! -s "$out/go-version" ]; then
    tar -xzf "$out/layer.tar.gz" -O ./usr/lib/go-1.24/VERSION 2>/dev/null | head -1 | sed 's/^go//' >"$out/go-version.tmp" ||
      die "cannot read the Go version from the cached golang layer $out"
    mv "$out/go-version.tmp" "$out/go-version"
  fi
  GO_VERSION=$(cat "$out/go-version")
  [ -n "$GO_VERSION" ] || die "the golang fixture has no /usr/lib/go-1.24/VERSION"
  local args=() t
  for t in "${GO_TAGS[@]}" "$GO_VERSION-trixie" "$GO_VERSION-bookworm"; do args+=(--tag "$t"); done
  SOURCE_DATE_EPOCH=0 $PYTHON "$FIXTURES/ocipush.py" push --registry "$REGISTRY" --repo "$GO_REPO" \
    "${args[@]}" --platform linux/amd64 --layer "$out/layer.json" \
    --config "$FIXTURES/golang-config.json" \
    --created-by "kiln harness: debootstrap --variant=minbase --include=$GO_INCLUDE $GO_SUITE" ||
    die "pushing $GO_IMAGE failed"
  step_end
}

# ---------------------------------------------------------------------------
# 5. env file

env_lines() {
  cat <<EOF
export KILN_HARNESS_DIR=$DIR
export KILN_TEST_DOCKER_SOCK=$SOCK
export KILN_TEST_DOCKER_HOST=$DOCKER_HOST_URL
export KILN_TEST_REGISTRY=$REGISTRY
export KILN_TEST_GO_IMAGE=$GO_IMAGE
export KILN_TEST_GO_VERSION=$GO_VERSION
export KILN_TEST_GO_TEMPLATE=$REGISTRY/$GO_REPO:{go}-{distro}
export KILN_TEST_STATIC_IMAGE=$STATIC_IMAGE
EOF
}

write_env() {
  env_lines >"$DIR/env.tmp"
  mv -f "$DIR/env.tmp" "$DIR/env"
  log "env file: $DIR/env"
}

# ---------------------------------------------------------------------------
# 6. verification

verify() {
  step_begin verify
  local out
  out=$(dk pull -q "$STATIC_IMAGE" 2>&1) || die "docker pull $STATIC_IMAGE failed: $out" "see $RUN/dockerd.log"
  # The static image has no binaries: run the host's static tini in it, as the
  # image's `nonroot` user (resolved through the image's /etc/passwd).
  if [ -x /usr/bin/tini-static ]; then
    out=$(dk run --rm --network none --user nonroot -v /usr/bin/tini-static:/tini:ro \
      --entrypoint /tini "$STATIC_IMAGE" --version 2>&1) ||
      die "docker run of $STATIC_IMAGE failed: $out" "see $RUN/dockerd.log"
    log "$STATIC_IMAGE runs as nonroot (host tini-static: $out)"
  fi
  out=$(dk pull -q "$GO_IMAGE" 2>&1) || die "docker pull $GO_IMAGE failed: $out" "see $RUN/dockerd.log"
  out=$(dk run --rm --network none "$GO_IMAGE" go version 2>&1) ||
    die "docker run $GO_IMAGE go version failed: $out" "see $RUN/dockerd.log"
  case "$out" in
    "go version go1.24"*) log "$out" ;;
    *) die "unexpected 'go version' output from $GO_IMAGE: $out" ;;
  esac
  # Once per dockerd start: a BuildKit RUN step must reach Debian's mirror.
  if [ ! -f "$RUN/net-verified" ]; then
    local t0=$EPOCHREALTIME ctx
    ctx=$(mktemp -d)
    printf 'FROM %s\nRUN apt-get update\n' "$GO_IMAGE" >"$ctx/Dockerfile"
    if dk buildx version >/dev/null 2>&1; then
      out=$(dk buildx build --progress=plain --no-cache -t kiln-harness-netcheck "$ctx" 2>&1) ||
        { rm -rf "$ctx"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/harness:   build: /' >&2
          die "a BuildKit RUN step could not reach $MIRROR (FROM $GO_IMAGE, RUN apt-get update)" \
            "check the daemon's network (iptables, ip_forward, DNS) and $RUN/dockerd.log"; }
      dk image rm -f kiln-harness-netcheck >/dev/null 2>&1 || true
      log "BuildKit RUN apt-get update reached the mirror ($(since "$t0")s)"
    else
      out=$(dk run --rm "$GO_IMAGE" apt-get update 2>&1) ||
        { rm -rf "$ctx"; die "a container could not reach $MIRROR: $(printf '%s' "$out" | tail -n 3)" \
          "check the daemon's network (iptables, ip_forward, DNS)"; }
      log "container apt-get update reached the mirror ($(since "$t0")s; docker-buildx not installed)"
    fi
    rm -rf "$ctx"
    : >"$RUN/net-verified"
  fi
  step_end
}

# ---------------------------------------------------------------------------

cmd_up() {
  need_root up
  mkdir -p "$DIR" "$RUN" "$CACHE"
  exec 9>"$DIR/harness.lock"
  if ! flock -n 9; then
    log "another harness.sh up is running; waiting up to 20 min for it"
    flock -w 1200 9 || die "timed out waiting for the lock $DIR/harness.lock" \
      "find the other harness.sh (holder: $(fuser "$DIR/harness.lock" 2>/dev/null || echo '?'))"
  fi
  log "state dir $DIR"
  ensure_packages
  ensure_dockerd
  ensure_registry
  ensure_static_fixture
  ensure_golang_fixture
  write_env
  verify
  log "up in $(since "$T_START")s"
}

cmd_down() {
  need_root down
  stop_pidfile dockerd "$RUN/dockerd.pid"
  stop_pidfile docker-registry "$RUN/registry.pid"
  # dockerd bind-mounts its data root onto itself; leave nothing mounted.
  if ! pid_alive "$RUN/dockerd.pid" dockerd; then
    umount_under "$DIR/docker-data"
    umount_under "$RUN/exec"
    if mountpoint -q "$DIR/docker-data" 2>/dev/null; then umount "$DIR/docker-data" 2>/dev/null || true; fi
  fi
  rm -f "$RUN/net-verified"
  log "down (caches kept in $DIR)"
}

cmd_status() {
  local pid
  if [ -S "$SOCK" ] && ! [ -w "$SOCK" ]; then
    printf 'dockerd   ?     no permission on %s (run as root)\n' "$SOCK"
  elif docker_ping; then
    printf 'dockerd   up    pid %s  %s  %s\n' "$(cat "$RUN/dockerd.pid" 2>/dev/null || echo '?')" \
      "$DOCKER_HOST_URL" "$(dk version -f 'engine {{.Server.Version}}' 2>/dev/null || true)"
  elif pid_alive "$RUN/dockerd.pid" dockerd; then
    printf 'dockerd   hung  pid %s  not answering on %s (log %s)\n' "$(cat "$RUN/dockerd.pid")" "$SOCK" "$RUN/dockerd.log"
  else
    printf 'dockerd   down  %s\n' "$DOCKER_HOST_URL"
  fi
  if registry_ping; then
    pid=$(cat "$RUN/registry.pid" 2>/dev/null || echo '?')
    printf 'registry  up    pid %s  http://%s\n' "$pid" "$REGISTRY"
    local img repo tag
    for img in "$GO_REPO:${GO_TAGS[0]}" "$GO_REPO:${GO_TAGS[1]}" "$STATIC_REPO:${STATIC_TAGS[0]}" "$STATIC_REPO:${STATIC_TAGS[1]}"; do
      repo=${img%:*} tag=${img##*:}
      if $PYTHON "$FIXTURES/ocipush.py" exists --registry "$REGISTRY" --repo "$repo" --tag "$tag" 2>/dev/null; then
        printf 'fixture   ok    %s/%s\n' "$REGISTRY" "$img"
      else
        printf 'fixture   miss  %s/%s\n' "$REGISTRY" "$img"
      fi
    done
  else
    printf 'registry  down  http://%s\n' "$REGISTRY"
  fi
  local cached
  # shellcheck disable=SC2012
  cached=$(ls -d "$CACHE"/golang-*/layer.json 2>/dev/null | head -n 1 || true)
  printf 'cache     %s  %s\n' "$([ -n "$cached" ] && echo 'ok  ' || echo 'none')" "${cached:-$CACHE (golang rootfs not built yet)}"
  if [ -f "$DIR/env" ]; then printf 'env       ok    %s\n' "$DIR/env"; else printf 'env       none  %s\n' "$DIR/env"; fi
}

cmd_env() {
  if [ -f "$DIR/env" ]; then cat "$DIR/env"; else env_lines; fi
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown subcommand '$1'" "usage: $0 [up|down|status|env]" ;;
esac
