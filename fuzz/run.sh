#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for <seconds> each, one after another.
#
#   fuzz/run.sh <seconds> [target...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only a stable toolchain exists here, so
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. FUZZ_SANITIZER picks the sanitizer
# (default `address`; `none` builds faster and still catches every panic, which is what the
# oracles in these targets raise: the decoders have no `unsafe`). Corpora live in
# fuzz/corpus/<target> (not committed); a crash lands in fuzz/artifacts/<target>/ and makes
# this script exit non-zero. Prints one summary line per target: runs, coverage, seconds.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:?usage: fuzz/run.sh <seconds> [target...]}"
shift
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
start=$(date +%s)
cargo fuzz build -O -s "$sanitizer"
echo "== fuzz build (-s $sanitizer): $(( $(date +%s) - start )) s"
mkdir -p logs
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="logs/$t.log"
  t0=$(date +%s)
  if cargo fuzz run -O -s "$sanitizer" "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "== fuzz $t: $result, $runs runs, cov $cov, $(( $(date +%s) - t0 )) s, corpus $(ls "corpus/$t" | wc -l) inputs"
  if [ "$result" = FAILED ]; then
    tail -40 "$log"
  fi
done
exit $status
