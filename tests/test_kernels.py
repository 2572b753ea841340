"""Attention paths chosen by config: the splash kernel (Pallas interpret mode on CPU) against XLA's
`dot_product_attention`, forward and gradients, on every mask memjax uses; and a real TPU compile.

Tolerances: float32 paths agree to 2e-5 (measured ~2e-6: only the summation order differs);
bfloat16 inputs agree to 2e-2 (the outputs' own bf16 rounding, 2^-8 relative, on values of ~1).
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from memjax import models
from memjax.kernels import attention, splash
from memjax.models.config import StackConfig
from memjax.training import loop, run_folder, sharding
from conftest import load_config, no_persistent_cache

F32_TOL, BF16_TOL = 2e-5, 2e-2


def qkv(shape, kv_heads, dtype=jnp.float32, seed=0):
  B, T, N, H = shape
  rng = np.random.default_rng(seed)
  draw = lambda n: jnp.asarray(rng.normal(size=(B, T, n, H)), jnp.float32).astype(dtype)
  return draw(N), draw(kv_heads), draw(kv_heads)


def padding(B, T, seed=0):
  """Left padding, right padding, none, and an example of padding only (each row one pattern)."""
  mask = np.ones((B, T), np.float32)
  patterns = [(slice(0, T // 3),), (slice(T - T // 4, T),), (), (slice(0, T),)]
  for b in range(B):
    for part in patterns[b % len(patterns)]:
      mask[b, part] = 0.0
  return mask


def scored(mask, shape):
  """Rows whose output is defined the same way on every path: from the first token on."""
  if mask is None:
    return np.ones(shape[:2], bool)
  return np.maximum.accumulate(mask, axis=1) > 0


def grads(path, q, k, v, mask, cotangent):
  f = lambda q, k, v: (attention.causal_attention(q, k, v, mask, path).astype(jnp.float32) * cotangent).sum()
  return jax.grad(f, argnums=(0, 1, 2))(q, k, v)


# T=20 and 259 are no multiples of 128 (259: the memory decoder's chunk 256 + 3 slots); 640 tiles into
# five 128-blocks, so blocks beyond the diagonal one are skipped and partial ones masked.
@pytest.mark.parametrize("T,heads,kv_heads,masked", [(20, 4, 2, False), (20, 4, 2, True), (259, 2, 1, True),
                                                      (640, 2, 2, False), (32, 4, 4, True)])
def test_splash_matches_xla_forward_and_gradients(T, heads, kv_heads, masked):
  B = 4 if masked else 2
  q, k, v = qkv((B, T, heads, 8), kv_heads)
  mask = jnp.asarray(padding(B, T)) if masked else None
  rows = scored(None if mask is None else np.asarray(mask), q.shape)
  got = np.asarray(attention.causal_attention(q, k, v, mask, "splash"))
  want = np.asarray(attention.causal_attention(q, k, v, mask, "xla"))
  np.testing.assert_allclose(got[rows], want[rows], atol=F32_TOL)
  # Unscored rows (padding before any token) carry no gradient, as in training.
  cotangent = jnp.asarray(np.random.default_rng(1).normal(size=q.shape) * rows[:, :, None, None], jnp.float32)
  for g, w in zip(grads("splash", q, k, v, mask, cotangent), grads("xla", q, k, v, mask, cotangent)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=F32_TOL)
  if masked:  # the mask is applied: without it, tokens read the padding
    unmasked = np.asarray(attention.causal_attention(q, k, v, None, "splash"))
    assert np.abs(unmasked[rows] - want[rows]).max() > 1e-3


def test_splash_in_bfloat16_matches_xla_in_float32():
  q, k, v = qkv((4, 20, 4, 8), 2, jnp.bfloat16)
  mask = jnp.asarray(padding(4, 20))
  rows = scored(np.asarray(mask), q.shape)
  got = attention.causal_attention(q, k, v, mask, "splash")
  assert got.dtype == jnp.bfloat16
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  want = np.asarray(attention.causal_attention(*f32, mask, "xla"))
  np.testing.assert_allclose(np.asarray(got, np.float32)[rows], want[rows], atol=BF16_TOL)
  cotangent = jnp.asarray(np.random.default_rng(1).normal(size=q.shape) * rows[:, :, None, None], jnp.float32)
  for g, w in zip(grads("splash", q, k, v, mask, cotangent), grads("xla", *f32, mask, cotangent)):
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w), atol=BF16_TOL * 2)


def test_splash_is_split_over_the_mesh_and_agrees():
  """Inside jit with in_shardings on a (data 4, tensor 2) mesh: a shard_map over batch and heads."""
  mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=4, fsdp=1, tensor=2)))
  q, k, v = qkv((4, 20, 4, 8), 2)
  mask = jnp.asarray(padding(4, 20))
  rows = scored(np.asarray(mask), q.shape)
  want = np.asarray(attention.causal_attention(q, k, v, mask, "xla"))
  spec = NamedSharding(mesh, P(sharding.BATCH_AXES))
  run = jax.jit(lambda q, k, v, m: attention.causal_attention(q, k, v, m, "splash"), in_shardings=(spec,) * 4)
  placed = jax.device_put((q, k, v, mask), spec)  # the mesh from the inputs' types
  assert "shard_map" in run.trace(*placed).jaxpr.pretty_print()
  np.testing.assert_allclose(np.asarray(run(*placed))[rows], want[rows], atol=F32_TOL)
  with jax.set_mesh(mesh):  # the mesh from the context, for inputs that do not carry it
    assert "shard_map" in run.trace(q, k, v, mask).jaxpr.pretty_print()
    np.testing.assert_allclose(np.asarray(run(q, k, v, mask))[rows], want[rows], atol=F32_TOL)


def test_splash_shards_what_divides():
  mesh = jax.sharding.AbstractMesh((2, 2, 2), sharding.MESH_AXES)
  assert splash._specs(mesh, 4, 4, 2, sharding.BATCH_AXES, "tensor") == (("data", "fsdp"), "tensor")
  assert splash._specs(mesh, 2, 4, 1, sharding.BATCH_AXES, "tensor") == (("data",), None)
  assert splash._specs(mesh, 3, 4, 4, sharding.BATCH_AXES, "tensor") == ((), "tensor")
  assert [splash.block_length(n) for n in (128, 256, 384, 640, 1024, 1152)] == [128, 256, 384, 128, 512, 384]


def model_config(spec, path, **data):
  cfg = load_config(spec)
  cfg.data.update(data)
  for tower in ("model", "encoder", "decoder"):
    if tower in cfg and "attention" in cfg[tower]:
      cfg[tower].attention = path
  return cfg


@pytest.mark.parametrize("spec,slots", [("clm.py:tiny", None), ("memory.py:tiny", "fixed"),
                                        ("memory.py:tiny", "variable")])
def test_models_with_splash_match_xla_with_padding(spec, slots):
  """The towers end to end: the memory decoder's [slots, chunk] inputs under its slot mask."""
  logits, param_grads = {}, {}
  tokens = np.random.default_rng(0).integers(3, 512, (2, 32))
  mask = np.ones((2, 32), np.float32)
  mask[0, :12], mask[1, -5:] = 0.0, 0.0  # left padding (a whole chunk of it), right padding
  cotangent = jnp.asarray(np.random.default_rng(1).normal(size=(2, 32, 512)) * mask[:, :, None], jnp.float32)
  for path in ("splash", "xla"):
    cfg = model_config(spec, path, n_ctx=32)
    if slots:
      cfg.memory.slots = slots
    model = models.build_model(cfg, nnx.Rngs(0))
    loss = lambda model: (model(jnp.asarray(tokens), jnp.asarray(mask))["logits"] * cotangent).sum()
    value, g = nnx.jit(nnx.value_and_grad(loss))(model)
    logits[path], param_grads[path] = value, jax.tree.leaves(nnx.state(g))
  np.testing.assert_allclose(logits["splash"], logits["xla"], rtol=1e-5)
  for got, want in zip(param_grads["splash"], param_grads["xla"]):
    np.testing.assert_allclose(got, want, atol=5e-5 * max(1.0, float(np.abs(want).max())))


def test_a_tiny_run_trains_with_splash(tiny, tmp_path, monkeypatch):
  traced = []
  kernel = attention.PATHS["splash"]
  monkeypatch.setitem(attention.PATHS, "splash", lambda *args: traced.append(args[0].shape) or kernel(*args))
  cfg = tiny("clm.py:tiny", steps=2, warmup_steps=0, log_every=1, eval_every=2, checkpoint_every=2)
  cfg.model.attention = "splash"
  cfg.data.n_ctx = 16
  results = loop.run(cfg, str(tmp_path))
  assert results["step"] == 2
  assert np.isfinite(results["train"]["loss"]) and np.isfinite(results["eval"]["loss"])
  assert traced  # the steps ran the kernel
  assert json.loads((tmp_path / "config.json").read_text())["model"]["attention"] == "splash"


def test_the_attention_path_is_resumable_and_old_runs_resume(tiny):
  saved = json.loads(tiny("memory.py:tiny").to_json_best_effort())
  current = tiny("memory.py:tiny")
  current.decoder.attention, current.encoder.attention = "splash", "xla"
  assert run_folder.config_differences(saved, json.loads(current.to_json_best_effort())) == []
  del saved["encoder"]["attention"], saved["decoder"]["attention"]  # a run from before the key
  assert run_folder.config_differences(saved, json.loads(tiny("memory.py:tiny").to_json_best_effort())) == []


def test_attention_names_are_checked_and_auto_follows_the_platform(monkeypatch):
  with pytest.raises(ValueError, match="attention must be one of"):
    StackConfig(family="transformer", d_model=32, n_layers=1, length=8, vocab_size=16, attention="flash")
  x = jnp.zeros((2, 4))
  assert attention.resolve("auto") == attention.resolve("auto", x) == "cpu"  # the tests run on CPU
  assert attention.resolve("splash", x) == "splash"
  # Compiling for TPU devices (from this CPU process): the mesh's platform decides.
  tpu = jax.sharding.AbstractDevice(device_kind="TPU v5 lite", num_cores=1, platform="tpu")
  mesh = jax.sharding.AbstractMesh((1, 1, 1), sharding.MESH_AXES, abstract_device=tpu)
  with jax.sharding.use_abstract_mesh(mesh):
    assert attention.resolve("auto", x) == "xla"
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert attention.resolve("auto") == attention.resolve("auto", x) == "xla"


def tpu_devices():
  """The abstract devices of a v5e 2x2 slice, compiled for by this CPU process's libtpu."""
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # other processes may hold libtpu
  try:
    from jax.experimental import topologies
    return topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2").devices
  except Exception as error:  # no libtpu, or one that cannot load here
    pytest.skip(f"libtpu cannot load: {type(error).__name__}: {error}")


@pytest.mark.parametrize("path", ["splash", "auto"])
def test_a_transformer_train_step_compiles_for_tpu(path):
  """The real TPU compiler (Mosaic for the kernel) on a tiny model's forward and backward, with
  batch over data, heads over tensor and a padding mask, at a length that is no multiple of 128.
  'auto' compiled from this CPU process for TPU devices is XLA's path, not the CPU one."""
  from memjax.training.steps import jit_train_step
  devices = tpu_devices()
  mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=2, fsdp=1, tensor=2)), devices=devices)
  cfg = StackConfig(family="transformer", d_model=64, n_layers=2, length=40, vocab_size=128, n_heads=4,
                    attention=path)
  from memjax.models.lm import CausalLM
  graphdef, params = nnx.split(nnx.eval_shape(lambda: CausalLM(cfg, rngs=nnx.Rngs(0))))

  def step(params, batch):
    def loss(params):
      logits = nnx.merge(graphdef, params)(batch["tokens"], batch["mask"])["logits"]
      return (jax.nn.logsumexp(logits, axis=-1) * batch["mask"]).sum()
    grads = jax.grad(loss)(params)
    return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), {}

  shardings = sharding.tree_shardings(params, mesh)
  batch_spec = sharding.batch_sharding(mesh)
  batch = {"tokens": jax.ShapeDtypeStruct((4, 40), jnp.int32, sharding=batch_spec),
           "mask": jax.ShapeDtypeStruct((4, 40), jnp.float32, sharding=batch_spec)}
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, jnp.bfloat16, sharding=s),
                          params, shardings)  # bf16: the kernel's dtype at paper scale
  with no_persistent_cache():
    lowered = jit_train_step(step, shardings, mesh).lower(abstract, batch)
    text = lowered.compile().as_text()
  if path == "auto":
    assert "tpu_custom_call" not in text and "optimization_barrier" not in lowered.as_text()
    return
  # The Mosaic kernels (not the interpreter): forward, dq and dkv in each of the 2 layers.
  assert text.count('custom_call_target="tpu_custom_call"') == 6
  for kernel in ("splash_mha_fwd_segmented", "splash_mha_dq_segmented", "splash_mha_dkv_segmented"):
    assert kernel in text
