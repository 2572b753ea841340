"""Model registry: builds any memjax model from an ml_collections config.

Every model maps token ids [B, T] to a dict holding 'logits' [B, T, V]. Models with an `encoder`
attribute (a `TokenEncoder`: causal LMs, autoencoders, parallel and oracle memory models) have
single embeddings that can be probed, exported and frozen.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from memjax.models import init
from memjax.models.autoencoder import Autoencoder
from memjax.models.config import StackConfig, stack_config
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.models.oracle import OracleMemoryModel
from memjax.models.recurrent import RecurrentMemoryModel

TASKS: tuple[str, ...] = ("clm", "autoencoder", "memory")
MEMORY_KINDS: tuple[str, ...] = ("parallel", "none", "full", "recurrent", "oracle")


def chunk_length(cfg: Any) -> int:
  n_ctx, chunks = cfg.data.n_ctx, cfg.memory.chunks
  if n_ctx % chunks:
    raise ValueError(f"data.n_ctx={n_ctx} is not divisible into memory.chunks={chunks} chunks")
  return n_ctx // chunks


def encoder_config(cfg: Any) -> StackConfig:
  """The architecture of the model's `encoder` tower (the one that is probed, exported, frozen)."""
  vocab = cfg.data.vocab_size
  if cfg.task == "clm":
    return stack_config(cfg.model, length=cfg.data.n_ctx, vocab_size=vocab)
  if cfg.task == "autoencoder":
    return stack_config(cfg.encoder, length=cfg.data.n_ctx, vocab_size=vocab)
  if cfg.task == "memory":
    length = cfg.data.n_ctx if cfg.memory.kind == "oracle" else chunk_length(cfg)
    return stack_config(cfg.encoder, length=length, vocab_size=vocab)
  raise ValueError(f"task must be one of {TASKS}, got {cfg.task!r}")


def decoder_length(cfg: Any) -> int:
  """Positions the memory-model decoder processes: memory slots plus one chunk (or the full input)."""
  kind, chunks = cfg.memory.kind, cfg.memory.chunks
  if kind == "full":
    return cfg.data.n_ctx
  if kind == "oracle":
    return cfg.data.n_ctx + 1
  if kind == "recurrent":
    return chunk_length(cfg) + 1
  return chunk_length(cfg) + chunks - 1


def build_model(cfg: Any, rngs: nnx.Rngs) -> nnx.Module:
  """Builds the model of `cfg.task` (and `cfg.memory.kind` for memory models).

  `cfg.init` ('memjax' or 'reference', memjax/models/init.py) sets how the autoencoders' and memory
  models' own token embeddings and heads are initialized; causal LMs are the same in both.
  """
  vocab = cfg.data.vocab_size
  convention = init.check(cfg.get("init", "memjax"))
  if cfg.task == "clm":
    return CausalLM(encoder_config(cfg), tie_embeddings=cfg.model.tie_embeddings, rngs=rngs)
  if cfg.task == "autoencoder":
    decoder = stack_config(cfg.decoder, length=cfg.data.n_ctx, vocab_size=vocab)
    return Autoencoder(encoder_config(cfg), decoder, feed=cfg.decoder.feed,
                       embed_index=cfg.encoder.embed_index, compression=cfg.encoder.compression,
                       init_convention=convention, rngs=rngs)
  if cfg.task != "memory":
    raise ValueError(f"task must be one of {TASKS}, got {cfg.task!r}")
  memory = cfg.memory
  if memory.kind not in MEMORY_KINDS:
    raise ValueError(f"memory.kind must be one of {MEMORY_KINDS}, got {memory.kind!r}")
  decoder = stack_config(cfg.decoder, length=decoder_length(cfg), vocab_size=vocab)
  if memory.kind == "full":
    return CausalLM(decoder, rngs=rngs)
  if memory.kind == "recurrent":
    return RecurrentMemoryModel(decoder, chunks=memory.chunks, pad_value=memory.pad_value,
                                init_convention=convention, rngs=rngs)
  shared = dict(embed_index=cfg.encoder.embed_index, compression=cfg.encoder.compression,
                init_convention=convention, rngs=rngs)
  if memory.kind == "oracle":
    return OracleMemoryModel(encoder_config(cfg), decoder, **shared)
  encoder = encoder_config(cfg) if memory.kind == "parallel" else None
  return MemoryModel(encoder, decoder, chunks=memory.chunks, slots=memory.slots,
                     pad_value=memory.pad_value, tie_embeddings=cfg.decoder.get("tie_embeddings", False),
                     encoding=memory.get("encoding", "text"), **shared)
