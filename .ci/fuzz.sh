#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/, replays the committed regression inputs, then fuzzes
# each target for FUZZ_SECONDS from its committed corpus. Fails if any input crashes a target.
#
#   .ci/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 .ci/fuzz.sh         # longer
#   FUZZ_TARGETS="path_policy" .ci/fuzz.sh
#   FUZZ_DEV=1 .ci/fuzz.sh               # unoptimised build: compiles in about half the time,
#                                        # runs fewer inputs per second (CI's smoke run)
#
# Needs the stable and nightly Rust toolchains (cargo-fuzz is installed if missing). New
# interesting inputs go to a scratch corpus (FUZZ_WORK_DIR), never into the committed one;
# crashing inputs land in fuzz/artifacts/<target>/. See docs/fuzzing.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
FUZZ_WORK_DIR="${FUZZ_WORK_DIR:-fuzz/target/ci-corpus}"
# Same flags for build and run, or cargo-fuzz rebuilds: overflow checks on, no sanitizer
# (the gateway forbids unsafe code; the checks that matter are its own assertions).
BUILD_FLAGS=(--debug-assertions --sanitizer none)
if [[ "${FUZZ_DEV:-0}" == 1 ]]; then BUILD_FLAGS+=(--dev); fi

if ! [[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]] || (( FUZZ_SECONDS < 1 )); then
    echo "fuzz: FUZZ_SECONDS must be a positive integer, not '$FUZZ_SECONDS'" >&2
    exit 2
fi

if ! rustup run "$FUZZ_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "fuzz: installing the $FUZZ_TOOLCHAIN toolchain"
    rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

fuzz() {
    cargo "+$FUZZ_TOOLCHAIN" fuzz "$@"
}

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(fuzz list)
fi
if (( ${#targets[@]} == 0 )); then
    echo "fuzz: no targets" >&2
    exit 2
fi

start=$SECONDS
echo "fuzz: building ${targets[*]}"
fuzz build "${BUILD_FLAGS[@]}"
echo "fuzz: build took $(( SECONDS - start )) s"

failed=()
summary=()
for target in "${targets[@]}"; do
    # Known crashers first: each file is one input that once broke this target.
    regressions="fuzz/regressions/$target"
    if compgen -G "$regressions/*" >/dev/null; then
        echo "fuzz: $target: replaying $regressions"
        if ! fuzz run "${BUILD_FLAGS[@]}" "$target" "$regressions" -- -runs=0 >"fuzz/target/$target-regressions.log" 2>&1; then
            tail -n 40 "fuzz/target/$target-regressions.log"
            echo "fuzz: $target: a regression input fails (see above; log fuzz/target/$target-regressions.log)" >&2
            failed+=("$target (regression)")
        fi
    fi

    work="$FUZZ_WORK_DIR/$target"
    mkdir -p "$work" "fuzz/corpus/$target"
    log="fuzz/target/$target-fuzz.log"
    echo "fuzz: $target: fuzzing for $FUZZ_SECONDS s"
    status=0
    fuzz run "${BUILD_FLAGS[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if (( status != 0 )); then
        tail -n 60 "$log"
        echo "fuzz: $target: CRASH (exit $status; input saved under fuzz/artifacts/$target/, log $log)" >&2
        failed+=("$target")
        summary+=("$target: crashed after ${runs:-?} executions")
    else
        summary+=("$target: ${runs:-?} executions in $FUZZ_SECONDS s, no crash")
    fi
done

echo "fuzz: summary ($(( SECONDS - start )) s in all)"
printf '  %s\n' "${summary[@]}"
if (( ${#failed[@]} > 0 )); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
