#!/usr/bin/env bash
# Fuzzes kiln's parsers of user input (fuzz/: cargo-fuzz targets over
# libFuzzer) for a fixed time each.
#
#   scripts/fuzz.sh                  # every target
#   scripts/fuzz.sh flags go_mod     # only these
#
# KILN_FUZZ_SECONDS  time per target (default 15)
# KILN_FUZZ_WORK     scratch directory for the corpus the run grows and for
#                    crashing inputs (default: a new directory under $TMPDIR);
#                    the committed seeds in fuzz/corpus/<target>/ are only read
# KILN_FUZZ_SANITIZER  none (default) or address
# KILN_FUZZ_TARGET_DIR where the targets are built (default fuzz/target)
#
# Installs cargo-fuzz into ~/.cargo/bin when it is missing. Stable Rust is
# enough: cargo-fuzz's coverage instrumentation (-Cpasses=sancov-module,
# -Cllvm-args=…) uses stable rustc flags. Only a sanitizer needs a nightly
# flag (-Zsanitizer); with one, RUSTC_BOOTSTRAP=1 lets stable rustc take it,
# for this build only.
#
# Exits non-zero when a target crashes, panics, times out on one input or
# runs out of memory, printing the input and a command that reproduces it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${KILN_FUZZ_SECONDS:-15}
sanitizer=${KILN_FUZZ_SANITIZER:-none}
work=${KILN_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/kiln-fuzz.XXXXXX")}
mkdir -p "$work"
work=$(cd "$work" && pwd)

export PATH="$HOME/.cargo/bin:$PATH"
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

cd "$root/fuzz"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# --dev: fuzz/Cargo.toml's dev profile (opt-level 1, assertions and overflow
# checks on). Without a sanitizer: kiln forbids unsafe code, so AddressSanitizer
# finds little a panic would not, and doubles the cold build.
target_dir=${KILN_FUZZ_TARGET_DIR:-$root/fuzz/target}
build=(--dev --sanitizer "$sanitizer" --target-dir "$target_dir")
started=$SECONDS
# `cargo fuzz build` takes one target or none (all of them).
if [ $# -eq 1 ]; then
    cargo fuzz build "${build[@]}" "$1"
else
    cargo fuzz build "${build[@]}"
fi
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - started)) s"
bin=$target_dir/$(rustc -vV | sed -n 's/^host: //p')/debug

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    log=$work/$t.log
    # Crashes of earlier runs in a reused KILN_FUZZ_WORK are not this run's.
    touch "$work/artifacts/$t/.started"
    # The first corpus directory receives new inputs; the seeds are read only.
    # -timeout: one input may take at most 10 s (runaway backtracking).
    if "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
        "$work/corpus/$t" "corpus/$t" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz: $t ok (${runs:-?} runs in ${seconds} s, corpus $(find "$work/corpus/$t" -type f | wc -l) new)"
    else
        failed+=("$t")
        echo "fuzz: $t FAILED; the end of its log ($log):"
        # Without libFuzzer's progress lines and the backtrace's frames.
        grep -v -e '^#[0-9]' -e '^ *[0-9][0-9]*: ' -e '^ *at ' "$log" | tail -n 25 | sed 's/^/    /'
        while IFS= read -r a; do
            echo "fuzz: crashing input: $a"
            echo "fuzz: reproduce: $bin/$t $a"
        done < <(find "$work/artifacts/$t" -type f ! -name .started -newer "$work/artifacts/$t/.started")
    fi
done

echo "fuzz: scratch corpus and logs in $work"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s each without a crash"
