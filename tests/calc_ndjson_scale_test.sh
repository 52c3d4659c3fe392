#!/usr/bin/env bash
# The calculator answers 100,000 NDJSON scenarios in one run: one output
# line per input line, errors only for the examples that are refusals.
# Usage: calc_ndjson_scale_test.sh <medsettle-calc> <examples/all.ndjson> [count]
set -euo pipefail
calc="$1"; examples="$2"; want="${3:-100000}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

per_pass=$(grep -c . "$examples")
refusals_per_pass=$("$calc" < "$examples" | grep -c '^{"error"' || true)
passes=$(( (want + per_pass - 1) / per_pass ))
for _ in $(seq "$passes"); do cat "$examples"; done | head -n "$want" > "$work/in.ndjson"

start=$(date +%s)
"$calc" < "$work/in.ndjson" > "$work/out.ndjson"
seconds=$(( $(date +%s) - start ))

lines=$(wc -l < "$work/out.ndjson")
errors=$(grep -c '^{"error"' "$work/out.ndjson" || true)
full_passes=$(( want / per_pass )); rest=$(( want % per_pass ))
expected_errors=$(( full_passes * refusals_per_pass + $(head -n "$rest" "$examples" | "$calc" | grep -c '^{"error"' || true) ))
echo "scenarios=$want answered=$lines errors=$errors (expected $expected_errors) seconds=$seconds"
[ "$lines" -eq "$want" ] || { echo "FAIL: $lines answers for $want scenarios"; exit 1; }
[ "$errors" -eq "$expected_errors" ] || { echo "FAIL: unexpected error count"; exit 1; }
echo "1 passed, 0 failed"
