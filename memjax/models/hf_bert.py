"""Hugging Face BERT checkpoints -> memjax bidirectional encoder parameters (numpy, no torch).

`BertModel` (post-LN blocks, learned absolute positions, token-type embedding, GELU MLP, biases
everywhere) maps onto a `bert` Tower (memjax/models/bidirectional.py) by renaming, transposing the
torch (out, in) weights and stacking the layers; the token-type embedding of segment 0 is added into
the position table (memjax feeds one segment). The pooler and the pretraining heads (`cls.*`) are
left out: the probe reads the last layer's hidden states. `read_config` refuses, naming the field,
what memjax cannot represent (relative positions, other activations, a decoder or cross-attention).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memjax.models.config import StackConfig
from memjax.models import hf_llama
from memjax.models.hf_llama import SafetensorsReader

# memjax path inside a block -> (HF name inside encoder.layer.{i}, transpose?)
LAYER_WEIGHTS = {
    ("attn", "q", "kernel"): ("attention.self.query.weight", True),
    ("attn", "q", "bias"): ("attention.self.query.bias", False),
    ("attn", "k", "kernel"): ("attention.self.key.weight", True),
    ("attn", "k", "bias"): ("attention.self.key.bias", False),
    ("attn", "v", "kernel"): ("attention.self.value.weight", True),
    ("attn", "v", "bias"): ("attention.self.value.bias", False),
    ("attn", "o", "kernel"): ("attention.output.dense.weight", True),
    ("attn", "o", "bias"): ("attention.output.dense.bias", False),
    ("attn_norm", "scale"): ("attention.output.LayerNorm.weight", False),
    ("attn_norm", "bias"): ("attention.output.LayerNorm.bias", False),
    ("mlp", "up", "kernel"): ("intermediate.dense.weight", True),
    ("mlp", "up", "bias"): ("intermediate.dense.bias", False),
    ("mlp", "down", "kernel"): ("output.dense.weight", True),
    ("mlp", "down", "bias"): ("output.dense.bias", False),
    ("mlp_norm", "scale"): ("output.LayerNorm.weight", False),
    ("mlp_norm", "bias"): ("output.LayerNorm.bias", False),
}
WORDS, POSITIONS, TYPES = ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                           "embeddings.token_type_embeddings.weight")
EMBED_NORM = ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias")
ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForPreTraining")
# Tensors a BERT checkpoint may hold that the encoder does not use.
IGNORED = ("pooler.", "cls.", "embeddings.position_ids")
# Older (TensorFlow-converted) checkpoints name LayerNorm parameters gamma and beta.
OLD_NAMES = {".weight": ".gamma", ".bias": ".beta"}


def read_config(hf_config: dict[str, Any]) -> StackConfig:
  """The StackConfig of an HF `BertConfig` (as read from config.json)."""
  model_type = hf_config.get("model_type", "bert")
  if model_type != "bert":
    raise ValueError(f"model_type={model_type!r} is not a BERT model (only 'bert' is supported)")
  architectures = hf_config.get("architectures") or []
  if any(a not in ARCHITECTURES for a in architectures):
    raise ValueError(f"architectures={architectures} is not supported (only {ARCHITECTURES})")
  if hf_config.get("hidden_act", "gelu") != "gelu":
    raise ValueError(f"hidden_act={hf_config['hidden_act']!r} is not supported (only 'gelu', exact)")
  if hf_config.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError(f"position_embedding_type={hf_config['position_embedding_type']!r} is not "
                     "supported (only 'absolute')")
  for key in ("is_decoder", "add_cross_attention"):
    if hf_config.get(key):
      raise ValueError(f"{key}=true is not supported (memjax reads BERT as a bidirectional encoder)")
  positions = hf_config.get("max_position_embeddings", 512)
  return StackConfig(
      family="bert", d_model=hf_config["hidden_size"], n_layers=hf_config["num_hidden_layers"],
      length=positions, vocab_size=hf_config["vocab_size"], n_heads=hf_config["num_attention_heads"],
      mlp_dim=hf_config["intermediate_size"], norm_eps=float(hf_config.get("layer_norm_eps", 1e-12)),
      max_positions=positions)


class _Names:
  """HF tensor names as stored: with or without the `bert.` prefix, new or old LayerNorm names."""

  def __init__(self, reader: SafetensorsReader):
    self.reader = reader
    self.prefix = "bert." if "bert." + WORDS in reader.index else ""

  def stored(self, name: str) -> str:
    name = self.prefix + name
    if name not in self.reader.index and ".LayerNorm." in name:
      for new, old in OLD_NAMES.items():
        if name.endswith(new) and name[:-len(new)] + old in self.reader.index:
          return name[:-len(new)] + old
    return name

  def read(self, name: str) -> np.ndarray:
    return self.reader.read(self.stored(name))


def _check_tensors(names: _Names, cfg: StackConfig) -> None:
  """Refuses tensors that have no place in the encoder (relative-position tables, extra modules)."""
  known = {names.stored(n) for n in (WORDS, POSITIONS, TYPES, *EMBED_NORM)}
  known |= {names.stored(f"encoder.layer.{i}.{name}") for i in range(cfg.n_layers)
            for name, _ in LAYER_WEIGHTS.values()}
  unknown = sorted(n for n in names.reader.names()
                   if n not in known and not n.removeprefix(names.prefix).startswith(IGNORED))
  if unknown:
    shown = ", ".join(unknown[:6]) + (" ..." if len(unknown) > 6 else "")
    raise ValueError(f"the checkpoint holds {len(unknown)} tensors memjax cannot represent: {shown}")


def read_params(reader: SafetensorsReader, cfg: StackConfig) -> dict[str, Any]:
  """{'decoder': Tower parameters} as float32 numpy (the converted-folder layout, as a causal LM's
  trunk; a bert Tower has no head)."""
  names = _Names(reader)
  _check_tensors(names, cfg)
  blocks = hf_llama.stacked_blocks(reader, LAYER_WEIGHTS, cfg.n_layers,
                                   lambda i, n: names.stored(f"encoder.layer.{i}.{n}"))
  words = names.read(WORDS)
  if words.shape != (cfg.vocab_size, cfg.d_model):
    raise ValueError(f"word_embeddings has shape {words.shape}, config.json says "
                     f"{(cfg.vocab_size, cfg.d_model)}")
  positions = names.read(POSITIONS) + names.read(TYPES)[0]  # segment 0 (no token_type_ids)
  scale, bias = (names.read(n) for n in EMBED_NORM)
  return {"decoder": {"embed": {"embedding": words},
                      "stack": {"blocks": blocks,
                                "positions": {"embedding": positions, "norm": {"scale": scale, "bias": bias}}}}}
