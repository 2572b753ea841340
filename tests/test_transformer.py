import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.models import transformer
from memjax.models.config import StackConfig


def config(**kw):
  return StackConfig(**dict(family="transformer", d_model=32, n_layers=1, length=10, vocab_size=64,
                            n_heads=4) | kw)


def test_rope_scores_depend_only_on_relative_position():
  q, k = jax.random.normal(jax.random.key(0), (2, 8))
  cos, sin = transformer.rope_angles(12, 8, 10_000.0)

  def score(i, j):
    qi = transformer.apply_rope(q[None, None, None], cos[i:i + 1], sin[i:i + 1])
    kj = transformer.apply_rope(k[None, None, None], cos[j:j + 1], sin[j:j + 1])
    return float(jnp.sum(qi * kj))

  assert score(5, 2) == pytest.approx(score(9, 6), rel=1e-5)
  assert score(5, 2) != pytest.approx(score(5, 4), rel=1e-3)


def naive_causal_attention(q, k, v):
  group = q.shape[2] // k.shape[2]  # HF repeat_kv: query head h reads key/value head h // group
  k, v = jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)
  scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  scores = jnp.where(np.tril(np.ones((q.shape[1], q.shape[1]), bool)), scores, -jnp.inf)
  return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, -1), v)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_attention_matches_naive_causal_attention_with_grouped_heads(kv_heads):
  cfg = config(n_kv_heads=kv_heads)
  attn = transformer.Attention(cfg, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 10, 32))
  cos, sin = transformer.rope_angles(10, cfg.head_dim, cfg.rope_theta)
  got = attn(x, cos, sin)

  q = transformer.apply_rope(attn.q(x).reshape(2, 10, 4, 8), cos, sin)
  k = transformer.apply_rope(attn.k(x).reshape(2, 10, kv_heads, 8), cos, sin)
  v = attn.v(x).reshape(2, 10, kv_heads, 8)
  expected = attn.o(naive_causal_attention(q, k, v).reshape(2, 10, 32))
  np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_attention_gradients_match_autodiff_of_naive_attention(kv_heads):
  keys = jax.random.split(jax.random.key(0), 4)
  q = jax.random.normal(keys[0], (2, 10, 4, 8))
  k, v = (jax.random.normal(key, (2, 10, kv_heads, 8)) for key in keys[1:3])
  cotangent = jax.random.normal(keys[3], (2, 10, 4, 8))
  grads = lambda attention: jax.grad(lambda *qkv: (attention(*qkv) * cotangent).sum(), argnums=(0, 1, 2))(q, k, v)
  for got, want in zip(grads(transformer.causal_attention), grads(naive_causal_attention)):
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_block_preserves_shape_and_has_no_biases():
  block = transformer.TransformerBlock(config(), rngs=nnx.Rngs(0))
  assert block(jnp.ones((3, 10, 32))).shape == (3, 10, 32)
  names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(block))]
  assert not [n for n in names if "bias" in n]
  assert block.mlp.gate.kernel.shape == (32, 128)  # SwiGLU hidden 4d by default


def test_swiglu_gradient_matches_autodiff():
  gate, up = jax.random.normal(jax.random.key(0), (2, 3, 8)), jax.random.normal(jax.random.key(1), (2, 3, 8))
  weights = jax.random.normal(jax.random.key(2), (2, 3, 8))
  autodiff = lambda g, u: (jax.nn.silu(g) * u * weights).sum()
  ours = lambda g, u: (transformer.swiglu(g, u) * weights).sum()
  np.testing.assert_allclose(ours(gate, up), autodiff(gate, up), rtol=1e-6)
  for got, want in zip(jax.grad(ours, argnums=(0, 1))(gate, up), jax.grad(autodiff, argnums=(0, 1))(gate, up)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
