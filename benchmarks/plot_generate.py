"""Plots `python -m memjax.bench generate` results: decode latency and KV cache against context.

COMMAND: python benchmarks/plot_generate.py benchmarks/results/FILE.jsonl [--out=benchmarks/generate_efficiency.png]
"""

import argparse
import collections
import json
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"memory": ("tab:blue", "memory model"), "full": ("tab:red", "full-context transformer"),
         "recurrent": ("tab:green", "recurrent (RMT)")}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("results", nargs="+", help="JSON-lines files (several runs are combined by median)")
  p.add_argument("--out", default="benchmarks/generate_efficiency.png")
  args = p.parse_args()
  runs = collections.defaultdict(list)
  for path in args.results:
    for line in open(path):
      row = json.loads(line)
      if row.get("benchmark") == "generate":
        runs[row["model"], row["context_tokens"]].append(row)
  fig, (latency, cache) = plt.subplots(1, 2, figsize=(11, 4.2))
  for model, (color, label) in STYLE.items():
    contexts = sorted(c for m, c in runs if m == model)
    if not contexts:
      continue
    ms = [statistics.median(r["decode_ms_per_token"] for r in runs[model, c]) for c in contexts]
    kv = [runs[model, c][0]["kv_cache_bytes"] / 2**20 for c in contexts]
    latency.plot(contexts, ms, "o-", color=color, label=label)
    cache.plot(contexts, kv, "o-", color=color, label=label)
  for ax, title, unit in ((latency, "decode latency per token", "ms / token"),
                          (cache, "decoder KV cache (batch 1, float32)", "MiB")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
  latency.legend()
  fig.tight_layout()
  fig.savefig(args.out, dpi=120)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
