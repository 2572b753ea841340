"""What a config's model is, decided once: its towers, their lengths, which one is probed, which is a
causal LM. Code that asks "does this run have an encoder?" reads a ModelSpec instead of switching on
`cfg.task` and `cfg.memory.kind` itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from memjax.models.config import StackConfig, stack_config

TASKS: tuple[str, ...] = ("clm", "autoencoder", "memory")
MEMORY_KINDS: tuple[str, ...] = ("parallel", "none", "full", "recurrent", "oracle")
ENCODING_KINDS: tuple[str, ...] = ("parallel", "oracle")  # memory models with an encoder tower
CAUSAL_DECODER_KINDS: tuple[str, ...] = ("parallel", "none")  # whose decoder is a causal LM of its own


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """The towers of a config's model.

  encoder: the tower whose single embeddings are probed, exported and frozen (a causal LM's decoder,
           an autoencoder's or memory model's encoder); None for memory models without one.
  decoder: the tower that predicts tokens when it is not the encoder (autoencoders, memory models).
  trunk:   the parameter group holding a causal LM that can be read on its own ('decoder' for a
           causal LM and parallel/none memory models, '' otherwise).
  """

  task: str
  kind: str  # the memory kind ('' unless task == 'memory')
  encoder: StackConfig | None
  decoder: StackConfig | None
  trunk: str
  chunks: int = 1  # encoder calls per example: memory chunks (1 for everything else)

  @property
  def has_encoder(self) -> bool:
    return self.encoder is not None

  @property
  def encoder_group(self) -> str:
    """The parameter group of the `encoder` tower: a causal LM's is its 'decoder'."""
    return "decoder" if self.task == "clm" else "encoder"

  @property
  def towers(self) -> dict[str, StackConfig]:
    """Parameter group -> architecture of each tower with blocks."""
    return {name: tower for name, tower in ((self.encoder_group, self.encoder), ("decoder", self.decoder))
            if tower}


def chunk_length(cfg: Any) -> int:
  n_ctx, chunks = cfg.data.n_ctx, cfg.memory.chunks
  if n_ctx % chunks:
    raise ValueError(f"data.n_ctx={n_ctx} is not divisible into memory.chunks={chunks} chunks")
  return n_ctx // chunks


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


def model_spec(cfg: Any) -> ModelSpec:
  """The ModelSpec of a run config (refusing unknown tasks and memory kinds)."""
  vocab, n_ctx = cfg.data.vocab_size, cfg.data.n_ctx
  if cfg.task == "clm":
    return ModelSpec("clm", "", stack_config(cfg.model, length=n_ctx, vocab_size=vocab), None, "decoder")
  if cfg.task == "autoencoder":
    return ModelSpec("autoencoder", "", stack_config(cfg.encoder, length=n_ctx, vocab_size=vocab),
                     stack_config(cfg.decoder, length=n_ctx, vocab_size=vocab), "")
  if cfg.task != "memory":
    raise ValueError(f"task must be one of {TASKS}, got {cfg.task!r}")
  kind = cfg.memory.kind
  if kind not in MEMORY_KINDS:
    raise ValueError(f"memory.kind must be one of {MEMORY_KINDS}, got {kind!r}")
  encoder = None
  if kind in ENCODING_KINDS:
    length = n_ctx if kind == "oracle" else chunk_length(cfg)
    encoder = stack_config(cfg.encoder, length=length, vocab_size=vocab)
  decoder = stack_config(cfg.decoder, length=decoder_length(cfg), vocab_size=vocab)
  return ModelSpec("memory", kind, encoder, decoder, "decoder" if kind in CAUSAL_DECODER_KINDS else "",
                   chunks=cfg.memory.chunks)
