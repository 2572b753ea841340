"""Single-embedding n-gram retrieval (paper §3 item 9, §5.10): the InfoNCE objective of the
"Causal → Retrieval" and "Autoencoder → Retrieval" encoders of §5.1.

Each document of a batch gets a query: NGRAM consecutive tokens of it at a random position, padded
to the document length. The encoder embeds documents and queries alike (one embedding each, where
the model reads its single embedding), and an InfoNCE loss over cosine similarities at temperature
TEMPERATURE trains the query's embedding to pick out its document among all documents of the batch.
Retrieval accuracy is the fraction of queries whose most similar document is their own (chance:
1 / documents per batch).

Documents are what the encoder reads: the rows of a causal LM or an autoencoder, the chunks of a
memory model. `objective.retrieval_base` names a built-in objective trained beside the InfoNCE term
('' none: the reference's InfoNCE fine-tuning of a causal LM or an autoencoder; e.g. 'clm' keeps a
memory model's next-token prediction, as docs/examples/ngram_retrieval.py does).
Differences from the reference (reference-code.md §3.6): every document is queried (the reference
queries one per batch and replaces a document by the query); the accuracy target is the document
the n-gram was drawn from.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from memjax import models
from memjax.models.bridge import embedding_at
from memjax.objectives import Objective
from memjax.objectives.terms import Batch, Metrics, Term, compose, on_view

NGRAM = 7
TEMPERATURE = 0.02


def document_length(cfg: Any) -> int:
  """The encoder's input length: a memory model's chunk, or the whole context."""
  return cfg.data.n_ctx // cfg.memory.chunks if cfg.task == "memory" else cfg.data.n_ctx


def ngram_queries(batch: Batch, *, length: int, pad_id: int, ngram: int = NGRAM) -> dict[str, jax.Array]:
  """View: 'documents' [D, L] (the batch cut into documents of `length` tokens), 'queries' [D, L]
  (`ngram` tokens of each document from a random start, then `pad_id`) and 'weights' [D] (0 for
  documents without `ngram` consecutive real tokens)."""
  tokens, mask = batch["tokens"], batch["mask"]
  if tokens.shape[-1] % length or length < ngram:
    raise ValueError(f"retrieval: documents of {length} tokens must divide the sequence length "
                     f"{tokens.shape[-1]} and hold a {ngram}-gram")
  documents_DxL = tokens.reshape(-1, length)
  real_DxL = mask.reshape(-1, length) > 0
  D, L = documents_DxL.shape
  windows_Jxn = jnp.arange(L - ngram + 1)[:, None] + jnp.arange(ngram)[None, :]
  complete_DxJ = real_DxL[:, windows_Jxn].all(axis=-1)
  start_D = jax.random.categorical(batch["rng"], jnp.where(complete_DxJ, 0.0, -1e9))
  ngram_Dxn = jnp.take_along_axis(documents_DxL, start_D[:, None] + jnp.arange(ngram), axis=1)
  queries_DxL = jnp.concatenate([ngram_Dxn, jnp.full((D, L - ngram), pad_id, tokens.dtype)], axis=1)
  return {"documents": documents_DxL, "queries": queries_DxL,
          "weights": complete_DxJ.any(axis=-1).astype(jnp.float32)}


def embed(model: nnx.Module, view: Batch, *, index: int | None = None) -> dict[str, jax.Array]:
  """Forward pass of the retrieval view: one encoder call over documents and queries, each read at
  `index` (None: the model's `embed_index`, as its decoder or a probe reads it)."""
  encoder = models.encoder_tower(model)
  if encoder is None:
    raise ValueError(f"retrieval: {type(model).__name__} has no encoder tower to embed documents with")
  index = getattr(model, "embed_index", -1) if index is None else index
  D = view["documents"].shape[0]
  embeddings_2DxE = embedding_at(encoder(jnp.concatenate([view["documents"], view["queries"]])), index)
  return {"documents": embeddings_2DxE[:D], "queries": embeddings_2DxE[D:]}


def infonce_loss(outputs: Batch, view: Batch, temperature: float = TEMPERATURE) -> tuple[jax.Array, Metrics]:
  """InfoNCE over cosine similarities: query i's positive is document i, the others are negatives.
  Metrics: 'loss', 'accuracy' (top-1 retrieval), 'examples' (queries scored), 'chance'."""
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True).clip(1e-6)
  queries_DxE = unit(outputs["queries"].astype(jnp.float32))
  documents_DxE = unit(outputs["documents"].astype(jnp.float32))
  logits_DxD = queries_DxE @ documents_DxE.T / temperature
  cross_entropy_D = jax.nn.logsumexp(logits_DxD, axis=-1) - jnp.diagonal(logits_DxD)
  hits_D = (jnp.argmax(logits_DxD, axis=-1) == jnp.arange(logits_DxD.shape[0])).astype(jnp.float32)
  weights_D = view["weights"]
  count = jnp.maximum(weights_D.sum(), 1.0)
  loss = (cross_entropy_D * weights_D).sum() / count
  return loss, {"loss": loss, "accuracy": (hits_D * weights_D).sum() / count, "examples": weights_D.sum(),
                "chance": jnp.float32(1.0 / logits_DxD.shape[1])}


def build(cfg: Any, *, pad_id: int, base: Callable[[str], Objective] | None = None) -> Objective:
  """The retrieval objective of run config `cfg`: the InfoNCE term 'retrieval' on the view
  'retrieval', plus the terms of the built-in objective `cfg.objective.retrieval_base` (made by
  `base(name)`) when one is named. A causal LM is read at `objective.retrieval_index`."""
  view = functools.partial(ngram_queries, length=document_length(cfg), pad_id=pad_id)
  index = cfg.objective.get("retrieval_index", -1) if cfg.task == "clm" else None
  views, terms = {"retrieval": view}, {"retrieval": Term(on_view("retrieval", infonce_loss))}
  base_name = cfg.objective.get("retrieval_base", "")
  if base_name:
    if base_name == "retrieval" or base is None:
      raise ValueError(f"objective.retrieval_base must name another built-in objective, got {base_name!r}")
    built = base(base_name)
    views, terms = {**built.views, **views}, {**built.loss.terms, **terms}
  return Objective("retrieval", views=views, loss=compose(terms),
                   forward={"retrieval": functools.partial(embed, index=index)})
