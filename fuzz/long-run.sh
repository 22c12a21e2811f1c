#!/usr/bin/env bash
# Runs every fuzz target for a long time, one after the other, on one core at low priority, and
# prints one summary line per target (docs/fuzzing.md has the table).
#
#   fuzz/long-run.sh OUT_DIR [SECONDS_PER_TARGET] [TARGET...]
#
# Expects the targets built by `cargo +nightly fuzz build -s none -a` (or the RUSTC_BOOTSTRAP
# form); runs a copy of the binaries, so editing and rebuilding meanwhile does not disturb it.
# OUT_DIR gets per target: <t>.log (libFuzzer's output), corpus/<t>/ (new inputs; the seeds in
# fuzz/corpus/<t>/ are only read), artifacts/<t>/ (crashes), and summary.txt.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
secs="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(transport responder initiator uapi config messages)
fi
src="$here/target/x86_64-unknown-linux-gnu/release"
mkdir -p "$out/bin"
for t in "${targets[@]}"; do
    cp "$src/$t" "$out/bin/$t"
done

for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/work/$t"
    start=$(date +%s)
    # -jobs=1 runs the fuzzer in a child that logs to fuzz-0.log in the working directory.
    (
        cd "$out/work/$t"
        nice -n 15 "$out/bin/$t" -max_total_time="$secs" -jobs=1 -workers=1 \
            -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" \
            "$out/corpus/$t" "$here/corpus/$t" >"$out/$t.driver.log" 2>&1 || true
    )
    end=$(date +%s)
    cp "$out/work/$t/fuzz-0.log" "$out/$t.log" 2>/dev/null || true
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/$t.log" | awk '{print $2}' | tail -1)
    corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$out/$t.log" | tail -1 | awk '{print $2}')
    crashes=$(find "$out/artifacts/$t" -type f | wc -l)
    new=$(find "$out/corpus/$t" -type f | wc -l)
    printf '%s\t%ss\texecs=%s\tcorpus=%s\tnew_files=%s\tcrashes=%s\n' \
        "$t" "$((end - start))" "${execs:-?}" "${corpus:-?}" "$new" "$crashes" | tee -a "$out/summary.txt"
done
