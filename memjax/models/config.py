"""Typed model configuration: the boundary between ml_collections configs and model code."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping

from memjax.kernels.attention import ATTENTIONS

Family = Literal["transformer", "mixer", "bert"]
# 'bert': a BERT-style bidirectional encoder (memjax/models/bidirectional.py), only ever a converted,
# frozen encoder (python -m memjax.convert bert).
FAMILIES: tuple[str, ...] = ("transformer", "mixer", "bert")
REMAT: tuple[str, ...] = ("none", "dots", "full")
ROPE_TYPES: tuple[str, ...] = ("default", "linear", "llama3")  # as Hugging Face names them
LORA_TARGETS: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")


@dataclasses.dataclass(frozen=True)
class StackConfig:
  """One tower: a token embedding (optional), a block stack and its final norm.

  `length` is the number of positions the stack processes. Mixers need it (their token
  mixing is a learned `length x length` map); transformers ignore it.
  """

  family: Family
  d_model: int
  n_layers: int
  length: int
  vocab_size: int
  n_heads: int = 4
  n_kv_heads: int = 0  # 0 means n_heads (full multi-head attention)
  mlp_dim: int = 0  # 0 means 4 * d_model
  rope_theta: float = 10_000.0
  # RoPE frequency scaling (Llama 3.x long context): 'default' (none), 'linear' (all frequencies
  # / factor) or 'llama3' (low frequencies / factor, a smooth ramp between the two wavelength bounds).
  rope_type: str = "default"
  rope_factor: float = 1.0
  rope_low_freq_factor: float = 1.0
  rope_high_freq_factor: float = 4.0
  rope_original_length: int = 8192
  norm_eps: float = 1e-6
  # Rows of a learned absolute position table ('bert': BERT's max_position_embeddings); 0: none.
  max_positions: int = 0
  mixer_kernel: int = 1
  mixer_heads: int = 0  # 0 means the flat (single map) mixer
  scan_layers: bool = False
  # What each block keeps for the backward pass: everything (none), only its matmul outputs (dots),
  # or only its input (full); the rest is recomputed. Trades compute for activation memory.
  remat: str = "none"
  # The attention kernel path (memjax.kernels.attention.ATTENTIONS): 'auto' is 'cpu' on CPU and
  # 'xla' on GPU/TPU, chosen where the model is traced. Not a parameter: any path loads any run.
  attention: str = "auto"
  # LoRA adapters (transformers): rank 0 means none; targets are comma-separated projection names.
  lora_rank: int = 0
  lora_alpha: float = 0.0
  lora_targets: str = "q,k,v,gate,up,down"

  def __post_init__(self):
    if self.family not in FAMILIES and ":" not in self.family:
      raise ValueError(f"model family must be one of {FAMILIES} or a block class's import path "
                       f"'package.module:Block', got {self.family!r}")
    if self.remat not in REMAT:
      raise ValueError(f"remat must be one of {REMAT}, got {self.remat!r}")
    for name in ("d_model", "n_layers", "length", "vocab_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    if self.attention not in ATTENTIONS:
      raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
    if self.family == "transformer":
      if self.d_model % self.n_heads:
        raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
      if self.n_heads % self.kv_heads:
        raise ValueError(f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.kv_heads}")
      if self.head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {self.head_dim}")
      if self.rope_type not in ROPE_TYPES:
        raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {self.rope_type!r}")
      if self.rope_type != "default" and self.rope_factor <= 0:
        raise ValueError(f"rope_factor must be positive, got {self.rope_factor}")
      if self.rope_type == "llama3" and self.rope_high_freq_factor <= self.rope_low_freq_factor:
        raise ValueError("rope_high_freq_factor must exceed rope_low_freq_factor, got "
                         f"{self.rope_high_freq_factor} <= {self.rope_low_freq_factor}")
      if self.lora_rank < 0:
        raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
      unknown = set(self.lora_target_names) - set(LORA_TARGETS)
      if self.lora_rank and (unknown or not self.lora_target_names):
        raise ValueError(f"lora_targets must name some of {LORA_TARGETS}, got {self.lora_targets!r}")
    elif self.lora_rank:
      raise ValueError("LoRA adapters (lora_rank > 0) are only defined for transformers")
    if self.family == "bert":
      if self.d_model % self.n_heads:
        raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
      if self.max_positions < self.length:
        raise ValueError(f"a bert encoder has max_positions={self.max_positions} learned positions, "
                         f"fewer than the {self.length} it is asked to read")
    if self.family == "mixer":
      if self.mixer_kernel < 1:
        raise ValueError(f"mixer_kernel must be >= 1, got {self.mixer_kernel}")
      if self.mixer_heads and self.d_model % self.mixer_heads:
        raise ValueError(
            f"d_model={self.d_model} is not divisible by mixer_heads={self.mixer_heads}")

  @property
  def kv_heads(self) -> int:
    return self.n_kv_heads or self.n_heads

  @property
  def head_dim(self) -> int:
    return self.d_model // self.n_heads

  @property
  def lora_target_names(self) -> tuple[str, ...]:
    return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())

  def lora_for(self, name: str) -> int:
    """The adapter rank of projection `name` (0: no adapter)."""
    return self.lora_rank if name in self.lora_target_names else 0

  @property
  def hidden_dim(self) -> int:
    return self.mlp_dim or 4 * self.d_model

  def replace(self, **changes: Any) -> StackConfig:
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


ARCH_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(StackConfig) if f.name not in ("vocab_size", "length"))
# The architecture fields by what they change, for every comparison of towers (a checkpoint against
# a config, a pretrained decoder, a probe's copy of an encoder): 'execution' fields change only how
# the same weights are applied (a checkpoint loads and a run resumes across them), 'adapters' are
# LoRA's (a pretrained decoder is compared without them); the rest shape the weights or what they
# compute.
EXECUTION_FIELDS: tuple[str, ...] = ("scan_layers", "remat", "attention")
ADAPTER_FIELDS: tuple[str, ...] = ("lora_rank", "lora_alpha", "lora_targets")
MODEL_FIELDS: tuple[str, ...] = tuple(f for f in ARCH_FIELDS if f not in EXECUTION_FIELDS + ADAPTER_FIELDS)


def stack_config(arch: Mapping[str, Any], *, length: int, vocab_size: int) -> StackConfig:
  """Builds a StackConfig from a config section holding (at least) the architecture fields."""
  return StackConfig(length=length, vocab_size=vocab_size, **{k: arch[k] for k in ARCH_FIELDS if k in arch})
