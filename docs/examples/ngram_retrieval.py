"""Single-embedding n-gram retrieval (paper §5.10) beside a model's own objective, on memjax's public API.

The retrieval objective is built in (memjax/objectives/retrieval.py: 7-gram queries, InfoNCE over
cosine similarities at temperature 0.02, retrieval accuracy against a chance of 1 / documents per
batch); alone it is the "Causal → Retrieval" fine-tuning of §5.1 (`objective.stages=retrieval`). This
example trains it together with the model's own objective, as user code named by import path:
next-token prediction or copy for memory models (whose documents are their chunks), reconstruction
for autoencoders.

From the command line (docs/examples on PYTHONPATH), e.g. CLM first, then CLM + retrieval:
  PYTHONPATH=docs/examples python -m memjax.train --config=configs/memory.py:small \
      --config.objective.stages=clm:1000,ngram_retrieval:retrieval --workdir=runs/retrieval
or this file: python docs/examples/ngram_retrieval.py --scale=cpu --workdir=runs/retrieval
"""

from __future__ import annotations

import argparse
import pathlib

import ml_collections

from memjax import api as mj


def with_retrieval(cfg, special: mj.SpecialIds, base: str) -> mj.Objective:
  """The built-in retrieval objective with the built-in objective `base` beside it (weight 1 each)."""
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.objective.retrieval_base = base
  return mj.builtin_objective("retrieval", cfg, special)


def retrieval(cfg, special: mj.SpecialIds) -> mj.Objective:
  """Retrieval with the model's own objective: reconstruction for autoencoders, else next-token."""
  return with_retrieval(cfg, special, "autoencode" if cfg.task == "autoencoder" else "clm")


def retrieval_copy(cfg, special: mj.SpecialIds) -> mj.Objective:
  """Retrieval with the copy objective (memory models)."""
  return with_retrieval(cfg, special, "copy")


def config(scale: str = "tiny"):
  """A mixer memory model trained on CLM + retrieval: `tiny` (tests, 100 steps) or `cpu` (the
  `small` preset, 2000 steps). At tiny scale, held-out retrieval accuracy reached 27 % after 100
  steps and 55 % after 150, against a chance of 3 % (32 documents per batch). At cpu scale (256
  documents of 32 tokens per batch, chance 0.39 %) it reached 78.6 % at step 500 and again at step
  1000 (next-token loss 4.147 -> 4.117, accuracy 25.5 -> 27.1 %; 2026-11-29, 2 cores)."""
  configs = pathlib.Path(__file__).resolve().parents[2] / "configs"
  cfg = mj.load_config(configs / "memory.py", {"tiny": "tiny", "cpu": "small"}[scale] + ",family=mixer")
  cfg.objective.stages = "ngram_retrieval:retrieval"
  if scale == "tiny":
    cfg.train.update(steps=100, lr=3e-3, warmup_steps=10, log_every=25, eval_every=100,
                     checkpoint_every=100, eval_batches=4)
  return cfg


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--scale", choices=("tiny", "cpu"), default="tiny")
  parser.add_argument("--workdir", default="runs/ngram_retrieval")
  args = parser.parse_args()
  results = mj.fit(config(args.scale), args.workdir, objectives={"ngram_retrieval:retrieval": retrieval})
  eval_ = results["eval"]
  print(f"retrieval accuracy {eval_['retrieval/accuracy']:.3f} (chance {eval_['retrieval/chance']:.3f}), "
        f"next-token loss {eval_['clm/loss']:.3f}")


if __name__ == "__main__":
  main()
