"""The LLM information probe (paper §5.2): how much of its input a pretrained LM's embedding holds.

  python -m memjax.convert hf-llama path/to/Llama-3.2-1B converted/llama-3.2-1b
  python -m memjax.experiments.llm_probe --config=configs/probe.py:paper,pretrained=converted/llama-3.2-1b \
      --workdir=runs/llm_probe --n_ctx=16,64,256,512

For each context length a fresh decoder is trained to regenerate the input from the frozen model's
last-token, last-layer hidden state (configs/probe.py with `pretrained=DIR`); each length is an
ordinary run in WORKDIR/n_ctx_N (resumable). `--tokens_per_batch` sets the batch to that many tokens
per step; by default the config's (batch size x n_ctx: 32768 at the paper preset, the reference's
32768 / n_ctx sequences at every length). Prints and writes (results.json, results.md) the paper's
table: cross-entropy, entropy proportion I_e and token accuracy on held-out text, per n_ctx.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from memjax import cli, runtime

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "configs/probe.py:PRESET,pretrained=DIR",
                                  lock_config=True)
  flags.DEFINE_string("workdir", "runs/llm_probe", "Folder for every context length and the results.")
  flags.DEFINE_list("n_ctx", ["16", "64"], "Context lengths to probe.")
  flags.DEFINE_integer("tokens_per_batch", -1, "Tokens per training batch at every n_ctx (-1: the config's, "
                       "its batch size x its n_ctx, as the reference holds 32768 at every length; 0: the "
                       "config's batch size at every n_ctx).")
  flags.mark_flags_as_required(["config"])


def run_config(cfg: ml_collections.ConfigDict, n_ctx: int, tokens_per_batch: int,
               batch_shards: int) -> ml_collections.ConfigDict:
  run = ml_collections.ConfigDict(cfg.to_dict())
  if tokens_per_batch < 0:  # the config's tokens per batch, held at every length
    tokens_per_batch = cfg.train.batch_size * cfg.data.n_ctx
  run.data.n_ctx = n_ctx
  if tokens_per_batch:
    run.train.batch_size = max(batch_shards, tokens_per_batch // n_ctx // batch_shards * batch_shards)
  return run


def table(rows: list[dict[str, Any]]) -> str:
  lines = ["| n_ctx | cross-entropy | I_e | token accuracy | steps |", "|---|---|---|---|---|"]
  lines += [f"| {r['n_ctx']} | {r['cross_entropy']:.3f} | {r['entropy_proportion']:.3f} | "
            f"{100 * r['token_accuracy']:.1f}% | {r['steps']} |" for r in rows]
  return "\n".join(lines)


def probe(cfg: ml_collections.ConfigDict, workdir: str, n_ctxs: list[int],
          tokens_per_batch: int = 0) -> list[dict[str, Any]]:
  """Runs the probe at every n_ctx; returns (and writes) one row per context length."""
  import jax

  from memjax.training import loop, sharding

  if cfg.task != "autoencoder" or not cfg.encoder.checkpoint or not cfg.encoder.frozen:
    raise ValueError("the LLM probe needs configs/probe.py with pretrained=DIR (a frozen encoder)")
  mesh = sharding.make_mesh(cfg.mesh)
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  root = pathlib.Path(workdir)
  rows = []
  for n_ctx in n_ctxs:
    results = loop.run(run_config(cfg, n_ctx, tokens_per_batch, shards), str(root / f"n_ctx_{n_ctx}"))
    metrics = results["eval"]
    rows.append({"n_ctx": n_ctx, "steps": results["step"],
                 "cross_entropy": metrics["reconstruction/loss"],
                 "entropy_proportion": metrics["reconstruction/entropy_proportion"],
                 "token_accuracy": metrics["reconstruction/accuracy"]})
  if jax.process_index() == 0:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"model": cfg.encoder.checkpoint, "rows": rows}, indent=2))
    (root / "results.md").write_text(f"Information probe of {cfg.encoder.checkpoint}\n\n{table(rows)}\n")
  return rows


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()
  with cli.user_errors("memjax.experiments.llm_probe"):
    n_ctxs = [int(n) for n in FLAGS.n_ctx]
    rows = probe(FLAGS.config, FLAGS.workdir, n_ctxs, FLAGS.tokens_per_batch)
  print(table(rows))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
