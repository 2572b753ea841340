"""Model registry: builds any memjax model from an ml_collections config.

Every model maps token ids [B, T] to a dict holding 'logits' [B, T, V]. Models with an encoder tower
(`encoder_tower`: a causal LM's decoder, the encoder of autoencoders, parallel and oracle memory
models) have single embeddings that can be probed, exported and frozen.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from memjax.models import init
from memjax.models.autoencoder import Autoencoder
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.models.oracle import OracleMemoryModel
from memjax.models.recurrent import RecurrentMemoryModel
from memjax.models.spec import ModelSpec, model_spec
from memjax.models.stack import Tower

__all__ = ["ModelSpec", "build_model", "encoder_config", "encoder_tower", "model_spec"]


def encoder_config(cfg: Any) -> StackConfig:
  """The architecture of the model's `encoder` tower (the one that is probed, exported, frozen)."""
  spec = model_spec(cfg)
  if spec.encoder is None:
    raise ValueError(f"a memory model of kind {spec.kind!r} has no encoder")
  return spec.encoder


def encoder_tower(model: nnx.Module) -> Tower | None:
  """The tower whose single embeddings are probed: a causal LM's decoder, else the model's encoder
  (None for memory models without one)."""
  return model.decoder if isinstance(model, CausalLM) else getattr(model, "encoder", None)


def build_model(cfg: Any, rngs: nnx.Rngs) -> nnx.Module:
  """Builds the model of `cfg.task` (and `cfg.memory.kind` for memory models).

  `cfg.init` ('memjax' or 'reference', memjax/models/init.py) sets how the autoencoders' and memory
  models' own token embeddings and heads are initialized; causal LMs are the same in both.
  """
  spec = model_spec(cfg)
  convention = init.check(cfg.get("init", "memjax"))
  predicting = spec.encoder if spec.task == "clm" else spec.decoder
  if predicting is not None and predicting.family == "bert":
    raise ValueError("a bert tower is bidirectional: it is only a (frozen) encoder, never a causal LM "
                     "or a decoder")
  if spec.task == "clm":
    return CausalLM(spec.encoder, tie_embeddings=cfg.model.tie_embeddings, rngs=rngs)
  if spec.task == "autoencoder":
    return Autoencoder(spec.encoder, spec.decoder, feed=cfg.decoder.feed,
                       embed_index=cfg.encoder.embed_index, compression=cfg.encoder.compression,
                       init_convention=convention, quantize=cfg.encoder.get("quantize", "none"), rngs=rngs)
  memory = cfg.memory
  if "encoder" in cfg and cfg.encoder.get("quantize", "none") != "none":
    raise ValueError(f"encoder.quantize={cfg.encoder.quantize!r} stores an autoencoder's (a probe's) "
                     "embedding; a memory model stores its memories at memory.quantize")
  if spec.kind == "full":
    return CausalLM(spec.decoder, rngs=rngs)
  if spec.kind == "recurrent":
    return RecurrentMemoryModel(spec.decoder, chunks=memory.chunks, pad_value=memory.pad_value,
                                init_convention=convention, rngs=rngs)
  shared = dict(embed_index=cfg.encoder.embed_index, compression=cfg.encoder.compression,
                init_convention=convention, rngs=rngs)
  if spec.kind == "oracle":
    return OracleMemoryModel(spec.encoder, spec.decoder, **shared)
  return MemoryModel(spec.encoder, spec.decoder, chunks=memory.chunks, slots=memory.slots,
                     pad_value=memory.pad_value, tie_embeddings=cfg.decoder.get("tie_embeddings", False),
                     encoding=memory.get("encoding", "text"), quantize=memory.get("quantize", "none"),
                     quantize_noise=memory.get("quantize_noise", False), **shared)
