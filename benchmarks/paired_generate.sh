#!/usr/bin/env bash
# Interleaved memjax / Hugging Face decode runs at the `bench` shape (full-context model), one JSON
# line per run and context length, then the paired ratios of decode tokens/s per context.
#   [THREADS=2] benchmarks/paired_generate.sh PAIRS OUT_PREFIX [CONTEXTS] [MEMJAX_PYTHON] [TORCH_PYTHON]
# (THREADS: PyTorch's intra-op threads; XLA uses every core.)
# e.g. benchmarks/paired_generate.sh 3 benchmarks/results/2026-12-03 1024,4096,16384 .venv/bin/python
set -euo pipefail
pairs=${1:?pairs} out=${2:?output prefix} contexts=${3:-1024,4096,16384}
memjax_python=${4:-python} torch_python=${5:-${4:-python}} threads=${THREADS:-2}
memjax_out="${out}_generate_memjax.jsonl" torch_out="${out}_generate_torch_hf_threads${threads}.jsonl"
for path in "$memjax_out" "$torch_out"; do
  [[ -e "$path" ]] && { echo "paired_generate.sh: $path exists; not overwriting it" >&2; exit 1; }
done
for ((i = 1; i <= pairs; i++)); do
  "$memjax_python" -m memjax.bench generate --models=full --contexts="$contexts" --train_steps=0 \
    | grep '"model": "full"' >> "$memjax_out"
  "$torch_python" benchmarks/torch_generate.py --contexts="$contexts" --new_tokens=64 --threads="$threads" >> "$torch_out"
done
"$memjax_python" - "$memjax_out" "$torch_out" <<'PY'
import collections, json, statistics, sys
runs = [collections.defaultdict(list) for _ in sys.argv[1:]]
for side, path in zip(runs, sys.argv[1:]):
  for line in open(path):
    row = json.loads(line)
    side[row["context_tokens"]].append(row)
for context in sorted(runs[0]):
  memjax, hf = ([r["decode_tokens_per_s"] for r in side[context]] for side in runs)
  ratios = [m / h for m, h in zip(memjax, hf)]
  print(json.dumps({"context_tokens": context, "memjax_tokens_per_s": memjax, "hf_tokens_per_s": hf,
                    "ratios": [round(r, 2) for r in ratios], "median_ratio": round(statistics.median(ratios), 2),
                    "memjax_prefill_s": [r["prefill_s"] for r in runs[0][context]],
                    "hf_prefill_s": [r["prefill_s"] for r in runs[1][context]]}))
PY
