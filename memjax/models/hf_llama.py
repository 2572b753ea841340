"""Hugging Face Llama-architecture checkpoints <-> memjax causal LM parameters (numpy, no torch).

memjax's transformer is the HF Llama block (RMSNorm, RoPE in the `rotate_half` layout, grouped
K/V heads, SwiGLU, no biases), so a checkpoint maps onto it by renaming, transposing the torch
(out, in) weights and stacking the layers. `read_config` turns config.json into a StackConfig
(both layouts: RoPE settings at the top level, `rope_theta` + `rope_scaling`, or under transformers
5's `rope_parameters`) and refuses, naming the field, whatever memjax cannot represent: biases,
other RoPE types, other activations or architectures. Weights are read one tensor at a time into
the stacked float32 arrays (`SafetensorsReader`), so the host never holds a second copy.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable

import ml_dtypes
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
EMBED, NORM, HEAD = "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"
ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")
ROPE_KEYS = {  # HF rope_scaling / rope_parameters key -> StackConfig field
    "factor": "rope_factor", "low_freq_factor": "rope_low_freq_factor",
    "high_freq_factor": "rope_high_freq_factor", "original_max_position_embeddings": "rope_original_length"}
IGNORED_TENSORS = ("rotary_emb.inv_freq",)  # a buffer some older checkpoints saved; recomputed here
# Llama 3.2 1B's published config.json (meta-llama/Llama-3.2-1B), the paper's pretrained decoder
# (§5.8), so that its architecture can be sized without the weights (experiments/pretrained.py).
LLAMA_3_2_1B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "mlp_bias": False,
    "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": True, "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001,
    "torch_dtype": "bfloat16"}


# ------------------------------------------------------------------------------ config.json


def _rope(hf_config: dict[str, Any]) -> dict[str, Any]:
  """StackConfig RoPE fields from either config layout; refuses other RoPE types."""
  if hf_config.get("rope_parameters") is not None:
    where, scaling = "rope_parameters", dict(hf_config["rope_parameters"])
    theta = scaling.pop("rope_theta", hf_config.get("rope_theta", 10_000.0))
  else:
    where, scaling = "rope_scaling", dict(hf_config.get("rope_scaling") or {})
    theta = hf_config.get("rope_theta", 10_000.0)
    # transformers' LlamaConfig copies rope_theta into the rope_scaling it is given (and saves it there)
    inner = scaling.pop("rope_theta", None)
    if inner is not None and "rope_theta" not in hf_config:
      theta = inner
    elif inner is not None and float(inner) != float(theta):
      raise ValueError(f"rope_scaling.rope_theta={inner!r} disagrees with rope_theta={theta!r}")
  rope_type = scaling.pop("rope_type", scaling.pop("type", "default"))
  fields: dict[str, Any] = {"rope_theta": float(theta), "rope_type": rope_type}
  needed = {"default": (), "linear": ("factor",),
            "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
  if rope_type not in needed:
    raise ValueError(f"{where}.rope_type={rope_type!r} is not supported (memjax implements "
                     f"{tuple(needed)})")
  for key in needed[rope_type]:
    if scaling.get(key) is None:
      raise ValueError(f"{where} of type {rope_type!r} has no {key!r}")
    value = scaling.pop(key)
    fields[ROPE_KEYS[key]] = int(value) if key == "original_max_position_embeddings" else float(value)
  for key, value in scaling.items():
    if key == "attention_factor" and value in (None, 1, 1.0):
      continue
    if key in ROPE_KEYS or value is None:
      continue  # a field the chosen rope type does not use (transformers ignores it too)
    raise ValueError(f"{where}.{key}={value!r} is not supported for rope_type {rope_type!r}")
  return fields


def read_config(hf_config: dict[str, Any]) -> tuple[StackConfig, bool]:
  """(StackConfig, tie_word_embeddings) of an HF `LlamaConfig` as read from config.json."""
  model_type = hf_config.get("model_type", "llama")
  if model_type != "llama":
    raise ValueError(f"model_type={model_type!r} is not a Llama model (only 'llama' is supported)")
  architectures = hf_config.get("architectures") or []
  if any(a not in ARCHITECTURES for a in architectures):
    raise ValueError(f"architectures={architectures} is not supported (only {ARCHITECTURES})")
  for key in ("attention_bias", "mlp_bias"):
    if hf_config.get(key):
      raise ValueError(f"{key}=true is not supported (memjax's blocks have no biases)")
  if hf_config.get("hidden_act", "silu") != "silu":
    raise ValueError(f"hidden_act={hf_config['hidden_act']!r} is not supported (only 'silu')")
  heads, d_model = hf_config["num_attention_heads"], hf_config["hidden_size"]
  head_dim = hf_config.get("head_dim")
  if head_dim is not None and head_dim * heads != d_model:
    raise ValueError(f"head_dim={head_dim} is not hidden_size / num_attention_heads = "
                     f"{d_model} / {heads} (memjax derives the head size)")
  if hf_config.get("partial_rotary_factor", 1.0) != 1.0:
    raise ValueError(f"partial_rotary_factor={hf_config['partial_rotary_factor']} is not supported")
  cfg = StackConfig(
      family="transformer", d_model=d_model, n_layers=hf_config["num_hidden_layers"],
      length=hf_config.get("max_position_embeddings", 2048), vocab_size=hf_config["vocab_size"],
      n_heads=heads, n_kv_heads=hf_config.get("num_key_value_heads") or heads,
      mlp_dim=hf_config["intermediate_size"], norm_eps=float(hf_config.get("rms_norm_eps", 1e-6)),
      **_rope(hf_config))
  return cfg, bool(hf_config.get("tie_word_embeddings", False))


def architecture(hf_config: dict[str, Any]) -> StackConfig:
  """The StackConfig of an HF `LlamaConfig` (as read from config.json)."""
  return read_config(hf_config)[0]


def write_config(cfg: StackConfig, tie: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
  """An HF `LlamaForCausalLM` config.json for memjax parameters (the top-level RoPE layout, which
  transformers 4 and 5 both read); `extra` keeps the source's other fields (token ids, ...)."""
  if cfg.family != "transformer":
    raise ValueError(f"only transformers export to Llama; this model is a {cfg.family!r}")
  rope_scaling = None
  if cfg.rope_type == "linear":
    rope_scaling = {"rope_type": "linear", "factor": cfg.rope_factor}
  elif cfg.rope_type == "llama3":
    rope_scaling = {"rope_type": "llama3", "factor": cfg.rope_factor,
                    "low_freq_factor": cfg.rope_low_freq_factor,
                    "high_freq_factor": cfg.rope_high_freq_factor,
                    "original_max_position_embeddings": cfg.rope_original_length}
  kept = {k: v for k, v in (extra or {}).items()
          if k in ("bos_token_id", "eos_token_id", "pad_token_id", "initializer_range")}
  return kept | {
      "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
      "hidden_size": cfg.d_model, "intermediate_size": cfg.hidden_dim,
      "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
      "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.head_dim, "vocab_size": cfg.vocab_size,
      "max_position_embeddings": cfg.length, "rms_norm_eps": cfg.norm_eps,
      "rope_theta": cfg.rope_theta, "rope_scaling": rope_scaling, "tie_word_embeddings": tie,
      "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32"}


# ------------------------------------------------------------------------------ weights


class SafetensorsReader:
  """Tensors of *.safetensors files, read one at a time (as float32) without mapping the files.

  The safetensors library's numpy reader cannot represent bfloat16 (the dtype of published Llama
  checkpoints), so the documented format (8-byte header size, JSON header, raw little-endian data)
  is read directly, and bfloat16 is decoded with ml_dtypes.
  """

  DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64}

  def __init__(self, files: list[pathlib.Path]):
    self.index: dict[str, tuple[pathlib.Path, int, str, tuple[int, ...]]] = {}
    for file in files:
      with open(file, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
      for name, meta in header.items():
        if name != "__metadata__":
          self.index[name] = (file, 8 + size + meta["data_offsets"][0], meta["dtype"], tuple(meta["shape"]))

  def names(self) -> list[str]:
    return list(self.index)

  def shape(self, name: str) -> tuple[int, ...]:
    return self.index[name][3]

  def read(self, name: str) -> np.ndarray:
    if name not in self.index:
      raise KeyError(f"the checkpoint has no tensor {name!r}")
    file, offset, dtype, shape = self.index[name]
    if dtype not in self.DTYPES:
      raise ValueError(f"tensor {name!r} has dtype {dtype}; supported: {tuple(self.DTYPES)}")
    with open(file, "rb") as f:
      f.seek(offset)
      data = np.fromfile(f, dtype=self.DTYPES[dtype], count=int(np.prod(shape, dtype=np.int64)))
    return data.reshape(shape).astype(np.float32, copy=False)


def open_weights(model_dir: pathlib.Path) -> SafetensorsReader:
  files = sorted(model_dir.glob("*.safetensors"))
  if not files:
    raise FileNotFoundError(f"{model_dir} has no *.safetensors weights")
  return SafetensorsReader(files)


def _check_tensors(reader: SafetensorsReader, cfg: StackConfig, tie: bool, prefix: str) -> None:
  """Refuses tensors that have no place in memjax's model (biases, extra modules)."""
  known = {prefix + EMBED[len("model."):], prefix + NORM[len("model."):]}
  known |= {f"{prefix}layers.{i}.{name}" for i in range(cfg.n_layers) for name, _ in LAYER_WEIGHTS.values()}
  if prefix:
    known.add(HEAD)
  unknown = sorted(n for n in reader.names()
                   if n not in known and not n.endswith(IGNORED_TENSORS) and not (tie and n == HEAD))
  if unknown:
    shown = ", ".join(unknown[:6]) + (" ..." if len(unknown) > 6 else "")
    raise ValueError(f"the checkpoint holds {len(unknown)} tensors memjax cannot represent: {shown}")


def stacked_blocks(reader: SafetensorsReader, layer_weights: dict[tuple[str, ...], tuple[str, bool]],
                   n_layers: int, stored: Callable[[int, str], str]) -> dict[str, Any]:
  """The blocks' parameters, each stacked over layers: `layer_weights` maps a memjax path inside a
  block to (HF name inside layer i, transpose?), `stored(i, hf_name)` names the tensor as stored.
  Every stacked array is allocated once and filled layer by layer (peak: the arrays plus one tensor)."""
  blocks: dict[str, Any] = {}
  for path, (hf_name, transpose) in layer_weights.items():
    first = reader.shape(stored(0, hf_name))
    stacked = np.empty((n_layers, *(first[::-1] if transpose else first)), np.float32)
    for i in range(n_layers):
      w = reader.read(stored(i, hf_name))
      stacked[i] = w.T if transpose else w
      del w
    node = blocks
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = stacked
  return blocks


def read_params(reader: SafetensorsReader, cfg: StackConfig, tie: bool, *,
                head: bool = True) -> dict[str, Any]:
  """{'decoder': Tower parameters, 'head': {'kernel'} (untied only)} as float32 numpy.

  Every stacked array is allocated once and filled layer by layer (peak: the arrays plus one tensor).
  """
  prefix = "model." if EMBED in reader.index else ""
  _check_tensors(reader, cfg, tie, prefix)
  name = lambda n: prefix + n

  blocks = stacked_blocks(reader, LAYER_WEIGHTS, cfg.n_layers, lambda i, n: name(f"layers.{i}.{n}"))
  params: dict[str, Any] = {
      "decoder": {"embed": {"embedding": reader.read(name("embed_tokens.weight"))},
                  "stack": {"blocks": blocks, "norm": {"scale": reader.read(name("norm.weight"))}}}}
  if head and not tie:
    if HEAD not in reader.index:
      raise ValueError(f"tie_word_embeddings is false but the checkpoint has no {HEAD!r}")
    weight = reader.read(HEAD)
    kernel = np.empty(weight.shape[::-1], np.float32)
    kernel[...] = weight.T
    del weight
    params["head"] = {"kernel": kernel}
  expected = (cfg.vocab_size, cfg.d_model)
  if params["decoder"]["embed"]["embedding"].shape != expected:
    raise ValueError(f"embed_tokens has shape {params['decoder']['embed']['embedding'].shape}, "
                     f"config.json says {expected}")
  return params


def read_hf_config(model_dir: str | pathlib.Path) -> dict[str, Any]:
  config_path = pathlib.Path(model_dir) / "config.json"
  if not config_path.is_file():
    raise FileNotFoundError(f"{model_dir} has no config.json (expected a Hugging Face model folder)")
  return json.loads(config_path.read_text())


def load_causal_lm(model_dir: str | pathlib.Path) -> tuple[StackConfig, bool, dict[str, Any], dict[str, Any]]:
  """(architecture, tied?, parameters {'decoder', 'head'}, the HF config) of the model in `model_dir`."""
  model_dir = pathlib.Path(model_dir)
  hf_config = read_hf_config(model_dir)
  cfg, tie = read_config(hf_config)
  return cfg, tie, read_params(open_weights(model_dir), cfg, tie), hf_config


def hf_weights(params: dict[str, Any], cfg: StackConfig, tie: bool) -> dict[str, np.ndarray]:
  """memjax causal LM parameters {'decoder', 'head'} -> HF `LlamaForCausalLM` tensors (float32)."""
  decoder = params["decoder"]
  weights = {EMBED: np.asarray(decoder["embed"]["embedding"], np.float32),
             NORM: np.asarray(decoder["stack"]["norm"]["scale"], np.float32)}
  for path, (name, transpose) in LAYER_WEIGHTS.items():
    stacked = decoder["stack"]["blocks"]
    for key in path:
      stacked = stacked[key]
    for i in range(cfg.n_layers):
      w = np.asarray(stacked[i], np.float32)
      weights[f"model.layers.{i}.{name}"] = np.ascontiguousarray(w.T if transpose else w)
  if not tie:
    weights[HEAD] = np.ascontiguousarray(np.asarray(params["head"]["kernel"], np.float32).T)
  return weights
