#!/usr/bin/env python3
"""kiln's speed, side by side with its peers on the same daemons.

Run through `benches/bench.sh` (it brings up the harness, the arm64 golang
fixture and a release build of kiln, then runs this). Every row measures two
commands run by run, alternating which goes first, after each was primed:

  Docker (containerd store):  kiln build  vs  docker buildx build
  standalone buildkitd v0.29: kiln build  vs  buildctl build of the very
                              Definition kiln sends (so the daemon's work is
                              identical)

Each tool builds its own copy of the example module, so an edit made for one
is never a warm run for the other; an edit is unique per run and per tool.
Wall time is measured here; the client's peak RSS and CPU time (user+sys,
its children included) by GNU time. Writes a markdown table (argv[1]).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "5"))
ONLY = [r for r in os.environ.get("ROWS", "").split(",") if r]
E = os.environ


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# measuring


@dataclass
class Sample:
    wall: float  # seconds
    rss_kib: int  # peak resident set of the client (largest process of its tree)
    cpu: float  # user + sys seconds of the client and its children
    stderr: str = ""


class CommandFailed(Exception):
    pass


def run(argv: list[str], env: Optional[dict] = None, stdin: Optional[str] = None,
        quiet_ok: bool = False) -> Sample:
    """Runs argv to completion under GNU time (a small parent, so the peak
    RSS is the client's own, not this Python's copy before exec)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.NamedTemporaryFile("r") as usage, tempfile.TemporaryFile() as err, \
            open(stdin or os.devnull, "rb") as inp:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-q", "-f", "%M %U %S", "-o", usage.name, *argv],
                              stdin=inp, stdout=subprocess.DEVNULL, stderr=err, env=full_env)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
        fields = usage.read().split()
    if proc.returncode != 0 and not quiet_ok:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}:\n{text[-3000:]}")
    try:
        rss, user, sys_ = int(fields[-3]), float(fields[-2]), float(fields[-1])
    except (IndexError, ValueError):
        raise CommandFailed(f"GNU time wrote no usage for {argv[0]}: {fields}")
    return Sample(wall, rss, user + sys_, text)


@dataclass
class Side:
    label: str
    cmd: Callable[[], list[str]]
    prepare: Callable[[], None] = lambda: None  # before every run, unmeasured
    env: Optional[dict] = None
    stdin: Optional[Callable[[], str]] = None
    check: Optional[Callable[[Sample], None]] = None  # after every run

    def once(self, check: bool = True) -> Sample:
        self.prepare()
        s = run(self.cmd(), self.env, self.stdin() if self.stdin else None)
        if check and self.check:
            self.check(s)
        return s


@dataclass
class Row:
    name: str
    daemon: str
    left: Side
    right: Side
    goal: Optional[float] = None  # the ratio left/right must be at most this
    goal_text: str = ""
    note: str = ""
    prime: bool = True
    runs: int = RUNS
    extra: Callable[[list[Sample], list[Sample]], str] = lambda a, b: ""
    samples: tuple = field(default_factory=lambda: ([], []))

    def measure(self) -> None:
        if self.prime:
            self.left.once(check=False)
            self.right.once(check=False)
        a, b = self.samples
        for i in range(self.runs):
            first, second = (self.left, self.right) if i % 2 == 0 else (self.right, self.left)
            s1 = first.once()
            s2 = second.once()
            (a if first is self.left else b).append(s1)
            (b if first is self.left else a).append(s2)
            log(f"{self.name} [{self.daemon}] run {i + 1}: {self.left.label} {a[-1].wall:.3f}s "
                f"{self.right.label} {b[-1].wall:.3f}s")


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def span(xs: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def secs(xs: list[float]) -> str:
    m = med(xs)
    fmt = "{:.3f}" if m < 1 else "{:.2f}"
    return f"{fmt.format(m)} s ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


# ---------------------------------------------------------------------------
# the set-up: apps, Dockerfiles, definitions

WORK = tempfile.mkdtemp(prefix="kiln-bench-")
KILN = E["KILN_BENCH_KILN"]
BUILDCTL = E["KILN_TEST_BUILDCTL"]
DOCKER_ENV = {"DOCKER_HOST": E["KILN_TEST_DOCKER_HOST"]}
DOCKER_ADDR = f"docker://{E['KILN_TEST_DOCKER_SOCK']}"
BK_ADDR = f"unix://{E['KILN_TEST_BUILDKITD_SOCK']}" if E.get("KILN_TEST_BUILDKITD_SOCK") else None
GO_IMAGE = E["KILN_TEST_GO_TEMPLATE"].replace("{go}", E["KILN_TEST_GO_VERSION"]).replace("{distro}", "trixie")
GO_ARM64_IMAGE = E.get("KILN_BENCH_GO_ARM64_IMAGE", "")
STATIC = E["KILN_TEST_STATIC_IMAGE"]
KILN_BUILD = ["build", "--progress", "quiet", "--builder-image", E["KILN_TEST_GO_TEMPLATE"],
              "--distro", "trixie", "--go", E["KILN_TEST_GO_VERSION"], "--base-image", STATIC]


def app(name: str) -> str:
    """A copy of the example module, a git checkout with one commit (as a
    user's module is: the tools read its commit)."""
    d = os.path.join(WORK, name)
    if not os.path.exists(d):
        shutil.copytree(os.path.join(ROOT, "examples", "hello"), d)
        git = ["git", "-C", d, "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
            subprocess.run(git + args, check=True, stdout=subprocess.DEVNULL)
    return d


def locked_app() -> str:
    """A copy with a kiln.lock (`kiln lock`): its builds name both images by
    digest and take their configs from kiln's cache."""
    d = app("kiln-bk-locked")
    if not os.path.exists(os.path.join(d, "kiln.lock")):
        lock = [a if a != "build" else "lock" for a in KILN_BUILD if a not in ("--progress", "quiet")]
        subprocess.run([KILN, "--addr", BK_ADDR, *lock, d], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


def edit(d: str) -> Callable[[], None]:
    def do() -> None:
        with open(os.path.join(d, "main.go"), "a") as f:
            f.write(f"// edit {uuid.uuid4().hex}\n")
    return do


def out(name: str) -> str:
    return os.path.join(WORK, f"{name}.tar")


def kiln_build(addr: str, d: str, *extra: str, name: str = "kiln") -> Callable[[], list[str]]:
    return lambda: [KILN, "--addr", addr, *KILN_BUILD, d, "-o", f"type=oci,dest={out(name)}", *extra]


def dockerfile(name: str, text: str) -> str:
    p = os.path.join(WORK, name)
    with open(p, "w") as f:
        f.write(text)
    return p


MOUNTS = ("--mount=type=cache,target=/go/pkg/mod "
          "--mount=type=cache,target=/root/.cache/go-build")
# The seed's Dockerfile (examples/hello as buildx would build it): the Go
# stage runs on the target platform, under QEMU for another architecture.
SEED = f"""FROM {{go}} AS builder
WORKDIR /src
ENV GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build CGO_ENABLED=0 GOTOOLCHAIN=local
RUN --mount=type=bind,source=go.mod,target=go.mod {MOUNTS} \\
    go mod download
RUN --mount=type=bind,target=. {MOUNTS} \\
    go build -trimpath -buildvcs=false -o /out/hello .
FROM {STATIC}
COPY --from=builder /out/hello /app/bin
ENTRYPOINT ["/app/bin"]
"""
# The same, cross-compiling: the Go stage on the build platform.
CROSS = f"""FROM --platform=$BUILDPLATFORM {GO_IMAGE} AS builder
ARG TARGETOS TARGETARCH
WORKDIR /src
ENV GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build CGO_ENABLED=0 GOTOOLCHAIN=local
RUN --mount=type=bind,source=go.mod,target=go.mod {MOUNTS} \\
    go mod download
RUN --mount=type=bind,target=. {MOUNTS} \\
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -o /out/hello .
FROM {STATIC}
COPY --from=builder /out/hello /app/bin
ENTRYPOINT ["/app/bin"]
"""


def buildx(df: str, d: str, *extra: str, name: str = "buildx") -> Callable[[], list[str]]:
    return lambda: ["docker", "buildx", "build", "--builder", "default", "-q", "-f", df,
                    "-o", f"type=oci,dest={out(name)}", *extra, d]


def kiln_def(d: str, *extra: str) -> str:
    """The Definition kiln sends for d (kiln resolves images once, here)."""
    p = os.path.join(WORK, f"def-{os.path.basename(d)}-{len(extra)}.pb")
    with open(p, "wb") as f:
        subprocess.run([KILN, "--addr", BK_ADDR, *KILN_BUILD, d, "--print-llb=pb", *extra],
                       stdout=f, stderr=subprocess.DEVNULL, check=True)
    return p


def buildctl_build(def_path: str, d: str, name: str = "buildctl", no_cache: bool = False):
    def cmd() -> list[str]:
        argv = [BUILDCTL, "--addr", BK_ADDR, "build", "--progress", "quiet", "--local",
                f"context={d}", "--output", f"type=oci,dest={out(name)}"]
        return argv + (["--no-cache"] if no_cache else [])
    return cmd


def prune(addr: str) -> Callable[[], None]:
    return lambda: run([KILN, "--addr", addr, "prune", "--all"], quiet_ok=False) and None


# ---------------------------------------------------------------------------
# context rows: 20,000 small files in 200 directories plus one 200 MiB file

SMALL, DIRS, BIG_MIB = 20000, 200, 200


def make_context() -> tuple[str, int]:
    root = os.path.join(WORK, "context")
    rng = random.Random(0x5EED)
    total = 0
    for d in range(DIRS):
        path = os.path.join(root, "src", f"d{d:03}")
        os.makedirs(path)
        for i in range(SMALL // DIRS):
            size = 1 + (d * 131 + i * 17) % 1024
            with open(os.path.join(path, f"f{i:04}.dat"), "wb") as f:
                f.write(rng.randbytes(size))
            total += size
    os.makedirs(os.path.join(root, "blob"))
    with open(os.path.join(root, "blob", "big.bin"), "wb") as f:
        for _ in range(BIG_MIB):
            f.write(rng.randbytes(1 << 20))
    return root, total + (BIG_MIB << 20)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(num: int, payload: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def local_def(hint: str) -> str:
    """A Definition that is only `local://context` with this shared-key hint:
    the daemon syncs the directory and nothing else runs."""
    attr = pb_field(2, pb_field(1, b"local.sharedkeyhint") + pb_field(2, hint.encode()))
    op1 = pb_field(3, pb_field(1, b"local://context") + attr) + pb_field(11, b"")
    digest = "sha256:" + hashlib.sha256(op1).hexdigest()
    op2 = pb_field(1, pb_field(1, digest.encode()))
    p = os.path.join(WORK, f"local-{hint}.pb")
    with open(p, "wb") as f:
        f.write(pb_field(1, op1) + pb_field(1, op2))
    return p


SYNC_RE = re.compile(r"file sync done.* files=(\d+) bytes=(\d+)")


def kiln_sent(s: Sample) -> tuple[int, int]:
    m = SYNC_RE.findall(re.sub(r"\x1b\[[0-9;]*m", "", s.stderr))
    if not m:
        raise CommandFailed("kiln solve printed no 'file sync done' line:\n" + s.stderr[-2000:])
    return int(m[-1][0]), int(m[-1][1])


# ---------------------------------------------------------------------------
# rows


def rows() -> list[Row]:
    out_rows: list[Row] = []
    kd, xd = app("kiln-docker"), app("buildx-docker")
    seed_amd = dockerfile("Dockerfile.seed", SEED.replace("{go}", GO_IMAGE))
    cross = dockerfile("Dockerfile.cross", CROSS)
    kiln_docker = kiln_build(DOCKER_ADDR, kd)
    bx = buildx(seed_amd, xd)
    out_rows += [
        Row("cold (daemon cache pruned)", "Docker", Side("kiln", kiln_docker, prune(DOCKER_ADDR)),
            Side("buildx", bx, prune(DOCKER_ADDR), env=DOCKER_ENV), prime=False,
            note="base images pulled from the local registry again"),
        Row("warm (nothing changed)", "Docker", Side("kiln", kiln_docker),
            Side("buildx", bx, env=DOCKER_ENV), goal=0.5),
        Row("one .go file edited", "Docker", Side("kiln", kiln_docker, edit(kd)),
            Side("buildx", bx, edit(xd), env=DOCKER_ENV), goal=0.8),
    ]
    if GO_ARM64_IMAGE:
        qd = app("buildx-qemu")
        seed_arm = dockerfile("Dockerfile.seed-arm64", SEED.replace("{go}", GO_ARM64_IMAGE))
        out_rows.append(Row(
            "linux/arm64, one file edited: kiln (cross-compiles) vs buildx, seed Dockerfile under QEMU",
            "Docker", Side("kiln", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/arm64"), edit(kd)),
            Side("buildx+QEMU", buildx(seed_arm, qd, "--platform", "linux/arm64"), edit(qd), env=DOCKER_ENV),
            goal=0.2, goal_text="≥ 5× faster (≤ 0.2)"))
        out_rows.append(Row(
            "linux/arm64, cold (daemon cache pruned): kiln (cross-compiles) vs buildx, seed Dockerfile under QEMU",
            "Docker", Side("kiln", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/arm64"), prune(DOCKER_ADDR)),
            Side("buildx+QEMU", buildx(seed_arm, qd, "--platform", "linux/arm64"), prune(DOCKER_ADDR),
                 env=DOCKER_ENV),
            goal=0.2, goal_text="≥ 5× faster (≤ 0.2)", prime=False, runs=min(RUNS, 3),
            note="at most 3 runs: the QEMU side compiles the standard library under emulation"))
    else:
        log("no arm64 golang image (KILN_BENCH_GO_ARM64_IMAGE): the QEMU rows are skipped")
    cd = app("buildx-cross")
    out_rows += [
        Row("linux/arm64, one file edited: vs buildx, cross-compiling Dockerfile", "Docker",
            Side("kiln", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/arm64"), edit(kd)),
            Side("buildx", buildx(cross, cd, "--platform", "linux/arm64"), edit(cd), env=DOCKER_ENV)),
        Row("linux/arm64 vs native linux/amd64 (kiln, one file edited)", "Docker",
            Side("kiln arm64", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/arm64"), edit(kd)),
            Side("kiln amd64", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/amd64"), edit(kd)),
            goal=1.2),
        Row("two platforms fanned out vs one (kiln, one file edited)", "Docker",
            Side("kiln amd64+arm64", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/amd64,linux/arm64"), edit(kd)),
            Side("kiln amd64", kiln_build(DOCKER_ADDR, kd, "--platform", "linux/amd64"), edit(kd)),
            goal=1.5),
        Row("`kiln info` round trip vs `docker buildx inspect`", "Docker",
            Side("kiln", lambda: [KILN, "--addr", DOCKER_ADDR, "info"]),
            Side("buildx", lambda: ["docker", "buildx", "inspect", "default"], env=DOCKER_ENV)),
    ]
    if not BK_ADDR:
        log("no standalone buildkitd in the harness: its rows are skipped")
        return out_rows
    kb, cb = app("kiln-bk"), app("buildctl-bk")
    cdef = kiln_def(cb)
    kiln_bk = kiln_build(BK_ADDR, kb, name="kiln-bk")
    bctl = buildctl_build(cdef, cb)
    out_rows += [
        Row("cold (daemon cache pruned)", "buildkitd", Side("kiln", kiln_bk, prune(BK_ADDR)),
            Side("buildctl", bctl, prune(BK_ADDR), stdin=lambda: cdef), prime=False,
            note="buildctl is handed kiln's Definition: kiln's image resolution is in its time only"),
        Row("warm (nothing changed)", "buildkitd", Side("kiln", kiln_bk),
            Side("buildctl", bctl, stdin=lambda: cdef),
            note="kiln resolves the builder and base tags through the daemon; buildctl is handed them resolved"),
        Row("warm, with kiln.lock (images named by digest, as in buildctl's definition)", "buildkitd",
            Side("kiln", kiln_build(BK_ADDR, locked_app(), "--locked", name="kiln-bk-locked")),
            Side("buildctl", bctl, stdin=lambda: cdef), goal=1.0),
        Row("one .go file edited", "buildkitd", Side("kiln", kiln_bk, edit(kb)),
            Side("buildctl", bctl, edit(cb), stdin=lambda: cdef)),
        Row("`kiln info` round trip vs `buildctl debug workers`", "buildkitd",
            Side("kiln", lambda: [KILN, "--addr", BK_ADDR, "info"]),
            Side("buildctl", lambda: [BUILDCTL, "--addr", BK_ADDR, "debug", "workers"])),
    ]
    out_rows += context_rows()
    return out_rows


def context_rows() -> list[Row]:
    log(f"generating the context: {SMALL} files + {BIG_MIB} MiB")
    ctx, total = make_context()
    mib = total / (1 << 20)
    kenv = {"KILN_LOG": "kiln_session=debug", "NO_COLOR": "1"}

    def kiln_solve(defp: Callable[[], str]):
        return lambda: [KILN, "--addr", BK_ADDR, "solve", "-f", defp(), "--progress", "quiet",
                        "--local", f"context={ctx}"]

    def bctl_solve():
        return [BUILDCTL, "--addr", BK_ADDR, "build", "--progress", "quiet", "--local", f"context={ctx}"]

    # first: a new shared-key hint every run (the daemon has no copy to diff against)
    fresh = {"kiln": "", "buildctl": ""}

    def new_hint(tool: str) -> Callable[[], None]:
        def do() -> None:
            fresh[tool] = local_def(f"bench-{tool}-{uuid.uuid4().hex}")
        return do

    def sent_all(s: Sample) -> None:
        files, sent = kiln_sent(s)
        if (files, sent) != (SMALL + 1, total):
            raise CommandFailed(f"first sync sent {files} files, {sent} bytes; expected {SMALL + 1}, {total}")

    def sent_none(s: Sample) -> None:
        files, sent = kiln_sent(s)
        if files or sent:
            raise CommandFailed(f"an unchanged re-sync sent {files} files, {sent} bytes")

    def sent_one(s: Sample) -> None:
        files, _ = kiln_sent(s)
        if files != 1:
            raise CommandFailed(f"a one-file change sent {files} files")

    def mbps(a: list[Sample], b: list[Sample]) -> str:
        return (f"kiln {mib / med([s.wall for s in a]):.0f} MiB/s, "
                f"buildctl {mib / med([s.wall for s in b]):.0f} MiB/s")

    kept = {"kiln": local_def("bench-kiln-kept"), "buildctl": local_def("bench-buildctl-kept")}
    small = os.path.join(ctx, "src", "d000", "f0000.dat")

    def touch_one() -> None:
        with open(small, "wb") as f:
            f.write(uuid.uuid4().bytes)

    return [
        Row("context first sync: 20,000 files + 200 MiB", "buildkitd",
            Side("kiln", kiln_solve(lambda: fresh["kiln"]), new_hint("kiln"), env=kenv, check=sent_all),
            Side("buildctl", bctl_solve, new_hint("buildctl"), stdin=lambda: fresh["buildctl"]),
            goal=1 / 1.4, goal_text="≥ 1.4× buildctl's throughput (≤ 0.71)", prime=False, extra=mbps),
        Row("context re-sync, one small file changed", "buildkitd",
            Side("kiln", kiln_solve(lambda: kept["kiln"]), touch_one, env=kenv, check=sent_one),
            Side("buildctl", bctl_solve, touch_one, stdin=lambda: kept["buildctl"]),
            note="kiln sent one file"),
        Row("context re-sync, unchanged", "buildkitd",
            Side("kiln", kiln_solve(lambda: kept["kiln"]), env=kenv, check=sent_none),
            Side("buildctl", bctl_solve, stdin=lambda: kept["buildctl"]),
            goal=0.3, note="kiln sent no file data (checked every run)"),
    ]


# ---------------------------------------------------------------------------
# the report


def version(argv: list[str], env: Optional[dict] = None) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=30)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def report(done: list[Row], path: str) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {now} by `./benches/bench.sh` ({RUNS} runs per row unless the row says, after a "
        f"warm-up run of each side except on cold rows; median (min–max); the ratio is computed run by run). Machine: {os.cpu_count()} cores, "
        f"{platform.machine()}, Linux {platform.release()}. {version([KILN, '--version'])}; "
        f"{version(['docker', 'version', '--format', 'Docker {{.Server.Version}}'], DOCKER_ENV)}; "
        f"{version(['docker', 'buildx', 'version'], DOCKER_ENV)}; "
        f"{version([BUILDCTL, '--version'])}.",
        "",
        "| row | daemon | kiln | peer | ratio | goal | met | peak RSS kiln / peer | CPU kiln / peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in done:
        a, b = r.samples
        ratios = [x.wall / y.wall for x, y in zip(a, b)]
        rm = med(ratios)
        goal = r.goal_text or (f"≤ {r.goal:g}" if r.goal is not None else "")
        met = "" if r.goal is None else ("yes" if rm <= r.goal else "**no**")
        rss = f"{med([s.rss_kib for s in a]) / 1024:.1f} / {med([s.rss_kib for s in b]) / 1024:.1f} MiB"
        cpu = f"{med([s.cpu for s in a]):.2f} / {med([s.cpu for s in b]):.2f} s"
        notes = "; ".join(x for x in (r.note, r.extra(a, b)) if x)
        name = r.name + (f" ({notes})" if notes else "")
        lines.append(f"| {name} | {r.daemon} | {r.left.label}: {secs([s.wall for s in a])} | "
                     f"{r.right.label}: {secs([s.wall for s in b])} | {span(ratios)} | {goal} | {met} | "
                     f"{rss} | {cpu} |")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "benches", "results.md")
    done: list[Row] = []
    try:
        for r in rows():
            if ONLY and not any(o in f"{r.daemon}: {r.name}" for o in ONLY):
                continue
            log(f"{r.daemon}: {r.name}")
            r.measure()
            done.append(r)
        report(done, path)
    except CommandFailed as e:
        log(str(e))
        return 1
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(open(path).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
