#!/usr/bin/env bash
# The summary at the end of `make test`: per-suite counts from the logs the
# test steps wrote to tests/artifacts/<suite>.log.
#   bash scripts/test-summary.sh [ARTIFACTS_DIR] [SIZE_CEILING]
# cargo test's `test result:` lines count the native suite; node:test's spec
# reporter (`ℹ pass N`, `ℹ fail N`, `ℹ cancelled N`) counts the others. It fails
# when any suite is missing, ran 0 tests, or had a failed or cancelled test, and
# when a node:test file defined no tests at all (the reporter then counts the
# file itself as one passing test, under its path). Its last line is
# `test: N passed, M failed`.
set -euo pipefail
dir=${1:-tests/artifacts}
ceiling=${2:-?}

# log name | label
suites=(
  "native|native (cargo test)"
  "wasm-node|wasm in Node"
  "wasm-chromium|wasm in Chromium"
  "worker|worker in workerd"
  "e2e|demo page, Chromium"
  "faults|fault matrix"
  "bundlers|package, bundlers"
)

# The last `ℹ <name> N` line of a node:test spec log (0 when absent).
spec_count() { sed -n "s/^ℹ $1 \([0-9][0-9]*\)\$/\1/p" "$2" | tail -n1 | grep . || echo 0; }

total_pass=0
total_fail=0
problems=()
lines=()
for entry in "${suites[@]}"; do
  name=${entry%%|*}
  label=${entry#*|}
  log="$dir/$name.log"
  if [ ! -f "$log" ]; then
    problems+=("$name: no log ($log): the suite did not run")
    lines+=("$(printf '  %-21s: did not run' "$label")")
    continue
  fi
  note=""
  if [ "$name" = native ]; then
    pass=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9][0-9]*\) passed.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
    fail=$(sed -n 's/^test result: .* \([0-9][0-9]*\) failed.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
  else
    pass=$(spec_count pass "$log")
    fail=$(( $(spec_count fail "$log") + $(spec_count cancelled "$log") ))
    empty=$(grep -c '^✔ /' "$log" || true)
    [ "$empty" -eq 0 ] || problems+=("$name: $empty test file(s) defined no node:test tests: $(sed -n 's/^✔ \(\/[^ ]*\).*/\1/p' "$log" | paste -sd ' ')")
    if [ "$name" = faults ]; then
      jobs=$(sed -n 's/^faults: \([0-9][0-9]*\) jobs, .*/\1/p' "$log" | tail -n1)
      note=" (${jobs:-0} jobs)"
    fi
  fi
  [ "$pass" -gt 0 ] || problems+=("$name ran 0 tests")
  [ "$fail" -eq 0 ] || problems+=("$name: $fail failed")
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
  lines+=("$(printf '  %-21s: %5d passed, %d failed%s' "$label" "$pass" "$fail" "$note")")
done

echo "=============================== summary ==============================="
printf '%s\n' "${lines[@]}"
printf '  %-21s: passed\n' "types (tsc --noEmit)"
printf '  %-21s: %s bytes of %s\n' "size (gzip -9)" "$(cat "$dir/size.txt" 2>/dev/null || echo '?')" "$ceiling"
echo "======================================================================="
for p in "${problems[@]}"; do echo "test: FAIL: $p"; done
echo "test: $total_pass passed, $total_fail failed"
[ "${#problems[@]}" -eq 0 ]
