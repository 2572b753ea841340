"""Import a pretrained Hugging Face Llama-architecture model as a memjax `TokenEncoder`.

memjax's transformer is the HF Llama block (RMSNorm, RoPE in the `rotate_half` layout, grouped
K/V heads, SwiGLU, no biases), so a checkpoint maps onto it by renaming, transposing the torch
(out, in) weights and stacking the layers. Only the trunk is imported (embedding, blocks, final
norm): the LM head is not part of an encoder. Reads `config.json` and `*.safetensors` (numpy, no
torch needed); RoPE scaling variants (e.g. Llama 3's) are refused rather than approximated.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from memjax.models.config import StackConfig

LAYER_WEIGHTS = {  # memjax path inside a block -> (HF name inside model.layers.{i}, transpose?)
    ("attn", "q", "kernel"): ("self_attn.q_proj.weight", True),
    ("attn", "k", "kernel"): ("self_attn.k_proj.weight", True),
    ("attn", "v", "kernel"): ("self_attn.v_proj.weight", True),
    ("attn", "o", "kernel"): ("self_attn.o_proj.weight", True),
    ("mlp", "gate", "kernel"): ("mlp.gate_proj.weight", True),
    ("mlp", "up", "kernel"): ("mlp.up_proj.weight", True),
    ("mlp", "down", "kernel"): ("mlp.down_proj.weight", True),
    ("attn_norm", "scale"): ("input_layernorm.weight", False),
    ("mlp_norm", "scale"): ("post_attention_layernorm.weight", False),
}


def architecture(hf_config: dict[str, Any]) -> StackConfig:
  """The StackConfig of an HF `LlamaConfig` (as read from config.json)."""
  if hf_config.get("rope_scaling"):
    raise ValueError(f"RoPE scaling {hf_config['rope_scaling']} is not supported; memjax's RoPE is "
                     "the unscaled one")
  if hf_config.get("attention_bias") or hf_config.get("mlp_bias"):
    raise ValueError("biased Llama variants are not supported (memjax's blocks have no biases)")
  heads = hf_config["num_attention_heads"]
  return StackConfig(
      family="transformer", d_model=hf_config["hidden_size"], n_layers=hf_config["num_hidden_layers"],
      length=hf_config.get("max_position_embeddings", 2048), vocab_size=hf_config["vocab_size"],
      n_heads=heads, n_kv_heads=hf_config.get("num_key_value_heads") or heads,
      mlp_dim=hf_config["intermediate_size"], rope_theta=float(hf_config.get("rope_theta", 10_000.0)),
      norm_eps=float(hf_config.get("rms_norm_eps", 1e-6)))


def encoder_params(weights: dict[str, np.ndarray], cfg: StackConfig) -> dict[str, Any]:
  """HF weight names -> the pure-dict parameters of a memjax TokenEncoder."""
  prefix = "model." if "model.embed_tokens.weight" in weights else ""

  def get(name: str) -> np.ndarray:
    if prefix + name not in weights:
      raise KeyError(f"the checkpoint has no weight {prefix + name!r}")
    return np.asarray(weights[prefix + name], np.float32)

  blocks: dict[str, Any] = {}
  for path, (name, transpose) in LAYER_WEIGHTS.items():
    layers = [get(f"layers.{i}.{name}") for i in range(cfg.n_layers)]
    node = blocks
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = np.stack([w.T if transpose else w for w in layers])
  return {"embed": {"embedding": get("embed_tokens.weight")},
          "stack": {"blocks": blocks, "norm": {"scale": get("norm.weight")}}}


def load(model_dir: str | pathlib.Path) -> tuple[StackConfig, dict[str, Any]]:
  """(architecture, TokenEncoder parameters) of the HF model saved in `model_dir`."""
  from safetensors.numpy import load_file

  model_dir = pathlib.Path(model_dir)
  config_path = model_dir / "config.json"
  if not config_path.is_file():
    raise FileNotFoundError(f"{model_dir} has no config.json (expected a Hugging Face model folder)")
  hf_config = json.loads(config_path.read_text())
  if "llama" not in hf_config.get("model_type", "llama"):
    raise ValueError(f"{model_dir} holds a {hf_config['model_type']!r} model, not a Llama one")
  files = sorted(model_dir.glob("*.safetensors"))
  if not files:
    raise FileNotFoundError(f"{model_dir} has no *.safetensors weights")
  weights: dict[str, np.ndarray] = {}
  for file in files:
    weights |= load_file(str(file))
  cfg = architecture(hf_config)
  return cfg, encoder_params(weights, cfg)
