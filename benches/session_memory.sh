#!/usr/bin/env bash
# Peak memory of kiln while it sends a big build context through the session.
#
# Builds kiln (release), generates a context of 20,000 small files over 200
# directories plus one 200 MiB file of pseudo-random bytes, solves an LLB
# graph that is only `local://context` (so the daemon syncs the directory and
# nothing else runs), and measures kiln's peak RSS with GNU time.
#
# Prints "peak RSS: N MiB" and exits non-zero when N exceeds the limit
# (LIMIT_MIB, default 32) or when the sync did not send the whole context.
#
# Needs: the test harness (`scripts/harness.sh up`; its env file is read from
# $KILN_HARNESS_DIR/env, default /var/lib/kiln-harness/env), python3, and GNU
# time (installed with apt-get when missing).
#
#   ./benches/session_memory.sh            # default address: the harness's dockerd
#   KILN_ADDR=tcp://127.0.0.1:1234 ./benches/session_memory.sh
set -euo pipefail

LIMIT_MIB=${LIMIT_MIB:-32}
SMALL_FILES=20000
DIRS=200
BIG_MIB=200

repo=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${KILN_ADDR:-}" ]; then
    env_file="${KILN_HARNESS_DIR:-/var/lib/kiln-harness}/env"
    if [ -z "${KILN_TEST_DOCKER_SOCK:-}" ]; then
        [ -r "$env_file" ] || { echo "no harness: start it with ./scripts/harness.sh up (or set KILN_ADDR)" >&2; exit 2; }
        # shellcheck disable=SC1090
        . "$env_file"
    fi
    KILN_ADDR="docker://${KILN_TEST_DOCKER_SOCK}"
fi

if ! /usr/bin/time -V >/dev/null 2>&1 && ! /usr/bin/time --version >/dev/null 2>&1; then
    echo "installing GNU time" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get install -y -q time >&2 || {
        $sudo_cmd apt-get update -q >&2 && $sudo_cmd apt-get install -y -q time >&2
    }
fi
command -v python3 >/dev/null || { echo "python3 is needed to generate the context" >&2; exit 2; }

echo "building kiln (release)" >&2
(cd "$repo" && cargo build --release --quiet --bin kiln)
target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
kiln="$target_dir/release/kiln"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctx="$work/context"

echo "generating $SMALL_FILES files + ${BIG_MIB} MiB in $ctx" >&2
expected_bytes=$(python3 - "$ctx" "$SMALL_FILES" "$DIRS" "$BIG_MIB" <<'EOF'
import os, random, sys
root, n, dirs, big_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(0x5eed)
total = 0
for d in range(dirs):
    path = os.path.join(root, "src", f"d{d:03}")
    os.makedirs(path)
    for f in range(n // dirs):
        size = 1 + (d * 131 + f * 17) % 1024  # never empty: every file is sent
        with open(os.path.join(path, f"f{f:04}.dat"), "wb") as out:
            out.write(rng.randbytes(size))
        total += size
os.makedirs(os.path.join(root, "blob"))
with open(os.path.join(root, "blob", "big.bin"), "wb") as out:
    for _ in range(big_mib):
        out.write(rng.randbytes(1 << 20))
total += big_mib << 20
print(total)
EOF
)

# The Definition: a local source (with a fresh shared-key hint, so the daemon
# has no copy to diff against) and the terminal op, protobuf-encoded by hand.
python3 - "$work/def.llb" <<'EOF'
import hashlib, sys, uuid

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def field(num, payload):  # length-delimited field
    return varint(num << 3 | 2) + varint(len(payload)) + payload

def map_entry(num, key, value):
    return field(num, field(1, key.encode()) + field(2, value.encode()))

source = field(1, b"local://context") + map_entry(
    2, "local.sharedkeyhint", "bench-" + uuid.uuid4().hex)
op1 = field(3, source) + field(11, b"")  # SourceOp, empty WorkerConstraints
digest = "sha256:" + hashlib.sha256(op1).hexdigest()
op2 = field(1, field(1, digest.encode()))  # terminal op: Input{digest, index 0}
with open(sys.argv[1], "wb") as out:
    out.write(field(1, op1) + field(1, op2))
EOF

echo "solving with --local context=$ctx on $KILN_ADDR" >&2
set +e
NO_COLOR=1 KILN_LOG=kiln_session=debug /usr/bin/time -v -o "$work/time.log" \
    "$kiln" --addr "$KILN_ADDR" solve -f "$work/def.llb" --progress plain \
    --local "context=$ctx" 2>"$work/kiln.log"
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "kiln solve failed ($status):" >&2
    tail -n 30 "$work/kiln.log" >&2
    exit 1
fi

sent=$(sed 's/\x1b\[[0-9;]*m//g' "$work/kiln.log" |
    sed -n 's/.*file sync done.* files=\([0-9]*\) bytes=\([0-9]*\).*/\1 \2/p' | tail -n 1)
files=${sent% *}
bytes=${sent#* }
if [ "$files" != "$((SMALL_FILES + 1))" ] || [ "$bytes" != "$expected_bytes" ]; then
    echo "the sync was incomplete: sent '$sent' (files bytes), expected $((SMALL_FILES + 1)) $expected_bytes" >&2
    tail -n 30 "$work/kiln.log" >&2
    exit 1
fi

kib=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$work/time.log")
elapsed=$(sed -n 's/.*Elapsed (wall clock) time.*): *//p' "$work/time.log")
mib=$(( (kib + 1023) / 1024 ))
echo "sent $files files, $bytes bytes in $elapsed"
echo "peak RSS: $mib MiB"
if [ "$mib" -gt "$LIMIT_MIB" ]; then
    echo "above the limit of $LIMIT_MIB MiB" >&2
    exit 1
fi
