#!/usr/bin/env bash
# One full-mode job with samples = 0 (the sha256 input scheme, no keys) across three
# processes, as a network runs it: `verifier serve` (SQLite), `prover serve`, and the consumer
# `job open --sidecar --out c.npy --check root|freivalds`; each under `/usr/bin/time -v`, so
# the peak resident set of each process is measured on its own. Prints one line per process
# (peak RSS in MiB, against |A| + |B| + |C|) and the consumer's wall time.
#
#   benches/job_processes.sh [N] [root|freivalds]       (N = m = k = n, default 8192)
#
# MATPROOF_BIN names the binary (default target/release/matproof); the work directory is
# temporary and removed at the end (set KEEP=1 to keep it).
set -euo pipefail
n=${1:-8192}
check=${2:-root}
bin=$(realpath "${MATPROOF_BIN:-target/release/matproof}")
time_bin=/usr/bin/time
[ -x "$time_bin" ] || { echo "needs GNU time at $time_bin (Debian: apt-get install time)" >&2; exit 2; }
work=$(mktemp -d)
stop() { # PID of a `time` wrapper: its child gets SIGINT (time itself does not forward it)
  pkill -INT -P "$1" 2>/dev/null || true
}
cleanup() {
  stop "${verifier_pid:-0}"
  stop "${sidecar_pid:-0}"
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

"$bin" gen --rows "$n" --cols "$n" --seed 1 --out a.npy >/dev/null
"$bin" gen --rows "$n" --cols "$n" --seed 2 --out b.npy >/dev/null
cat >job.toml <<EOF
a = "a.npy"
b = "b.npy"
tile = "64x64"
mode = "full"
samples = 0
freivalds_rounds = 2
deadline_secs = 3600
price = 10
consumer_identity = "consumer.key"
provider_identity = "provider.key"
EOF
accounts=$("$bin" job accounts --job job.toml)
consumer=$(sed -n 's/^consumer: //p' <<<"$accounts")
db="sqlite://$work/ledger.db?mode=rwc"
"$bin" verifier fund --db "$db" --account "$consumer" --amount 1000 >/dev/null

wait_for() { # FILE PREFIX: the rest of the first line of FILE starting with PREFIX
  for _ in $(seq 1 600); do
    line=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
    [ -n "$line" ] && { echo "${line#"$2"}"; return; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  exit 1
}

"$time_bin" -v -o verifier.time "$bin" verifier serve --db "$db" --listen 127.0.0.1:0 \
  --identity verifier.key --max-stored-bytes $((4 << 30)) >verifier.out 2>&1 &
verifier_pid=$!
verifier_url=$(wait_for verifier.out "verifier node listening on ")
verifier_key=$(wait_for verifier.out "verifier public key: ")
"$time_bin" -v -o sidecar.time "$bin" prover serve --verifier "$verifier_url" --verifier-key "$verifier_key" \
  --listen 127.0.0.1:0 --identity provider.key >sidecar.out 2>&1 &
sidecar_pid=$!
sidecar_url=$(wait_for sidecar.out "prover sidecar listening on ")

start=$(date +%s.%N)
"$time_bin" -v -o consumer.time "$bin" job open --verifier "$verifier_url" --job job.toml \
  --sidecar "$sidecar_url" --receipt job.receipt --out c.npy --check "$check" | tee consumer.out
end=$(date +%s.%N)
grep -qx 'verdict: approved' consumer.out
grep -q '^result: checked' consumer.out
[ -s c.npy ]

stop "$sidecar_pid"
stop "$verifier_pid"
wait "$sidecar_pid" "$verifier_pid" || true
inputs_mib=$(( (2 * n * n + 4 * n * n) >> 20 ))
for p in verifier sidecar consumer; do
  kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$p.time")
  echo "peak_rss $p: $((kib >> 10)) MiB ($(awk -v k="$kib" -v t="$inputs_mib" 'BEGIN { printf "%.2f", k / 1024 / t }')× |A|+|B|+|C| = $inputs_mib MiB)"
done
echo "consumer wall: $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s (n = $n, check $check)"
