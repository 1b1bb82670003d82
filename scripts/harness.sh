#!/usr/bin/env bash
# kiln test harness: the BuildKit daemons kiln is tested against, a local
# registry and the fixture images the tests build from.
#
#   scripts/harness.sh [up]   install what is missing, start what is down,
#                             push missing fixtures, verify, write the env file
#   scripts/harness.sh down   stop the daemons and the registry (caches are kept)
#   scripts/harness.sh status one line per component
#   scripts/harness.sh env    print the env file (shell `export` lines)
#   scripts/harness.sh qemu   (benches) arm64 QEMU emulation and an arm64 golang
#                             fixture; prints KILN_BENCH_GO_ARM64_IMAGE=…
#
# Daemons (KILN_HARNESS_DAEMONS, comma-separated, limits what `up` starts;
# default docker,docker-classic,buildkitd,podman,containerd):
#   docker          Docker Engine 28 (Debian sid's docker.io) with the containerd
#                   image store and its embedded BuildKit: run/docker.sock
#   docker-classic  a second dockerd with the classic image store, its own
#                   bridge kiln-classic0 (172.31.254.1/24) and NAT rules in the
#                   KILN-CLASSIC iptables chains: run/docker-classic.sock
#   buildkitd       standalone BuildKit v0.29.0 (OCI worker, Debian's runc) on
#                   run/buildkitd.sock, tcp://127.0.0.1:1234 (mutual TLS, certs
#                   in tls/) and tcp://127.0.0.1:1235 (plain, a socat forwarder).
#                   Its binaries come from ../shared/buildkit next to the
#                   repository (KILN_SHARED_BUILDKIT overrides); without that
#                   folder it is skipped with a note.
#   podman          podman 4.3 (Debian's) with storage of its own under podman/:
#                   an API service on run/podman.sock, and a buildkitd in the
#                   podman container kiln-buildkitd (for podman-container://;
#                   its image is assembled from ../shared/buildkit's binaries
#                   and Debian's runc, so it too needs that folder).
#   containerd      a containerd 2 of its own (run/containerd/containerd.sock,
#                   root containerd/root, no CRI) with the namespace k8s.io;
#                   the dockerds' own containerds are never touched.
# The env file names the classic dockerd, buildkitd, podman (KILN_TEST_PODMAN,
# KILN_TEST_PODMAN_BUILDKIT, and CONTAINERS_CONF/CONTAINERS_STORAGE_CONF for
# the podman CLI) and containerd (KILN_TEST_CONTAINERD) only when they were
# set up; KILN_TEST_DAEMONS lists the daemon kinds (test rows) it names.
#
# Runs as root on Debian bookworm. State and caches live in
# ${KILN_HARNESS_DIR:-/var/lib/kiln-harness}, never in the repository.
# Only Debian's mirror is needed: nothing is pulled from Docker Hub.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
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
# LLB fixtures written by BuildKit's Go client name the image like the official
# one (see ../shared/llb-fixtures/README.md): the golang fixture is pushed there too.
GO_LIBRARY_REPO=library/golang
GO_LIBRARY_TAGS=(1.24-trixie)
STATIC_REPO=kiln-fixtures/static
STATIC_TAGS=(nonroot latest)
STATIC_IMAGE=$REGISTRY/$STATIC_REPO:${STATIC_TAGS[0]}
MIRROR=http://deb.debian.org/debian
GO_SUITE=trixie
GO_INCLUDE=golang-1.24-go,git,git-lfs,ca-certificates,openssh-client
SID_LIST=/etc/apt/kiln-sid.sources.list
SID_LISTS_DIR=$DIR/apt-sid-lists
BOOKWORM_PKGS=(debootstrap socat docker-registry openssl git openssh-server
  openssh-client apache2-utils curl ca-certificates iptables runc python3 jq podman)
PYTHON=python3

DAEMONS_DEFAULT=docker,docker-classic,buildkitd,podman,containerd
DAEMONS=${KILN_HARNESS_DAEMONS:-$DAEMONS_DEFAULT}

# The second dockerd (classic image store). Its bridge and address pool live in
# CLASSIC_NET, outside docker0's 172.17.0.0/16; it runs with iptables off and
# the harness adds its NAT/forwarding rules (a second dockerd with iptables on
# flushes the DOCKER-* chains and drops the first daemon's docker0 rules).
CLASSIC_SOCK=$RUN/docker-classic.sock
CLASSIC_HOST_URL=unix://$CLASSIC_SOCK
CLASSIC_BRIDGE=kiln-classic0
CLASSIC_BRIDGE_ADDR=172.31.254.1/24
CLASSIC_POOL=172.31.0.0/17
CLASSIC_NET=172.31.0.0/16
FW_CHAIN=KILN-CLASSIC

# Standalone buildkitd.
SHARED_BUILDKIT=${KILN_SHARED_BUILDKIT:-$ROOT/../shared/buildkit}
BIN=$DIR/bin
BUILDKITD=$BIN/buildkitd
BUILDCTL=$BIN/buildctl
BK_SOCK=$RUN/buildkitd.sock
BK_UNIX=unix://$BK_SOCK
BK_TLS_PORT=1234
BK_TCP_PORT=1235
BK_TLS=tcp://127.0.0.1:$BK_TLS_PORT
BK_TCP=tcp://127.0.0.1:$BK_TCP_PORT
BK_LOG=$RUN/buildkitd.log
BK_CONFIG=$DIR/buildkitd.toml
TLS_DIR=$DIR/tls
BK_TLS_ARGS=(--tlscacert "$TLS_DIR/ca.pem" --tlscert "$TLS_DIR/client.pem" --tlskey "$TLS_DIR/client-key.pem")
RUNC=/usr/sbin/runc

# Podman with storage of its own (never /var/lib/containers): an API service
# on PODMAN_SOCK, and the same storage for plain `podman` CLI calls through
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (written to the env file).
PODMAN_DIR=$DIR/podman
PODMAN_RUN=$RUN/podman
PODMAN_SOCK=$RUN/podman.sock
PODMAN_LOG=$RUN/podman.log
PODMAN_STORAGE_CONF=$PODMAN_DIR/storage.conf
PODMAN_CONTAINERS_CONF=$PODMAN_DIR/containers.conf
# Debian's runc refuses podman's default rlimits (nofile 1048576).
PODMAN_ULIMITS=(--ulimit nofile=16384:16384 --ulimit nproc=16384:16384)
# A buildkitd in a podman container, for podman-container:// addresses.
PODMAN_BK_NAME=kiln-buildkitd
PODMAN_BK_REPO=localhost/kiln-buildkitd
PODMAN_BK_DATA=$PODMAN_DIR/buildkitd-data
PODMAN_BK_SOCK=/run/buildkit/buildkitd.sock

# A containerd of its own (config version 3, CRI and NRI off), apart from the
# containerds the two dockerds start under their exec roots.
CTRD_DIR=$DIR/containerd
CTRD_RUN=$RUN/containerd
CTRD_SOCK=$CTRD_RUN/containerd.sock
CTRD_CONFIG=$CTRD_DIR/config.toml
CTRD_LOG=$RUN/containerd.log
CTRD_PID=$RUN/containerd.pid
CTRD_NAMESPACE=k8s.io

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

docker_ping() { # [socket]
  local s=${1:-$SOCK}
  [ -S "$s" ] && [ "$(curl -s --max-time 3 --unix-socket "$s" http://d/_ping 2>/dev/null)" = OK ]
}

registry_ping() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$REGISTRY/v2/" 2>/dev/null)" = 200 ]
}

pid_alive() { # pidfile process-name: the pid runs and is that program
  local pid
  [ -f "$1" ] && pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

write_if_changed() { # file content: returns 0 if the file changed
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi
  printf '%s\n' "$2" >"$1.tmp"
  mv -f "$1.tmp" "$1"
  return 0
}

# KILN_HARNESS_DAEMONS
check_daemons() {
  local d
  for d in ${DAEMONS//,/ }; do
    case "$d" in
      docker | docker-classic | buildkitd | podman | containerd) ;;
      *) die "KILN_HARNESS_DAEMONS names an unknown daemon '$d'" \
        "use a comma-separated subset of $DAEMONS_DEFAULT" ;;
    esac
  done
}
want() { case ",${DAEMONS// /}," in *",$1,"*) return 0 ;; esac; return 1; }

# Background jobs: `bg_run NAME FUNC ARGS...` runs FUNC in a subshell (its
# log lines go to a file); `bg_wait` prints each job's lines once it is done
# and dies if any job failed.
BG_NAMES=()
BG_PIDS=()
bg_run() {
  local name=$1
  shift
  ("$@") >"$RUN/job-$name.log" 2>&1 &
  BG_NAMES+=("$name")
  BG_PIDS+=("$!")
}
bg_wait() {
  local i rc failed=()
  for i in "${!BG_PIDS[@]}"; do
    rc=0
    wait "${BG_PIDS[$i]}" || rc=$?
    cat "$RUN/job-${BG_NAMES[$i]}.log" >&2
    rm -f "$RUN/job-${BG_NAMES[$i]}.log"
    [ "$rc" = 0 ] || failed+=("${BG_NAMES[$i]}")
  done
  BG_NAMES=()
  BG_PIDS=()
  [ ${#failed[@]} = 0 ] || die "failed: ${failed[*]} (see the messages above)"
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
# 2. dockerd (two of them: `docker` and `docker-classic`)

# docker_profile docker|docker-classic: sets the D_* variables the functions
# below use (each background job has its own copy).
docker_profile() {
  case "$1" in
    docker)
      D_KIND=docker D_STEP=dockerd D_SOCK=$SOCK D_PID=$RUN/dockerd.pid D_LOG=$RUN/dockerd.log
      D_DATA=$DIR/docker-data D_EXEC=$RUN/exec D_JSON=$DIR/daemon.json D_NET=$RUN/net-verified ;;
    docker-classic)
      D_KIND=docker-classic D_STEP=dockerd-classic D_SOCK=$CLASSIC_SOCK D_PID=$RUN/docker-classic.pid
      D_LOG=$RUN/docker-classic.log D_DATA=$DIR/docker-classic-data D_EXEC=$RUN/exec-classic
      D_JSON=$DIR/daemon-classic.json D_NET=$RUN/net-verified-classic ;;
    *) die "internal: unknown docker profile $1" ;;
  esac
  D_HOST=unix://$D_SOCK
}
dkd() { DOCKER_HOST=$D_HOST docker "$@"; }

daemon_json() { # docker|docker-classic
  case "$1" in
    docker)
      printf '%s' '{
  "features": { "containerd-snapshotter": true },
  "builder": { "entitlements": { "network-host": true, "security-insecure": true } },
  "log-level": "info"
}' ;;
    docker-classic)
      # iptables off (and ip6tables: it defaults to on in 28 and would flush the
      # first daemon's ip6tables chains too); ensure_classic_network adds NAT.
      printf '%s' '{
  "features": { "containerd-snapshotter": false },
  "builder": { "entitlements": { "network-host": true, "security-insecure": true } },
  "bridge": "'"$CLASSIC_BRIDGE"'",
  "iptables": false,
  "ip6tables": false,
  "ip-masq": false,
  "default-address-pools": [ { "base": "'"$CLASSIC_POOL"'", "size": 24 } ],
  "log-level": "info"
}' ;;
  esac
}

stop_pidfile() { # process-name pidfile [label]
  local pid
  pid_alive "$2" "$1" || { rm -f "$2"; return 0; }
  pid=$(cat "$2")
  log "stopping ${3:-$1} (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "${3:-$1} did not stop in 30s, killing it"
    kill -9 "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$2"
}

ipt() { iptables -w 10 "$@"; }
ipt_ensure() { # table chain rule...: append the rule unless it is there
  local t=$1 c=$2
  shift 2
  ipt -t "$t" -C "$c" "$@" 2>/dev/null || ipt -t "$t" -A "$c" "$@"
}

# The classic daemon's bridge and NAT. dockerd with "iptables": false leaves
# the DOCKER-* chains (the first daemon's) alone; the first daemon's restarts
# leave the KILN-CLASSIC chains alone (both checked on dockerd 28.5).
ensure_classic_network() {
  if ! ip link show "$CLASSIC_BRIDGE" >/dev/null 2>&1; then
    ip link add "$CLASSIC_BRIDGE" type bridge ||
      die "cannot create the bridge $CLASSIC_BRIDGE (ip link add $CLASSIC_BRIDGE type bridge)"
  fi
  if ! ip -4 -o addr show dev "$CLASSIC_BRIDGE" | grep -qF " $CLASSIC_BRIDGE_ADDR "; then
    ip addr add "$CLASSIC_BRIDGE_ADDR" dev "$CLASSIC_BRIDGE" ||
      die "cannot give $CLASSIC_BRIDGE the address $CLASSIC_BRIDGE_ADDR" \
        "does another interface use that subnet? (ip -4 route)"
  fi
  ip link set "$CLASSIC_BRIDGE" up
  # Like dockerd: when it turns forwarding on, the FORWARD policy becomes DROP.
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    echo 1 >/proc/sys/net/ipv4/ip_forward
    ipt -P FORWARD DROP
  fi
  local t
  for t in filter nat; do
    ipt -t "$t" -n -L "$FW_CHAIN" >/dev/null 2>&1 || ipt -t "$t" -N "$FW_CHAIN" ||
      die "iptables -t $t -N $FW_CHAIN failed"
  done
  {
    ipt_ensure filter "$FW_CHAIN" -s "$CLASSIC_NET" -j ACCEPT &&
      ipt_ensure filter "$FW_CHAIN" -d "$CLASSIC_NET" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT &&
      ipt_ensure filter FORWARD -j "$FW_CHAIN" &&
      ipt_ensure nat "$FW_CHAIN" -s "$CLASSIC_NET" ! -d "$CLASSIC_NET" -j MASQUERADE &&
      ipt_ensure nat POSTROUTING -j "$FW_CHAIN"
  } || die "adding the iptables rules for $CLASSIC_NET ($FW_CHAIN chains) failed"
}

remove_classic_network() {
  local t
  ipt -t filter -D FORWARD -j "$FW_CHAIN" 2>/dev/null || true
  ipt -t nat -D POSTROUTING -j "$FW_CHAIN" 2>/dev/null || true
  for t in filter nat; do
    ipt -t "$t" -F "$FW_CHAIN" 2>/dev/null || true
    ipt -t "$t" -X "$FW_CHAIN" 2>/dev/null || true
  done
  if ip link show "$CLASSIC_BRIDGE" >/dev/null 2>&1; then ip link del "$CLASSIC_BRIDGE" 2>/dev/null || true; fi
}

ensure_dockerd() { # docker|docker-classic
  docker_profile "$1"
  step_begin "$D_STEP"
  mkdir -p "$D_EXEC" "$D_DATA"
  local changed=0
  write_if_changed "$D_JSON" "$(daemon_json "$D_KIND")" && changed=1
  if docker_ping "$D_SOCK"; then
    if [ "$changed" = 1 ] && pid_alive "$D_PID" dockerd; then
      log "$(basename "$D_JSON") changed: restarting $D_STEP"
      stop_pidfile dockerd "$D_PID" "$D_STEP"
    else
      check_buildkit "$D_SOCK" "$D_LOG"
      step_end "already running (pid $(cat "$D_PID" 2>/dev/null || echo '?'))"
      return
    fi
  fi
  if pid_alive "$D_PID" dockerd; then
    # Running but not answering: give it a moment (it may be starting), then restart.
    for _ in $(seq 1 10); do docker_ping "$D_SOCK" && break; sleep 1; done
    if docker_ping "$D_SOCK"; then check_buildkit "$D_SOCK" "$D_LOG"; step_end "already running"; return; fi
    stop_pidfile dockerd "$D_PID" "$D_STEP"
  fi
  rm -f "$D_PID" "$D_SOCK" "$D_NET"
  [ -f "$D_LOG" ] && mv -f "$D_LOG" "$D_LOG.1"
  log "starting $D_STEP (log: $D_LOG)"
  # setsid + nohup: the daemon outlives this script and its terminal/CI step.
  # Each dockerd starts its own containerd, under its exec root
  # ($D_EXEC/containerd/containerd.sock).
  setsid nohup dockerd \
    --data-root "$D_DATA" \
    --exec-root "$D_EXEC" \
    --pidfile "$D_PID" \
    -H "$D_HOST" \
    --config-file "$D_JSON" \
    >"$D_LOG" 2>&1 </dev/null 9>&- &
  local dpid=$! how="within 60s"
  for _ in $(seq 1 120); do
    docker_ping "$D_SOCK" && break
    kill -0 "$dpid" 2>/dev/null || { how="(it exited during startup)"; break; }
    sleep 0.5
  done
  if ! docker_ping "$D_SOCK"; then
    tail -n 30 "$D_LOG" | sed "s/^/harness:   $D_STEP: /" >&2
    die "$D_STEP did not answer on $D_SOCK $how" "full log: $D_LOG"
  fi
  check_buildkit "$D_SOCK" "$D_LOG"
  step_end "started (pid $(cat "$D_PID"), $(dkd version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
}

check_buildkit() { # socket log
  # After the 101 curl waits for data that never comes: cut it short.
  local out t
  for t in 0.3 1 3; do
    out=$(curl -s -i --max-time "$t" --unix-socket "$1" -X POST \
      -H 'Connection: Upgrade' -H 'Upgrade: h2c' http://d/grpc 2>/dev/null | head -n 1) || true
    case "$out" in *"101 Switching Protocols"*) return 0 ;; esac
  done
  die "dockerd on $1 does not offer BuildKit on POST /grpc (got: ${out:-nothing})" \
    "see $2; try: $0 down && $0 up"
}

# ---------------------------------------------------------------------------
# 2b. standalone buildkitd

buildkitd_available() {
  [ -f "$SHARED_BUILDKIT/buildkitd" ] && [ -f "$SHARED_BUILDKIT/buildctl" ]
}

# Copy buildkitd and buildctl out of the read-only shared folder. A stamp keeps
# warm runs cheap: checksums are compared only when the size, mtime or inode
# of the source or of the copy moved. Returns 0 if buildkitd changed (the
# daemon must restart).
install_buildkit_bins() {
  local b src dst stamp changed=1
  mkdir -p "$BIN"
  bin_stat() { stat -L -c '%s %Y %i %d' "$src" "$dst" 2>/dev/null | tr '\n' ' '; }
  for b in buildkitd buildctl; do
    src=$SHARED_BUILDKIT/$b dst=$BIN/$b stamp=$BIN/.$b.stamp
    [ -r "$src" ] || die "cannot read $src"
    if [ -x "$dst" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(bin_stat)" ]; then continue; fi
    if ! [ -x "$dst" ] || [ "$(sha256sum <"$src" | cut -d' ' -f1)" != "$(sha256sum <"$dst" | cut -d' ' -f1)" ]; then
      log "copying $src to $dst"
      cp -f "$src" "$dst.tmp" || die "cannot copy $src to $dst.tmp"
      chmod 0755 "$dst.tmp"
      mv -f "$dst.tmp" "$dst"
      [ "$b" = buildkitd ] && changed=0
    fi
    bin_stat >"$stamp"
  done
  return "$changed"
}

# Certificates for the mutual-TLS endpoint: a CA, a server certificate
# (127.0.0.1, localhost; serverAuth) and a client certificate (clientAuth),
# ECDSA P-256 keys (PKCS#8, 0600). Regenerated when missing, when the recipe
# changed or when one expires within 30 days. Returns 0 if regenerated.
TLS_RECIPE='v1 ec-p256 ca:3650d leaf:825d server:IP:127.0.0.1,DNS:localhost client:CN=kiln-test-client'
tls_ok() {
  local f
  for f in ca.pem server.pem server-key.pem client.pem client-key.pem; do [ -s "$TLS_DIR/$f" ] || return 1; done
  [ "$(cat "$TLS_DIR/recipe" 2>/dev/null)" = "$TLS_RECIPE" ] || return 1
  for f in ca server client; do
    openssl x509 -checkend 2592000 -noout -in "$TLS_DIR/$f.pem" >/dev/null 2>&1 || return 1
  done
  openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/client.pem" >/dev/null 2>&1 || return 1
  for f in server client; do # the key belongs to the certificate
    [ "$(openssl x509 -noout -pubkey -in "$TLS_DIR/$f.pem" 2>/dev/null)" = \
      "$(openssl pkey -pubout -in "$TLS_DIR/$f-key.pem" 2>/dev/null)" ] || return 1
  done
}

gen_tls() {
  local t=$TLS_DIR.tmp
  rm -rf "$t"
  mkdir -p "$t"
  cat >"$t/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  (
    set -e
    umask 077
    cd "$t"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    key ca-key.pem
    openssl req -config openssl.cnf -new -x509 -key ca-key.pem -subj "/CN=kiln harness test CA" \
      -extensions ca -days 3650 -out ca.pem
    local n
    for n in server client; do
      key "$n-key.pem"
      openssl req -config openssl.cnf -new -key "$n-key.pem" \
        -subj "/CN=$([ "$n" = server ] && echo localhost || echo kiln-test-client)" -out "$n.csr"
      openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 16)" \
        -extfile openssl.cnf -extensions "$n" -days 825 -out "$n.pem"
      rm -f "$n.csr"
    done
    chmod 0644 ca.pem server.pem client.pem openssl.cnf
    chmod 0600 ./*-key.pem
    printf '%s\n' "$TLS_RECIPE" >recipe
    chmod 0644 recipe
  ) >"$t.log" 2>&1 || { sed 's/^/harness:   openssl: /' "$t.log" >&2; die "generating certificates in $t failed"; }
  rm -f "$t.log"
  chmod 0755 "$t"
  rm -rf "$TLS_DIR.old"
  [ -d "$TLS_DIR" ] && mv "$TLS_DIR" "$TLS_DIR.old"
  mv "$t" "$TLS_DIR"
  rm -rf "$TLS_DIR.old"
}

ensure_tls() {
  tls_ok && return 1
  log "generating the CA, server and client certificates in $TLS_DIR"
  gen_tls
  tls_ok || die "the certificates generated in $TLS_DIR do not verify" \
    "(openssl verify -CAfile $TLS_DIR/ca.pem $TLS_DIR/server.pem $TLS_DIR/client.pem)"
  return 0
}

buildkitd_toml() { # [podman]: the config of the buildkitd in the podman container
  if [ "${1:-}" = podman ]; then
    # Inside the container: state on a host directory mounted at
    # /var/lib/buildkit (overlayfs cannot stack on the container's own
    # overlay root), the unix socket only (host network: no tcp port that
    # could clash with the harness's buildkitd on $BK_TLS_PORT/$BK_TCP_PORT).
    cat <<EOT
# Written by scripts/harness.sh into the $PODMAN_BK_REPO image.
root = "/var/lib/buildkit"
insecure-entitlements = ["network.host", "security.insecure"]

[log]
  format = "text"

[grpc]
  address = ["unix://$PODMAN_BK_SOCK"]
EOT
  else
    cat <<EOT
# Written by scripts/harness.sh; a change restarts buildkitd.
root = "$DIR/buildkitd-data"
insecure-entitlements = ["network.host", "security.insecure"]

[log]
  format = "text"

# buildkitd puts TLS on every tcp listener: the plain endpoint
# $BK_TCP is a socat forwarder to the unix socket.
[grpc]
  address = ["$BK_UNIX", "tcp://127.0.0.1:$BK_TLS_PORT"]

  [grpc.tls]
    cert = "$TLS_DIR/server.pem"
    key = "$TLS_DIR/server-key.pem"
    ca = "$TLS_DIR/ca.pem"
EOT
  fi
  cat <<EOT

[worker.oci]
  enabled = true
  binary = "$RUNC"
  # One GC rule for every record (the default rules cap cache mounts and local
  # sources at 512 MB): nothing is pruned below 10 GB, so fixtures and test
  # caches survive a whole run; above 20 GB used or under 2 GB free it prunes.
  gc = true

  [[worker.oci.gcpolicy]]
    all = true
    reservedSpace = "10GB"
    maxUsedSpace = "20GB"
    minFreeSpace = "2GB"

[worker.containerd]
  enabled = false

[registry."$REGISTRY"]
  http = true
EOT
}

bk_ping() { # address [buildctl tls args...]
  local addr=$1
  shift
  timeout 15 "$BUILDCTL" --addr "$addr" "$@" debug workers >/dev/null 2>&1
}

ensure_buildkitd() {
  step_begin buildkitd
  [ -x "$RUNC" ] || die "$RUNC is missing" "the OCI worker runs Debian's runc: apt-get install runc"
  mkdir -p "$DIR/buildkitd-data"
  local restart=0 why=()
  install_buildkit_bins && { restart=1; why+=("the buildkitd binary"); }
  ensure_tls && { restart=1; why+=(certificates); }
  write_if_changed "$BK_CONFIG" "$(buildkitd_toml)" && { restart=1; why+=("$(basename "$BK_CONFIG")"); }
  if pid_alive "$RUN/buildkitd.pid" buildkitd; then
    if [ "$restart" = 1 ]; then
      log "${why[*]} changed: restarting buildkitd"
      stop_pidfile buildkitd "$RUN/buildkitd.pid"
    else
      local ok=0
      for _ in $(seq 1 20); do
        if bk_ping "$BK_UNIX"; then ok=1; break; fi
        sleep 0.5
      done
      if [ "$ok" = 1 ]; then
        ensure_buildkitd_tcp
        step_end "already running (pid $(cat "$RUN/buildkitd.pid"))"
        return
      fi
      log "buildkitd (pid $(cat "$RUN/buildkitd.pid")) does not answer on $BK_UNIX: restarting it"
      stop_pidfile buildkitd "$RUN/buildkitd.pid"
    fi
  elif [ -S "$BK_SOCK" ] && bk_ping "$BK_UNIX"; then
    die "something else answers on $BK_SOCK (no buildkitd with pid file $RUN/buildkitd.pid)" \
      "stop it, or run $0 down"
  fi
  umount_under "$DIR/buildkitd-data"
  rm -f "$RUN/buildkitd.pid" "$BK_SOCK" "$RUN/net-verified-buildkitd"
  [ -f "$BK_LOG" ] && mv -f "$BK_LOG" "$BK_LOG.1"
  log "starting buildkitd $("$BUILDKITD" --version 2>/dev/null | awk '{ print $3 }') (log: $BK_LOG)"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid nohup bash -c 'cd / || exit 1; echo $$ >"$1"; shift; exec "$@"' _ "$RUN/buildkitd.pid" \
    "$BUILDKITD" --config "$BK_CONFIG" >"$BK_LOG" 2>&1 </dev/null 9>&- &
  local bpid=$! how="within 60s"
  for _ in $(seq 1 120); do
    bk_ping "$BK_UNIX" && break
    kill -0 "$bpid" 2>/dev/null || { how="(it exited during startup)"; break; }
    sleep 0.5
  done
  if ! bk_ping "$BK_UNIX"; then
    tail -n 30 "$BK_LOG" | sed 's/^/harness:   buildkitd: /' >&2
    die "buildkitd did not answer on $BK_UNIX $how" \
      "is port $BK_TLS_PORT taken by something else? (ss -ltnp | grep :$BK_TLS_PORT); full log: $BK_LOG"
  fi
  ensure_buildkitd_tcp
  step_end "started (pid $(cat "$RUN/buildkitd.pid"))"
}

# The plain tcp endpoint: socat forwards 127.0.0.1:1235 to the unix socket.
ensure_buildkitd_tcp() {
  local pf=$RUN/buildkitd-tcp.pid
  if pid_alive "$pf" socat && bk_ping "$BK_TCP"; then return; fi
  stop_pidfile socat "$pf" "the tcp forwarder"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid nohup bash -c 'cd / || exit 1; echo $$ >"$1"; shift; exec "$@"' _ "$pf" \
    socat "TCP-LISTEN:$BK_TCP_PORT,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$BK_SOCK" \
    >"$RUN/buildkitd-tcp.log" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 20); do bk_ping "$BK_TCP" && break; sleep 0.25; done
  if ! bk_ping "$BK_TCP"; then
    sed 's/^/harness:   socat: /' "$RUN/buildkitd-tcp.log" >&2
    die "buildkitd does not answer on $BK_TCP through socat" \
      "is port $BK_TCP_PORT taken? (ss -ltnp | grep :$BK_TCP_PORT)"
  fi
  log "tcp forwarder $BK_TCP -> $BK_SOCK (pid $(cat "$pf"))"
}

# ---------------------------------------------------------------------------
# 2c. podman (its own storage) and a buildkitd in a podman container

# The same files configure the API service and plain `podman` CLI calls (the
# podman-container:// helper runs `podman exec`): both then open one storage,
# one libpod database and one tmp dir, none of them podman's defaults.
podman_storage_conf() {
  cat <<EOT
# Written by scripts/harness.sh: the harness's podman storage.
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/root"
runroot = "$PODMAN_RUN/runroot"
EOT
}
podman_containers_conf() {
  cat <<EOT
# Written by scripts/harness.sh: the harness's podman.
[containers]
# Debian's runc refuses podman's default rlimits (nofile 1048576).
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]

[engine]
# No systemd here: cgroupfs, and events in a file.
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_RUN/events.log"
# Not /run/libpod, the default podman's (the database and volumes follow
# graphroot from storage.conf).
tmp_dir = "$PODMAN_RUN/tmp"
EOT
}

PM=(env "CONTAINERS_CONF=$PODMAN_CONTAINERS_CONF" "CONTAINERS_STORAGE_CONF=$PODMAN_STORAGE_CONF" podman)
pm() { "${PM[@]}" "$@"; }

podman_ping() {
  [ -S "$PODMAN_SOCK" ] && [ "$(curl -s --max-time 3 --unix-socket "$PODMAN_SOCK" http://d/_ping 2>/dev/null)" = OK ]
}

ensure_podman() {
  step_begin podman
  command -v podman >/dev/null 2>&1 || die "podman is not installed" "apt-get install --no-install-recommends podman"
  mkdir -p "$PODMAN_DIR/root" "$PODMAN_RUN/runroot" "$PODMAN_RUN/tmp"
  local changed=0
  write_if_changed "$PODMAN_STORAGE_CONF" "$(podman_storage_conf)" && changed=1
  write_if_changed "$PODMAN_CONTAINERS_CONF" "$(podman_containers_conf)" && changed=1
  if pid_alive "$RUN/podman.pid" podman; then
    if [ "$changed" = 1 ]; then
      log "the podman configuration changed: restarting the podman service"
      stop_pidfile podman "$RUN/podman.pid" "the podman service"
    else
      for _ in $(seq 1 20); do podman_ping && break; sleep 0.25; done
      if podman_ping; then
        ensure_podman_buildkitd
        step_end "already running (pid $(cat "$RUN/podman.pid"))"
        return
      fi
      log "the podman service (pid $(cat "$RUN/podman.pid")) does not answer on $PODMAN_SOCK: restarting it"
      stop_pidfile podman "$RUN/podman.pid" "the podman service"
    fi
  fi
  rm -f "$PODMAN_SOCK"
  [ -f "$PODMAN_LOG" ] && mv -f "$PODMAN_LOG" "$PODMAN_LOG.1"
  log "starting the podman API service $(podman --version | awk '{ print $3 }') (log: $PODMAN_LOG)"
  # --time=0: the service never exits on its own.
  # shellcheck disable=SC2016 # expanded by the inner bash
  CONTAINERS_CONF=$PODMAN_CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$PODMAN_STORAGE_CONF \
    setsid nohup bash -c 'cd / || exit 1; echo $$ >"$1"; shift; exec "$@"' _ "$RUN/podman.pid" \
    podman system service --time=0 "unix://$PODMAN_SOCK" >"$PODMAN_LOG" 2>&1 </dev/null 9>&- &
  local ppid=$! how="within 30s"
  for _ in $(seq 1 120); do
    podman_ping && break
    kill -0 "$ppid" 2>/dev/null || { how="(it exited during startup)"; break; }
    sleep 0.25
  done
  if ! podman_ping; then
    tail -n 30 "$PODMAN_LOG" | sed 's/^/harness:   podman: /' >&2
    die "the podman service did not answer on $PODMAN_SOCK $how" "full log: $PODMAN_LOG"
  fi
  ensure_podman_buildkitd
  step_end "started (pid $(cat "$RUN/podman.pid"))"
}

# The image's content key: the binaries, runc and its libraries, the config.
podman_bk_files() { # prints "host-path" lines of runc and its shared libraries
  echo "$RUNC"
  ldd "$RUNC" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}
podman_bk_key() {
  {
    echo "recipe v1"
    sha256sum <"$SHARED_BUILDKIT/buildkitd"
    sha256sum <"$SHARED_BUILDKIT/buildctl"
    local f
    for f in $(podman_bk_files); do printf '%s ' "$f"; sha256sum <"$f"; done
    buildkitd_toml podman
  } | sha256sum | cut -c1-12
}

# An image from a tar (no registry, no Dockerfile): BuildKit's static
# binaries in /usr/bin, Debian's runc with its libraries, the config.
build_podman_bk_image() { # image
  local work=$PODMAN_DIR/image-work f
  rm -rf "$work"
  mkdir -p "$work/rootfs/usr/bin" "$work/rootfs/usr/sbin" "$work/rootfs/etc/buildkit" \
    "$work/rootfs/run/buildkit" "$work/rootfs/var/lib/buildkit" "$work/rootfs/tmp"
  chmod 1777 "$work/rootfs/tmp"
  install -m 0755 "$SHARED_BUILDKIT/buildkitd" "$work/rootfs/usr/bin/buildkitd"
  install -m 0755 "$SHARED_BUILDKIT/buildctl" "$work/rootfs/usr/bin/buildctl"
  for f in $(podman_bk_files); do
    mkdir -p "$work/rootfs$(dirname "$f")"
    cp -L "$f" "$work/rootfs$f"
  done
  buildkitd_toml podman >"$work/rootfs/etc/buildkit/buildkitd.toml"
  tar --numeric-owner --owner=0 --group=0 --sort=name -C "$work/rootfs" -cf "$work/rootfs.tar" . ||
    die "packing $work/rootfs failed"
  pm import --quiet --change 'CMD ["buildkitd"]' "$work/rootfs.tar" "$1" >/dev/null ||
    die "podman import of $work/rootfs.tar as $1 failed"
  rm -rf "$work"
}

podman_bk_ping() {
  timeout 15 "${PM[@]}" exec "$PODMAN_BK_NAME" buildctl debug workers >/dev/null 2>&1
}

ensure_podman_buildkitd() {
  buildkitd_available || { log "podman buildkitd: skipped: no buildkitd and buildctl in $SHARED_BUILDKIT"; return; }
  local key image t0=$EPOCHREALTIME
  key=$(podman_bk_key)
  image=$PODMAN_BK_REPO:$key
  if ! pm image exists "$image"; then
    log "assembling the image $image (buildkitd, buildctl, runc)"
    build_podman_bk_image "$image"
    log "imported $image ($(since "$t0")s)"
  fi
  local cur state
  cur=$(pm container inspect -f '{{.ImageName}}' "$PODMAN_BK_NAME" 2>/dev/null || true)
  state=$(pm container inspect -f '{{.State.Status}}' "$PODMAN_BK_NAME" 2>/dev/null || true)
  if [ -n "$cur" ] && { [ "$cur" != "$image" ] || [ "$state" != running ] || ! podman_bk_ping; }; then
    log "replacing the container $PODMAN_BK_NAME (image ${cur}, $state)"
    pm rm -f -t 10 "$PODMAN_BK_NAME" >/dev/null || die "podman rm -f $PODMAN_BK_NAME failed"
    cur=
  fi
  if [ -z "$cur" ]; then
    # Older images of this recipe are no longer needed.
    local old
    for old in $(pm images --format '{{.Repository}}:{{.Tag}}' | grep -F "$PODMAN_BK_REPO:" | grep -vxF "$image"); do
      pm rmi "$old" >/dev/null 2>&1 || true
    done
    umount_under "$PODMAN_BK_DATA"
    mkdir -p "$PODMAN_BK_DATA"
    log "starting $PODMAN_BK_NAME in podman (image $image)"
    # Privileged (overlayfs, runc), host network (RUN steps reach the mirror
    # and the registry on $REGISTRY like the host's buildkitd's). conmon,
    # which outlives this script, inherits open descriptors: not the lock (9).
    local err=$PODMAN_RUN/run.err
    if ! pm run -d --name "$PODMAN_BK_NAME" --privileged --network host "${PODMAN_ULIMITS[@]}" \
      -v "$PODMAN_BK_DATA:/var/lib/buildkit" "$image" \
      buildkitd --config /etc/buildkit/buildkitd.toml >/dev/null 2>"$err" </dev/null 9>&-; then
      sed 's/^/harness:   podman run: /' "$err" >&2
      die "podman run of $image as $PODMAN_BK_NAME failed" "see podman logs $PODMAN_BK_NAME"
    fi
  fi
  for _ in $(seq 1 60); do podman_bk_ping && break; sleep 0.5; done
  if ! podman_bk_ping; then
    pm logs --tail 30 "$PODMAN_BK_NAME" 2>&1 | sed 's/^/harness:   podman buildkitd: /' >&2
    die "the buildkitd in the podman container $PODMAN_BK_NAME does not answer (podman exec $PODMAN_BK_NAME buildctl debug workers)" \
      "full log: podman logs $PODMAN_BK_NAME (with CONTAINERS_CONF=$PODMAN_CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$PODMAN_STORAGE_CONF)"
  fi
  log "buildkitd answers in the podman container $PODMAN_BK_NAME ($(since "$t0")s)"
}

# ---------------------------------------------------------------------------
# 2d. containerd of its own

containerd_toml() {
  cat <<EOT
# Written by scripts/harness.sh; a change restarts this containerd (never the
# dockerds' own containerds).
version = 3
root = "$CTRD_DIR/root"
state = "$CTRD_RUN/state"
# No CRI (it would fight over CNI and the streaming port), no NRI (one
# socket, /var/run/nri/nri.sock, for every containerd on the host).
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.sandbox.controller.v1.shim",
  "io.containerd.nri.v1.nri",
]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$CTRD_DIR/opt"
EOT
}

ctrd() { ctr -a "$CTRD_SOCK" "$@"; }
containerd_ping() { [ -S "$CTRD_SOCK" ] && timeout 10 ctr -a "$CTRD_SOCK" version >/dev/null 2>&1; }

ensure_containerd() {
  step_begin containerd
  { command -v containerd && command -v ctr; } >/dev/null 2>&1 ||
    die "containerd and ctr are not installed" "they come with docker.io (Debian sid's containerd package)"
  command -v containerd-shim-runc-v2 >/dev/null 2>&1 || die "containerd-shim-runc-v2 is not on PATH"
  mkdir -p "$CTRD_DIR/root" "$CTRD_DIR/opt" "$CTRD_RUN/state"
  local changed=0
  write_if_changed "$CTRD_CONFIG" "$(containerd_toml)" && changed=1
  if pid_alive "$CTRD_PID" containerd; then
    if [ "$changed" = 1 ]; then
      log "$(basename "$CTRD_CONFIG") changed: restarting containerd"
      stop_pidfile containerd "$CTRD_PID"
    else
      for _ in $(seq 1 20); do containerd_ping && break; sleep 0.25; done
      if containerd_ping; then
        ensure_containerd_namespace
        step_end "already running (pid $(cat "$CTRD_PID"))"
        return
      fi
      log "containerd (pid $(cat "$CTRD_PID")) does not answer on $CTRD_SOCK: restarting it"
      stop_pidfile containerd "$CTRD_PID"
    fi
  elif containerd_ping; then
    die "something else answers on $CTRD_SOCK (no containerd with pid file $CTRD_PID)" "stop it, or run $0 down"
  fi
  rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc"
  [ -f "$CTRD_LOG" ] && mv -f "$CTRD_LOG" "$CTRD_LOG.1"
  log "starting containerd $(containerd --version | awk '{ print $3 }') (log: $CTRD_LOG)"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid nohup bash -c 'cd / || exit 1; echo $$ >"$1"; shift; exec "$@"' _ "$CTRD_PID" \
    containerd --config "$CTRD_CONFIG" >"$CTRD_LOG" 2>&1 </dev/null 9>&- &
  local cpid=$! how="within 30s"
  for _ in $(seq 1 120); do
    containerd_ping && break
    kill -0 "$cpid" 2>/dev/null || { how="(it exited during startup)"; break; }
    sleep 0.25
  done
  if ! containerd_ping; then
    tail -n 30 "$CTRD_LOG" | sed 's/^/harness:   containerd: /' >&2
    die "containerd did not answer on $CTRD_SOCK $how" "full log: $CTRD_LOG"
  fi
  ensure_containerd_namespace
  step_end "started (pid $(cat "$CTRD_PID"))"
}

# k3s and the CRI keep their images in the namespace k8s.io: have it exist.
ensure_containerd_namespace() {
  ctrd namespaces ls -q | grep -qxF "$CTRD_NAMESPACE" ||
    ctrd namespaces create "$CTRD_NAMESPACE" || die "ctr namespaces create $CTRD_NAMESPACE failed"
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
  setsid nohup bash -c 'cd / || exit 1; echo $$ >"$1"; exec docker-registry serve "$2"' _ \
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
golang_cache_key() { # [arch]
  {
    echo "debootstrap --variant=minbase --arch=${1:-amd64} --include=$GO_INCLUDE $GO_SUITE $MIRROR"
    echo "tar --numeric-owner --sort=name --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* | gzip -6"
    cat "$FIXTURES/customize-golang-rootfs.sh"
  } | sha256sum | cut -c1-12
}

umount_under() { # dir: unmount anything a killed debootstrap left mounted
  local m
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

build_golang_rootfs() { # out-dir [arch]: another arch than amd64 needs QEMU (cmd_qemu)
  local out=$1 arch=${2:-amd64} work=$CACHE/golang-work
  [ "$arch" = amd64 ] || work=$CACHE/$arch/golang-work
  umount_under "$work"
  rm -rf --one-file-system "$work"
  mkdir -p "$work"
  local t0=$EPOCHREALTIME
  if [ "$arch" = amd64 ]; then
    log "debootstrap $GO_SUITE minbase + $GO_INCLUDE (about 80 s; log: $work/debootstrap.log)"
    debootstrap --variant=minbase --arch=amd64 --include="$GO_INCLUDE" \
      "$GO_SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 &
  else
    # Unpack on the host, then configure the packages under QEMU.
    log "debootstrap $GO_SUITE minbase + $GO_INCLUDE for $arch under QEMU (about 10 min; log: $work/debootstrap.log)"
    { debootstrap --variant=minbase --arch="$arch" --foreign --include="$GO_INCLUDE" \
      "$GO_SUITE" "$work/rootfs" "$MIRROR" && chroot "$work/rootfs" /debootstrap/debootstrap --second-stage; } \
      >"$work/debootstrap.log" 2>&1 &
  fi
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
  # (an arm64 go runs here through QEMU's binfmt handler)
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
  # Like the official image, the config names its Go release (GOLANG_VERSION).
  $PYTHON - "$FIXTURES/golang-config.json" "$GO_VERSION" >"$out/config.json.tmp" <<'PY' ||
import json, sys
c = json.load(open(sys.argv[1]))
c["Env"] = [e for e in c.get("Env", []) if not e.startswith("GOLANG_VERSION=")] + ["GOLANG_VERSION=" + sys.argv[2]]
json.dump(c, sys.stdout, indent=2)
PY
    die "cannot write the golang fixture's config"
  mv -f "$out/config.json.tmp" "$out/config.json"
  local args=() t
  for t in "${GO_TAGS[@]}" "$GO_VERSION-trixie" "$GO_VERSION-bookworm"; do args+=(--tag "$t"); done
  SOURCE_DATE_EPOCH=0 $PYTHON "$FIXTURES/ocipush.py" push --registry "$REGISTRY" --repo "$GO_REPO" \
    "${args[@]}" --platform linux/amd64 --layer "$out/layer.json" \
    --config "$out/config.json" \
    --created-by "kiln harness: debootstrap --variant=minbase --include=$GO_INCLUDE $GO_SUITE" ||
    die "pushing $GO_IMAGE failed"
  args=()
  for t in "${GO_LIBRARY_TAGS[@]}"; do args+=(--tag "$t"); done
  SOURCE_DATE_EPOCH=0 $PYTHON "$FIXTURES/ocipush.py" push --registry "$REGISTRY" --repo "$GO_LIBRARY_REPO" \
    "${args[@]}" --platform linux/amd64 --layer "$out/layer.json" \
    --config "$out/config.json" \
    --created-by "kiln harness: debootstrap --variant=minbase --include=$GO_INCLUDE $GO_SUITE" ||
    die "pushing $REGISTRY/$GO_LIBRARY_REPO:${GO_LIBRARY_TAGS[0]} failed"
  step_end
}

# ---------------------------------------------------------------------------
# 5. env file

# Which daemons this `up` set up (env_lines names only those).
UP_CLASSIC=0
UP_BUILDKITD=0
UP_PODMAN=0
UP_PODMAN_BK=0
UP_CONTAINERD=0

env_lines() {
  local kinds=docker
  cat <<EOF
export KILN_HARNESS_DIR=$DIR
export KILN_TEST_DOCKER_SOCK=$SOCK
export KILN_TEST_DOCKER_HOST=$DOCKER_HOST_URL
export KILN_TEST_REGISTRY=$REGISTRY
export KILN_TEST_GO_IMAGE=$GO_IMAGE
export KILN_TEST_GO_VERSION=${GO_VERSION:-}
export KILN_TEST_GO_TEMPLATE=$REGISTRY/$GO_REPO:{go}-{distro}
export KILN_TEST_STATIC_IMAGE=$STATIC_IMAGE
EOF
  want docker || kinds=
  if [ "$UP_CLASSIC" = 1 ]; then
    kinds=${kinds:+$kinds,}docker-classic
    cat <<EOF
export KILN_TEST_DOCKER_CLASSIC_SOCK=$CLASSIC_SOCK
export KILN_TEST_DOCKER_CLASSIC_HOST=$CLASSIC_HOST_URL
EOF
  fi
  if [ "$UP_BUILDKITD" = 1 ]; then
    kinds=${kinds:+$kinds,}buildkitd,buildkitd-tls
    cat <<EOF
export KILN_TEST_BUILDKITD_SOCK=$BK_SOCK
export KILN_TEST_BUILDKITD_TCP=$BK_TCP
export KILN_TEST_BUILDKITD_TLS=$BK_TLS
export KILN_TEST_TLS_CA=$TLS_DIR/ca.pem
export KILN_TEST_TLS_CERT=$TLS_DIR/client.pem
export KILN_TEST_TLS_KEY=$TLS_DIR/client-key.pem
export KILN_TEST_BUILDCTL=$BUILDCTL
export KILN_TEST_BUILDKITD_LOG=$BK_LOG
EOF
  fi
  if [ "$UP_PODMAN" = 1 ]; then
    # The podman CLI (`podman exec` of podman-container://) reads the same
    # storage as the service through these two.
    cat <<EOF
export KILN_TEST_PODMAN=$PODMAN_SOCK
export CONTAINERS_CONF=$PODMAN_CONTAINERS_CONF
export CONTAINERS_STORAGE_CONF=$PODMAN_STORAGE_CONF
EOF
    if [ "$UP_PODMAN_BK" = 1 ]; then echo "export KILN_TEST_PODMAN_BUILDKIT=$PODMAN_BK_NAME"; fi
  fi
  if [ "$UP_CONTAINERD" = 1 ]; then echo "export KILN_TEST_CONTAINERD=$CTRD_SOCK"; fi
  echo "export KILN_TEST_DAEMONS=$kinds"
}

write_env() {
  env_lines >"$DIR/env.tmp"
  mv -f "$DIR/env.tmp" "$DIR/env"
  log "env file: $DIR/env"
}

# ---------------------------------------------------------------------------
# 6. verification

# The once-per-start network check's context: a RUN step that needs the mirror.
netcheck_context() {
  local ctx
  ctx=$(mktemp -d)
  printf 'FROM %s\nRUN apt-get update\n' "$GO_IMAGE" >"$ctx/Dockerfile"
  echo "$ctx"
}

verify_docker() { # docker|docker-classic
  docker_profile "$1"
  step_begin "verify $D_STEP"
  local out
  out=$(dkd pull -q "$STATIC_IMAGE" 2>&1) || die "$D_STEP: docker pull $STATIC_IMAGE failed: $out" "see $D_LOG"
  # The static image has no binaries: run the host's static tini in it, as the
  # image's `nonroot` user (resolved through the image's /etc/passwd).
  if [ -x /usr/bin/tini-static ]; then
    out=$(dkd run --rm --network none --user nonroot -v /usr/bin/tini-static:/tini:ro \
      --entrypoint /tini "$STATIC_IMAGE" --version 2>&1) ||
      die "$D_STEP: docker run of $STATIC_IMAGE failed: $out" "see $D_LOG"
    log "$STATIC_IMAGE runs as nonroot (host tini-static: $out)"
  fi
  out=$(dkd pull -q "$GO_IMAGE" 2>&1) || die "$D_STEP: docker pull $GO_IMAGE failed: $out" "see $D_LOG"
  out=$(dkd run --rm --network none "$GO_IMAGE" go version 2>&1) ||
    die "$D_STEP: docker run $GO_IMAGE go version failed: $out" "see $D_LOG"
  case "$out" in
    "go version go1.24"*) log "$out" ;;
    *) die "$D_STEP: unexpected 'go version' output from $GO_IMAGE: $out" ;;
  esac
  # Once per dockerd start: a BuildKit RUN step must reach Debian's mirror.
  if [ ! -f "$D_NET" ]; then
    local t0=$EPOCHREALTIME ctx tag=kiln-harness-netcheck
    ctx=$(netcheck_context)
    if dkd buildx version >/dev/null 2>&1; then
      out=$(dkd buildx build --progress=plain --no-cache -t "$tag" "$ctx" 2>&1) ||
        { rm -rf "$ctx"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/harness:   build: /' >&2
          die "$D_STEP: a BuildKit RUN step could not reach $MIRROR (FROM $GO_IMAGE, RUN apt-get update)" \
            "check the daemon's network (iptables, ip_forward, DNS) and $D_LOG"; }
      dkd image rm -f "$tag" >/dev/null 2>&1 || true
      log "BuildKit RUN apt-get update reached the mirror ($(since "$t0")s)"
    else
      out=$(dkd run --rm "$GO_IMAGE" apt-get update 2>&1) ||
        { rm -rf "$ctx"; die "$D_STEP: a container could not reach $MIRROR: $(printf '%s' "$out" | tail -n 3)" \
          "check the daemon's network (iptables, ip_forward, DNS)"; }
      log "container apt-get update reached the mirror ($(since "$t0")s; docker-buildx not installed)"
    fi
    rm -rf "$ctx"
    : >"$D_NET"
  fi
  step_end
}

verify_buildkitd() {
  step_begin "verify buildkitd"
  local out
  out=$(timeout 15 "$BUILDCTL" --addr "$BK_UNIX" debug workers 2>&1) ||
    die "buildkitd does not answer on $BK_UNIX: $out" "see $BK_LOG"
  out=$(timeout 15 "$BUILDCTL" --addr "$BK_TLS" "${BK_TLS_ARGS[@]}" debug workers 2>&1) ||
    die "buildkitd does not answer on $BK_TLS with the client certificate: $out" "see $BK_LOG"
  # Mutual TLS: a client without a certificate is turned away.
  if timeout 15 "$BUILDCTL" --addr "$BK_TLS" --tlscacert "$TLS_DIR/ca.pem" debug workers >/dev/null 2>&1; then
    die "buildkitd on $BK_TLS accepts a client without a certificate" "check [grpc.tls] ca in $BK_CONFIG"
  fi
  out=$(timeout 15 "$BUILDCTL" --addr "$BK_TCP" debug workers 2>&1) ||
    die "buildkitd does not answer on $BK_TCP (plain, socat): $out" "see $RUN/buildkitd-tcp.log"
  log "answers on $BK_UNIX, $BK_TLS (mutual TLS) and $BK_TCP"
  # Once per buildkitd start: a RUN step must reach Debian's mirror.
  if [ ! -f "$RUN/net-verified-buildkitd" ]; then
    local t0=$EPOCHREALTIME ctx
    ctx=$(netcheck_context)
    out=$("$BUILDCTL" --addr "$BK_UNIX" build --progress=plain --no-cache --frontend dockerfile.v0 \
      --local context="$ctx" --local dockerfile="$ctx" 2>&1) ||
      { rm -rf "$ctx"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/harness:   build: /' >&2
        die "buildkitd: a RUN step could not reach $MIRROR (FROM $GO_IMAGE, RUN apt-get update)" \
          "check the host's network and DNS, and $BK_LOG"; }
    rm -rf "$ctx"
    log "RUN apt-get update reached the mirror ($(since "$t0")s)"
    : >"$RUN/net-verified-buildkitd"
  fi
  step_end
}

# The containerd of its own pulls from the registry and runs a container in
# the namespace k8s.io (runc through containerd-shim-runc-v2).
verify_containerd() {
  step_begin "verify containerd"
  local out
  out=$(timeout 60 ctr -a "$CTRD_SOCK" -n "$CTRD_NAMESPACE" images pull --plain-http "$STATIC_IMAGE" 2>&1) ||
    die "containerd: ctr images pull $STATIC_IMAGE failed: $(printf '%s' "$out" | tail -n 3)" "see $CTRD_LOG"
  if [ -x /usr/bin/tini-static ]; then
    out=$(timeout 60 ctr -a "$CTRD_SOCK" -n "$CTRD_NAMESPACE" run --rm --net-host \
      --mount type=bind,src=/usr/bin/tini-static,dst=/tini,options=rbind:ro \
      "$STATIC_IMAGE" "kiln-harness-check-$$" /tini --version 2>&1) ||
      die "containerd: ctr run of $STATIC_IMAGE failed: $out" "see $CTRD_LOG"
    log "ctr run in namespace $CTRD_NAMESPACE works (host tini-static: $out)"
  fi
  step_end
}

# ---------------------------------------------------------------------------

# Some sandboxes start with /dev/null as a regular file (something removed
# the device and a redirection recreated it). glibc's daemon() then fails
# (tmux cannot start its server) and the file fills with whatever was
# "discarded" (git then reads garbage as a config file). Put the device back.
repair_dev_null() {
  [ -c /dev/null ] && return 0
  log "/dev/null is not a character device here ($(stat -c %F /dev/null 2>/dev/null || echo missing)); recreating it"
  rm -f /dev/null && mknod -m 666 /dev/null c 1 3 ||
    die "cannot recreate /dev/null" "run: rm -f /dev/null && mknod -m 666 /dev/null c 1 3"
}

cmd_up() {
  need_root up
  repair_dev_null
  check_daemons
  mkdir -p "$DIR" "$RUN" "$CACHE"
  exec 9>"$DIR/harness.lock"
  if ! flock -n 9; then
    log "another harness.sh up is running; waiting up to 20 min for it"
    flock -w 1200 9 || die "timed out waiting for the lock $DIR/harness.lock" \
      "find the other harness.sh (holder: $(fuser "$DIR/harness.lock" 2>/dev/null || echo '?'))"
  fi
  log "state dir $DIR, daemons $DAEMONS"
  ensure_packages
  if want buildkitd; then
    if buildkitd_available; then
      UP_BUILDKITD=1
    else
      log "buildkitd: skipped: no buildkitd and buildctl in $SHARED_BUILDKIT (set KILN_SHARED_BUILDKIT to the folder with BuildKit v0.29.0's static binaries)"
    fi
  fi
  # The second dockerd and buildkitd start in the background while the first
  # dockerd starts and the fixtures are pushed.
  if want docker-classic; then
    UP_CLASSIC=1
    ensure_classic_network
    bg_run dockerd-classic ensure_dockerd docker-classic
  fi
  if [ "$UP_BUILDKITD" = 1 ]; then bg_run buildkitd ensure_buildkitd; fi
  if want podman; then
    UP_PODMAN=1
    if buildkitd_available; then UP_PODMAN_BK=1; fi
    bg_run podman ensure_podman
  fi
  if want containerd; then UP_CONTAINERD=1; bg_run containerd ensure_containerd; fi
  if want docker; then ensure_dockerd docker; fi
  ensure_registry
  ensure_static_fixture
  ensure_golang_fixture
  bg_wait
  write_env
  if [ "$UP_CLASSIC" = 1 ]; then bg_run verify-classic verify_docker docker-classic; fi
  if [ "$UP_BUILDKITD" = 1 ]; then bg_run verify-buildkitd verify_buildkitd; fi
  if [ "$UP_CONTAINERD" = 1 ]; then bg_run verify-containerd verify_containerd; fi
  if want docker; then verify_docker docker; fi
  bg_wait
  log "up in $(since "$T_START")s"
}

stop_dockerd() { # docker|docker-classic
  docker_profile "$1"
  stop_pidfile dockerd "$D_PID" "$D_STEP"
  # dockerd bind-mounts its data root onto itself; leave nothing mounted.
  if ! pid_alive "$D_PID" dockerd; then
    umount_under "$D_DATA"
    umount_under "$D_EXEC"
    if mountpoint -q "$D_DATA" 2>/dev/null; then umount "$D_DATA" 2>/dev/null || true; fi
  fi
  rm -f "$D_NET"
}

stop_buildkitd() {
  stop_pidfile socat "$RUN/buildkitd-tcp.pid" "the buildkitd tcp forwarder"
  stop_pidfile buildkitd "$RUN/buildkitd.pid"
  pid_alive "$RUN/buildkitd.pid" buildkitd || umount_under "$DIR/buildkitd-data"
  rm -f "$RUN/net-verified-buildkitd"
}

stop_podman() {
  if pid_alive "$RUN/podman.pid" podman || pm container exists "$PODMAN_BK_NAME" 2>/dev/null; then
    pm rm -f -t 10 "$PODMAN_BK_NAME" >/dev/null 2>&1 || true
  fi
  umount_under "$PODMAN_BK_DATA"
  stop_pidfile podman "$RUN/podman.pid" "the podman service"
}

cmd_down() {
  need_root down
  mkdir -p "$RUN"
  # The daemons take a few seconds each to exit: stop them side by side.
  bg_run stop-dockerd stop_dockerd docker
  bg_run stop-dockerd-classic stop_dockerd docker-classic
  bg_run stop-buildkitd stop_buildkitd
  bg_run stop-podman stop_podman
  bg_run stop-containerd stop_pidfile containerd "$CTRD_PID"
  stop_pidfile docker-registry "$RUN/registry.pid"
  bg_wait
  pid_alive "$RUN/docker-classic.pid" dockerd || remove_classic_network
  log "down (caches kept in $DIR)"
}

status_dockerd() { # docker|docker-classic label
  docker_profile "$1"
  local extra=
  [ "$1" = docker-classic ] && extra="  bridge $CLASSIC_BRIDGE $CLASSIC_BRIDGE_ADDR"
  if [ -S "$D_SOCK" ] && ! [ -w "$D_SOCK" ]; then
    printf '%-10s?     no permission on %s (run as root)\n' "$2" "$D_SOCK"
  elif docker_ping "$D_SOCK"; then
    printf '%-10sup    pid %s  %s  %s%s\n' "$2" "$(cat "$D_PID" 2>/dev/null || echo '?')" \
      "$D_HOST" "$(dkd version -f 'engine {{.Server.Version}}' 2>/dev/null || true)" "$extra"
  elif pid_alive "$D_PID" dockerd; then
    printf '%-10shung  pid %s  not answering on %s (log %s)\n' "$2" "$(cat "$D_PID")" "$D_SOCK" "$D_LOG"
  else
    printf '%-10sdown  %s\n' "$2" "$D_HOST"
  fi
}

status_buildkitd() {
  if ! [ -x "$BUILDCTL" ]; then
    if buildkitd_available; then
      printf 'buildkitd down  %s (not installed in %s yet)\n' "$BK_UNIX" "$BIN"
    else
      printf 'buildkitd skip  no buildkitd/buildctl in %s\n' "$SHARED_BUILDKIT"
    fi
    return
  fi
  if [ -S "$BK_SOCK" ] && ! [ -w "$BK_SOCK" ]; then
    printf 'buildkitd ?     no permission on %s (run as root)\n' "$BK_SOCK"
    return
  fi
  if bk_ping "$BK_UNIX"; then
    printf 'buildkitd up    pid %s  %s  %s\n' "$(cat "$RUN/buildkitd.pid" 2>/dev/null || echo '?')" "$BK_UNIX" \
      "$("$BUILDKITD" --version 2>/dev/null | awk '{ print $3 }')"
    if bk_ping "$BK_TLS" "${BK_TLS_ARGS[@]}"; then
      printf 'bk-tls    up    %s  mutual TLS, client cert %s (until %s)\n' "$BK_TLS" "$TLS_DIR/client.pem" \
        "$(openssl x509 -noout -enddate -in "$TLS_DIR/client.pem" 2>/dev/null | cut -d= -f2)"
    else
      printf 'bk-tls    down  %s\n' "$BK_TLS"
    fi
    if bk_ping "$BK_TCP"; then
      printf 'bk-tcp    up    pid %s  %s  plain (socat)\n' "$(cat "$RUN/buildkitd-tcp.pid" 2>/dev/null || echo '?')" "$BK_TCP"
    else
      printf 'bk-tcp    down  %s\n' "$BK_TCP"
    fi
  elif pid_alive "$RUN/buildkitd.pid" buildkitd; then
    printf 'buildkitd hung  pid %s  not answering on %s (log %s)\n' "$(cat "$RUN/buildkitd.pid")" "$BK_UNIX" "$BK_LOG"
  else
    printf 'buildkitd down  %s\n' "$BK_UNIX"
  fi
}

status_podman() {
  if ! command -v podman >/dev/null 2>&1; then
    printf 'podman    down  not installed\n'
    return
  fi
  if podman_ping; then
    printf 'podman    up    pid %s  unix://%s  %s\n' "$(cat "$RUN/podman.pid" 2>/dev/null || echo '?')" "$PODMAN_SOCK" \
      "$(podman --version | awk '{ print $3 }')"
  elif pid_alive "$RUN/podman.pid" podman; then
    printf 'podman    hung  pid %s  not answering on %s (log %s)\n' "$(cat "$RUN/podman.pid")" "$PODMAN_SOCK" "$PODMAN_LOG"
  else
    printf 'podman    down  unix://%s\n' "$PODMAN_SOCK"
  fi
  if podman_bk_ping; then
    printf 'podman-bk up    container %s  podman-container://%s  image %s\n' "$PODMAN_BK_NAME" "$PODMAN_BK_NAME" \
      "$(pm container inspect -f '{{.ImageName}}' "$PODMAN_BK_NAME" 2>/dev/null || echo '?')"
  elif buildkitd_available; then
    printf 'podman-bk down  container %s (%s)\n' "$PODMAN_BK_NAME" \
      "$(pm container inspect -f '{{.State.Status}}' "$PODMAN_BK_NAME" 2>/dev/null || echo 'missing')"
  else
    printf 'podman-bk skip  no buildkitd/buildctl in %s\n' "$SHARED_BUILDKIT"
  fi
}

status_containerd() {
  if containerd_ping; then
    printf 'containerd up   pid %s  %s  %s  namespaces %s\n' "$(cat "$CTRD_PID" 2>/dev/null || echo '?')" "$CTRD_SOCK" \
      "$(containerd --version | awk '{ print $3 }')" "$(ctrd namespaces ls -q 2>/dev/null | tr '\n' ' ')"
  elif pid_alive "$CTRD_PID" containerd; then
    printf 'containerd hung pid %s  not answering on %s (log %s)\n' "$(cat "$CTRD_PID")" "$CTRD_SOCK" "$CTRD_LOG"
  else
    printf 'containerd down %s\n' "$CTRD_SOCK"
  fi
}

cmd_status() {
  local pid
  status_dockerd docker dockerd
  status_dockerd docker-classic classic
  status_buildkitd
  status_podman
  status_containerd
  if registry_ping; then
    pid=$(cat "$RUN/registry.pid" 2>/dev/null || echo '?')
    printf 'registry  up    pid %s  http://%s\n' "$pid" "$REGISTRY"
    local img repo tag
    for img in "$GO_REPO:${GO_TAGS[0]}" "$GO_REPO:${GO_TAGS[1]}" "$GO_LIBRARY_REPO:${GO_LIBRARY_TAGS[0]}" \
      "$STATIC_REPO:${STATIC_TAGS[0]}" "$STATIC_REPO:${STATIC_TAGS[1]}"; do
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

# `qemu` (the bench's arm64 rows, not the tests): QEMU user emulation for
# arm64 registered with binfmt_misc (flag F: the handler works inside
# containers), and an arm64 golang fixture, GO_ARM64_IMAGE, for a Dockerfile
# whose Go stage runs on the target platform (the seed's). Needs `up` first.
GO_ARM64_TAG=${GO_TAGS[0]}-arm64
GO_ARM64_IMAGE=$REGISTRY/$GO_REPO:$GO_ARM64_TAG
ensure_binfmt_arm64() {
  step_begin "qemu binfmt"
  pkg_installed qemu-user-static || apt_retry install -y -q qemu-user-static >/dev/null ||
    die "installing qemu-user-static failed"
  local bm=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm" ||
    die "cannot mount binfmt_misc on $bm" "the kernel needs CONFIG_BINFMT_MISC and the container CAP_SYS_ADMIN"
  if [ ! -e "$bm/qemu-aarch64" ]; then
    [ -s "$conf" ] || die "$conf is missing" "reinstall qemu-user-static"
    cat "$conf" >"$bm/register" || die "registering $conf with binfmt_misc failed"
  fi
  grep -q '^flags:.*F' "$bm/qemu-aarch64" || die "the aarch64 binfmt handler lacks flag F (fix binary)" \
    "echo -1 > $bm/qemu-aarch64, then run this again"
  step_end
}
cmd_qemu() {
  need_root qemu
  [ -f "$DIR/env" ] || die "the harness is not up" "run $0 up first"
  registry_ping || die "the registry on $REGISTRY is down" "run $0 up first"
  mkdir -p "$CACHE/arm64"
  ensure_binfmt_arm64
  step_begin "fixture golang arm64"
  local key out
  key=$(golang_cache_key arm64)
  out=$CACHE/arm64/golang-$key
  if [ -s "$out/layer.json" ] && [ -s "$out/layer.tar.gz" ]; then
    log "using cached rootfs layer $out"
  else
    find "$CACHE/arm64" -maxdepth 1 -name 'golang-*' ! -name "golang-$key" ! -name golang-work -exec rm -rf {} + 2>/dev/null || true
    build_golang_rootfs "$out" arm64
  fi
  # The amd64 fixture's config (same Go release, same environment).
  [ -s "$CACHE/golang-$(golang_cache_key)/config.json" ] || die "the amd64 golang fixture is missing" "run $0 up first"
  SOURCE_DATE_EPOCH=0 $PYTHON "$FIXTURES/ocipush.py" push --registry "$REGISTRY" --repo "$GO_REPO" \
    --tag "$GO_ARM64_TAG" --platform linux/arm64/v8 --layer "$out/layer.json" \
    --config "$CACHE/golang-$(golang_cache_key)/config.json" \
    --created-by "kiln harness: debootstrap --arch=arm64 --variant=minbase --include=$GO_INCLUDE $GO_SUITE" ||
    die "pushing $GO_ARM64_IMAGE failed"
  step_end
  echo "KILN_BENCH_GO_ARM64_IMAGE=$GO_ARM64_IMAGE"
}

cmd_env() {
  if [ -f "$DIR/env" ]; then cat "$DIR/env"; else env_lines; fi
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  qemu) cmd_qemu ;;
  -h | --help | help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" ;;
  *) die "unknown subcommand '$1'" "usage: $0 [up|down|status|env|qemu]" ;;
esac
