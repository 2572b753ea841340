"""Initializers: one home for each convention the models follow.

  memjax     transformers as Hugging Face Llama initializes them, N(0, 0.02) for every weight
             (token embeddings, blocks, LM heads); mixers and the glue layers (bridge, unroll
             projection) as PyTorch's defaults.
  reference  the reference's memory and autoencoder models (the paper's): their own token
             embeddings and LM heads are plain `nn.Embedding` (N(0, 1)) and `nn.Linear`
             (U(+-1/sqrt(fan_in))) modules around Llama blocks that keep N(0, 0.02).

Causal LMs follow `LlamaForCausalLM` (transformers) or `LanguageMixer` (mixers) in both conventions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.models.dense import Dense

CONVENTIONS: tuple[str, ...] = ("memjax", "reference")
LLAMA = nnx.initializers.normal(stddev=0.02)  # HF `initializer_range` default
TORCH_EMBEDDING = nnx.initializers.normal(stddev=1.0)  # torch.nn.Embedding


def torch_uniform(fan_in: int) -> nnx.Initializer:
  """PyTorch's default Linear / Conv initializer: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = fan_in**-0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_linear(d_in: int, d_out: int, rngs: nnx.Rngs, *, use_bias: bool = True) -> Dense:
  """torch.nn.Linear(d_in, d_out) with its default initialization."""
  init = torch_uniform(d_in)
  return Dense(d_in, d_out, use_bias=use_bias, kernel_init=init, bias_init=init, rngs=rngs)


def check(convention: str) -> str:
  if convention not in CONVENTIONS:
    raise ValueError(f"init must be one of {CONVENTIONS}, got {convention!r}")
  return convention


def token_embedding(family: str, convention: str = "memjax") -> nnx.Initializer:
  """Llama's N(0, 0.02) for memjax transformers; torch.nn.Embedding's N(0, 1) otherwise."""
  return LLAMA if family == "transformer" and check(convention) == "memjax" else TORCH_EMBEDDING


def lm_head(family: str, d_model: int, convention: str = "memjax") -> nnx.Initializer:
  """Llama's N(0, 0.02) for memjax transformers; torch.nn.Linear's uniform otherwise."""
  return LLAMA if family == "transformer" and check(convention) == "memjax" else torch_uniform(d_model)
