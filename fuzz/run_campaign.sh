#!/usr/bin/env bash
# Fuzz campaign: every atheris harness in fuzz/ for SECONDS_PER_TARGET seconds (default 600).
#
#   fuzz/run_campaign.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Environment: FUZZ_JOBS (targets run at once, default 2), FUZZ_WORK (corpora, logs and raw
# artifacts; default /tmp/iscsi-fuzz), PYTHON (default .venv/bin/python). Needs atheris
# (pip install -e '.[fuzz]'). Seeds come from sample_pcaps/ (and shared/real_pcaps when present).
#
# A crash (uncaught exception or broken invariant), timeout or out-of-memory input is saved
# into tests/fuzz_regressions/<target>/ (named by its SHA-1), where
# tests/unit/test_fuzz_regressions.py replays it. After a crash the fuzzer restarts with the
# time that is left, so one crash does not end the campaign. The per-target summary (seconds
# fuzzed, executions, new inputs saved) is printed at the end and kept in $FUZZ_WORK/summary.txt.
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
SECONDS_PER_TARGET=${1:-600}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(framer pdus text_keys scsi reassembly capture pipeline)
fi
export FUZZ_WORK=${FUZZ_WORK:-/tmp/iscsi-fuzz}
export PYTHON=${PYTHON:-$REPO/.venv/bin/python}
export SECONDS_PER_TARGET REPO
JOBS=${FUZZ_JOBS:-2}

if ! "$PYTHON" -c 'import atheris' 2>/dev/null; then
    echo "atheris is not installed: pip install -e '.[fuzz]'" >&2
    exit 2
fi
mkdir -p "$FUZZ_WORK"

run_target() {
    local t=$1
    local corpus=$FUZZ_WORK/corpus/$t arts=$FUZZ_WORK/artifacts/$t log=$FUZZ_WORK/logs/$t.log
    local regress=$REPO/tests/fuzz_regressions/$t
    local maxlen
    case $t in
        scsi) maxlen=512 ;; pdus|text_keys) maxlen=4096 ;; framer) maxlen=8192 ;;
        capture) maxlen=16384 ;; *) maxlen=65536 ;;
    esac
    mkdir -p "$corpus" "$arts" "$(dirname "$log")"
    if [ -z "$(ls -A "$corpus")" ]; then
        "$PYTHON" "fuzz/fuzz_$t.py" --make-seeds "$corpus" >/dev/null
    fi
    : >"$log"
    local start end left runs=0 restarts=0
    start=$(date +%s)
    end=$((start + SECONDS_PER_TARGET))
    while :; do
        left=$((end - $(date +%s)))
        [ "$left" -gt 5 ] || break
        "$PYTHON" "fuzz/fuzz_$t.py" "$corpus" -max_total_time="$left" -artifact_prefix="$arts/" \
            -timeout=30 -rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1 >>"$log" 2>&1
        local rc=$?
        local n
        n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
        runs=$((runs + ${n:-0}))
        [ "$rc" -eq 0 ] && break
        restarts=$((restarts + 1))
        [ "$restarts" -ge 20 ] && break
    done
    local saved=0
    for f in "$arts"/crash-* "$arts"/timeout-* "$arts"/oom-* "$arts"/slow-unit-*; do
        [ -e "$f" ] || continue
        mkdir -p "$regress"
        local sum
        sum=$(sha1sum "$f" | cut -c1-16)
        if [ ! -e "$regress/$sum" ]; then
            cp "$f" "$regress/$sum"
            saved=$((saved + 1))
        fi
    done
    echo "$t: $(( $(date +%s) - start ))s fuzzed, ~$runs executions, $restarts crash restarts, $saved new regression inputs" \
        | tee -a "$FUZZ_WORK/summary.txt"
}
export -f run_target

echo "campaign $(date -u +%FT%TZ): ${SECONDS_PER_TARGET}s per target, $JOBS at once" >>"$FUZZ_WORK/summary.txt"
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_target "$@"' _ {}
