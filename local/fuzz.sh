#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for FUZZ_SECONDS (default 30) each, with the samples of
# events/ and the rows of events/bad-input/ as the seed corpus (`make fuzz`). A crash stops
# the run: its input is in fuzz/artifacts/<target>/ and cargo fuzz prints how to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo_fuzz="$root/.tools/cargo/bin/cargo-fuzz"
seconds=${FUZZ_SECONDS:-30}
targets=(execution_input catalogue ecr_event webhook_event webhook_request rotation_event)
if [[ -n "${FUZZ_TARGETS:-}" ]]; then read -r -a targets <<<"$FUZZ_TARGETS"; fi

# cargo fuzz passes rustc nightly flags (-Z); the machine's stable toolchain takes them with
# RUSTC_BOOTSTRAP. AddressSanitizer needs nothing else on x86_64 Linux.
export RUSTC_BOOTSTRAP=1

seed() { # seed <target> <file>...
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  local f
  for f in "$@"; do cp "$f" "$dir/seed-$(basename "$(dirname "$f")")-$(basename "$f")"; done
}
rows() { # rows <target> <bad-input table> <field>: each row's field as its own seed
  local dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  "$root/.tools/venv/bin/python" - "$2" "$3" "$dir" <<'PY'
import json, sys
table, field, out = sys.argv[1:]
for i, row in enumerate(json.load(open(table))):
    value = row[field]
    text = value if isinstance(value, str) and field == "input" and "catalogue" in table else json.dumps(value)
    open(f"{out}/row-{i}.json", "w").write(text)
PY
}
seed execution_input events/deploy/*.json events/validate/input.json
rows execution_input events/bad-input/execution-input.json input
seed catalogue events/trigger/catalogue.json
rows catalogue events/bad-input/catalogue.json input
seed ecr_event events/trigger/ecr-*.json
rows ecr_event events/bad-input/ecr-event.json input
seed webhook_event events/trigger/webhook-*.json
mkdir -p fuzz/corpus/webhook_request # method NUL path NUL content type NUL body
printf 'POST\0/deployments\0application/json\0%s' "$(cat events/trigger/start-deployment.json)" >fuzz/corpus/webhook_request/seed-start
printf 'GET\0/deployments/orders-hook-01J\0\0' >fuzz/corpus/webhook_request/seed-status
printf 'POST\0/deployments/orders-hook-01J/abort\0application/json\0{"by":"alice"}' >fuzz/corpus/webhook_request/seed-abort
seed rotation_event events/rotate-secret/*.json
rows rotation_event events/bad-input/rotation-event.json input

cd fuzz
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  log="$root/.local/logs/fuzz-$target.log"
  mkdir -p "$(dirname "$log")"
  status=0
  "$cargo_fuzz" run "$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  # The progress lines stay in the log; the summary, or the failure, is shown.
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked|ERROR|artifact' "$log" || true
  if [[ $status -ne 0 ]]; then
    echo "fuzz $target failed (exit $status): see $log and fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failure"
