#!/usr/bin/env bash
# Intake CPU cost, two builds interleaved: prints "binary user sys user+sys" per ingest.
#
#   kiban synth --persons 5000 --out IN      # 128,666 resources
#   kiban keygen --key-file KEY_FILE        # outside the data directories
#   bash scripts/bench-intake.sh N BASE_BIN HEAD_BIN IN KEY_FILE
#
# Each ingest goes to a fresh data directory under a temporary folder, removed at the end.
# CPU seconds (user + sys) are compared, not wall time: they vary less with the load.
set -euo pipefail
n=$1; base=$2; head=$3; input=$4; key=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq 1 "$n"); do
  for bin in "$base" "$head"; do
    rm -rf "$work/data"
    /usr/bin/time -o "$work/time" -f "%U %S" "$bin" ingest "$input" --data "$work/data" \
      --key-file "$key" >/dev/null 2>&1
    read -r user sys < "$work/time"
    echo "$(basename "$bin") $user $sys $(echo "$user + $sys" | bc)"
  done
done
