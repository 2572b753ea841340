"""Single-embedding n-gram retrieval (paper §5.10), written as user code on memjax's public API.

Each document of a batch gets a query: 7 consecutive tokens of it at a random position, padded to
the document length. The encoder embeds documents and queries alike (one embedding each, as memories
are formed), and an InfoNCE loss over cosine similarities at temperature 0.02 trains the query's
embedding to pick out its document among all documents of the batch. Retrieval accuracy is the
fraction of queries whose most similar document is their own (chance: 1 / documents per batch).

Documents are what the encoder reads: the chunks of a memory model (as the reference, which used a
memory model's encoder), or the rows of an autoencoder. The retrieval term is added to the model's
own objective: next-token prediction or copy for memory models, reconstruction for autoencoders.

From the command line (docs/examples on PYTHONPATH), e.g. CLM first, then CLM + retrieval:
  PYTHONPATH=docs/examples python -m memjax.train --config=configs/memory.py:small \
      --config.objective.stages=clm:1000,ngram_retrieval:retrieval --workdir=runs/retrieval
or this file: python docs/examples/ngram_retrieval.py --scale=cpu --workdir=runs/retrieval
Differences from the reference: every document is queried (the reference queries one per batch and
replaces a document by the query); the accuracy target is the document the n-gram was drawn from.
"""

from __future__ import annotations

import argparse
import functools
import pathlib

import jax
import jax.numpy as jnp

from memjax import api as mj

NGRAM = 7
TEMPERATURE = 0.02


def document_length(cfg) -> int:
  """The encoder's input length: a memory model's chunk, or the whole context."""
  return cfg.data.n_ctx // cfg.memory.chunks if cfg.task == "memory" else cfg.data.n_ctx


def ngram_queries(batch: mj.Batch, *, length: int, pad_id: int, ngram: int = NGRAM) -> dict[str, jax.Array]:
  """View: 'documents' [D, L] (the batch cut into documents of `length` tokens), 'queries' [D, L]
  (`ngram` tokens of each document from a random start, then `pad_id`) and 'weights' [D] (0 for
  documents without `ngram` consecutive real tokens)."""
  tokens, mask = batch["tokens"], batch["mask"]
  documents_DxL = tokens.reshape(-1, length)
  real_DxL = mask.reshape(-1, length) > 0
  D, L = documents_DxL.shape
  windows = jnp.arange(L - ngram + 1)[:, None] + jnp.arange(ngram)[None, :]  # [J, n]
  complete_DxJ = real_DxL[:, windows].all(axis=-1)
  start_D = jax.random.categorical(batch["rng"], jnp.where(complete_DxJ, 0.0, -1e9))
  ngram_Dxn = jnp.take_along_axis(documents_DxL, start_D[:, None] + jnp.arange(ngram), axis=1)
  queries_DxL = jnp.concatenate([ngram_Dxn, jnp.full((D, L - ngram), pad_id, tokens.dtype)], axis=1)
  return {"documents": documents_DxL, "queries": queries_DxL,
          "weights": complete_DxJ.any(axis=-1).astype(jnp.float32)}


def embed_documents_and_queries(model, view: mj.Batch) -> dict[str, jax.Array]:
  """Forward pass of the retrieval view: one encoder call over documents and queries."""
  D = view["documents"].shape[0]
  embeddings = mj.encoder_embedding(model, jnp.concatenate([view["documents"], view["queries"]]))
  return {"documents": embeddings[:D], "queries": embeddings[D:]}


def infonce_loss(outputs: mj.Batch, view: mj.Batch, temperature: float = TEMPERATURE):
  """InfoNCE over cosine similarities: query i's positive is document i, the others are negatives."""
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True).clip(1e-6)
  queries = unit(outputs["queries"].astype(jnp.float32))
  documents = unit(outputs["documents"].astype(jnp.float32))
  logits_DxD = queries @ documents.T / temperature
  cross_entropy_D = jax.nn.logsumexp(logits_DxD, axis=-1) - jnp.diagonal(logits_DxD)
  hits_D = (jnp.argmax(logits_DxD, axis=-1) == jnp.arange(logits_DxD.shape[0])).astype(jnp.float32)
  weights, count = view["weights"], jnp.maximum(view["weights"].sum(), 1.0)
  loss = (cross_entropy_D * weights).sum() / count
  return loss, {"loss": loss, "accuracy": (hits_D * weights).sum() / count, "examples": weights.sum(),
                "chance": jnp.float32(1.0 / logits_DxD.shape[1])}


def with_retrieval(cfg, special: mj.SpecialIds, base: str, weight: float = 1.0) -> mj.Objective:
  """The built-in objective `base` plus the retrieval term (weight `weight`)."""
  built = mj.builtin_objective(base, cfg, special)
  view = functools.partial(ngram_queries, length=document_length(cfg), pad_id=special.pad)
  terms = {**built.loss.terms, "retrieval": mj.Term(mj.on_view("retrieval", infonce_loss), weight)}
  return mj.Objective("retrieval", views={**built.views, "retrieval": view}, loss=mj.compose(terms),
                      forward={"retrieval": embed_documents_and_queries})


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
