"""Padding masks: transformer positions never attend to padding, so what stands in the padding
cannot change any output at a token (data.mode='pad', pad_side='left')."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax import models
from conftest import load_config


def build(spec):
  return models.build_model(load_config(spec), nnx.Rngs(0))


def left_padded(length, pad, seed=0, vocab=512):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, vocab, (2, length))
  mask = np.ones((2, length), np.float32)
  mask[0, :pad], mask[1, :pad // 2] = 0.0, 0.0
  return tokens, mask


def repadded(tokens, mask, seed):
  """The same tokens with different (random) ids in the padding."""
  other = np.random.default_rng(seed).integers(3, 512, tokens.shape)
  return np.where(mask > 0, tokens, other)


def test_causal_lm_on_left_padding_matches_the_unpadded_text():
  """RoPE scores depend on relative positions only, so a left-padded text with its padding masked
  gives the logits of the text alone."""
  model = build("clm.py:tiny")
  run = nnx.jit(lambda model, t, m=None: model(t, m)["logits"])
  tokens, mask = left_padded(16, 6)
  padded = np.asarray(run(model, jnp.asarray(tokens), jnp.asarray(mask)))
  alone = np.asarray(run(model, jnp.asarray(tokens[:1, 6:])))
  np.testing.assert_allclose(padded[0, 6:], alone[0], atol=2e-5)
  unmasked = np.asarray(run(model, jnp.asarray(tokens)))
  assert np.abs(unmasked[0, 6:] - alone[0]).max() > 1e-3  # without the mask, padding leaks in


# Memory models: 4 chunks of 8 tokens; 12 padding positions leave chunk 0 of row 0 without a token
# (its memory is then padding too). The recurrent model's carried memory is the state at a chunk's
# last position, so it is checked with padding inside the first chunk only.
@pytest.mark.parametrize("spec,pad", [("clm.py:tiny", 12), ("autoencoder.py:tiny", 12), ("memory.py:tiny", 12),
                                      ("memory.py:tiny,kind=oracle", 12), ("memory.py:tiny,kind=recurrent", 6)])
def test_outputs_at_tokens_do_not_depend_on_the_padding(spec, pad):
  cfg = load_config(spec)
  cfg.data.n_ctx = 32
  model = models.build_model(cfg, nnx.Rngs(0))
  tokens, mask = left_padded(cfg.data.n_ctx, pad)
  run = nnx.jit(lambda model, t, m: model(t, m))
  first = run(model, jnp.asarray(tokens), jnp.asarray(mask))
  second = run(model, jnp.asarray(repadded(tokens, mask, 1)), jnp.asarray(mask))
  key = "embedding" if "embedding" in first else "logits"
  a, b = np.asarray(first[key]), np.asarray(second[key])
  if key == "logits":
    a, b = a[mask > 0], b[mask > 0]
  np.testing.assert_allclose(a, b, atol=1e-5)
  # Without the mask the padding is read: the same two inputs differ.
  leaked = run(model, jnp.asarray(repadded(tokens, mask, 1)), jnp.ones_like(jnp.asarray(mask)))
  unmasked = run(model, jnp.asarray(tokens), jnp.ones_like(jnp.asarray(mask)))
  assert np.abs(np.asarray(leaked[key]) - np.asarray(unmasked[key])).max() > 1e-4


def test_variable_memory_slots_mask_the_padding_too():
  cfg = load_config("memory.py:tiny")
  cfg.data.n_ctx, cfg.memory.slots = 32, "variable"
  model = models.build_model(cfg, nnx.Rngs(0))
  tokens, mask = left_padded(cfg.data.n_ctx, 12)
  first = np.asarray(model(jnp.asarray(tokens), jnp.asarray(mask))["logits"])
  second = np.asarray(model(jnp.asarray(repadded(tokens, mask, 2)), jnp.asarray(mask))["logits"])
  np.testing.assert_allclose(first[mask > 0], second[mask > 0], atol=1e-5)


def test_mixers_read_padding_as_the_reference_does():
  cfg = load_config("clm.py:tiny,family=mixer")
  cfg.data.n_ctx = 16
  model = models.build_model(cfg, nnx.Rngs(0))
  tokens, mask = left_padded(cfg.data.n_ctx, 12)
  first = np.asarray(model(jnp.asarray(tokens), jnp.asarray(mask))["logits"])
  second = np.asarray(model(jnp.asarray(repadded(tokens, mask, 1)), jnp.asarray(mask))["logits"])
  assert np.abs(first[mask > 0] - second[mask > 0]).max() > 1e-4


def test_the_gpu_branch_masks_padding_like_the_cpu_one(monkeypatch):
  """The GPU branch (jax.nn.dot_product_attention with a bias, run here by XLA) against the CPU
  kernel, padding rows included."""
  from memjax.models import transformer
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 6, n, 8)), jnp.float32) for n in (4, 2, 2))
  mask = jnp.asarray([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], jnp.float32)
  cpu = np.asarray(transformer.causal_attention(q, k, v, mask))
  monkeypatch.setattr(transformer.jax, "default_backend", lambda: "gpu")
  gpu = np.asarray(transformer.causal_attention(q, k, v, mask))
  np.testing.assert_allclose(gpu, cpu, atol=1e-5)
  unmasked = np.asarray(transformer.causal_attention(q, k, v))
  assert np.abs(unmasked[0, 2:] - gpu[0, 2:]).max() > 1e-3
