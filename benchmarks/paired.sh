#!/usr/bin/env bash
# Interleaved memjax / PyTorch runs of the `bench` shape, one JSON line each, and the paired ratios.
#   benchmarks/paired.sh PAIRS OUT_PREFIX [MEMJAX_PYTHON] [TORCH_PYTHON]
# e.g. benchmarks/paired.sh 9 benchmarks/results/2026-11-28 .venv/bin/python /opt/torch/bin/python
set -euo pipefail
pairs=${1:?pairs} out=${2:?output prefix} memjax_python=${3:-python} torch_python=${4:-python}
memjax_out="${out}_memjax.jsonl" torch_out="${out}_torch.jsonl"
for path in "$memjax_out" "$torch_out"; do
  [[ -e "$path" ]] && { echo "paired.sh: $path exists; not overwriting it" >&2; exit 1; }
done
for ((i = 1; i <= pairs; i++)); do
  "$memjax_python" -m memjax.bench train --config=configs/clm.py:bench | tail -n 1 >> "$memjax_out"
  "$torch_python" benchmarks/torch_baseline.py | tail -n 1 >> "$torch_out"
done
"$memjax_python" - "$memjax_out" "$torch_out" <<'PY'
import json, statistics, sys
rates = [[json.loads(line)["tokens_per_s"] for line in open(path)] for path in sys.argv[1:]]
ratios = [m / t for m, t in zip(*rates)]
print("memjax tokens/s ", [round(r) for r in rates[0]], "median", round(statistics.median(rates[0])))
print("PyTorch tokens/s", [round(r) for r in rates[1]], "median", round(statistics.median(rates[1])))
print("ratios", [round(r, 2) for r in ratios], "median", round(statistics.median(ratios), 3))
PY
