#!/usr/bin/env bash
# Peak host memory (max RSS) of converting and loading a ~370M-parameter Llama built from a random
# config (benchmarks/pretrained_memory.py make), in a scratch folder that is deleted afterwards.
#   benchmarks/pretrained_memory.sh [PYTHON] [SCRATCH]
set -euo pipefail
python=${1:-python} scratch=${2:-/tmp/memjax-pretrained-memory}
rm -rf "$scratch" && mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
export MEMJAX_CACHE="$scratch/cache" JAX_PLATFORMS=cpu
peak() { /usr/bin/time -f "{\"step\": \"$1\", \"peak_rss_kib\": %M, \"seconds\": %e}" "${@:2}" 2>&1 >/dev/null \
           | grep '^{"step"'; }
nice -n 10 "$python" benchmarks/pretrained_memory.py make "$scratch/hf"
du -sh "$scratch/hf/model.safetensors"
peak convert nice -n 10 "$python" -m memjax.convert hf-llama "$scratch/hf" "$scratch/memjax"
"$python" -c 'import numpy as np; np.save("'"$scratch"'/tokens.npy", np.arange(64).reshape(2, 32))'
peak score nice -n 10 "$python" -m memjax.score --checkpoint="$scratch/memjax" --tokens="$scratch/tokens.npy" \
  --out="$scratch/logits.npy"
nice -n 10 "$python" benchmarks/pretrained_memory.py load "$scratch/memjax"
peak to-hf nice -n 10 "$python" -m memjax.convert to-hf "$scratch/memjax" "$scratch/back"
