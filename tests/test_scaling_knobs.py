"""The knobs that make a large run fit: remat and microbatches compute the same step as without them.

The reference is the plain step on the same state and batch: remat only changes what the backward
pass keeps (so gradients agree to float32 summation order), and microbatches accumulate the gradient
of equal slices of a packed batch (every row scores the same number of tokens, so the mean of the
slices' mean losses is the batch's mean loss).
"""

import jax
import numpy as np
import pytest

from conftest import load_config
from memjax.training import program as programs
from memjax.training import sharding


def tiny_config(spec, **train):
  cfg = load_config(spec)
  # The first step updates (no warmup from lr 0), and AdamW's eps is large enough that its first
  # update, lr * g / (|g| + eps), is a smooth function of the gradient: with eps = 1e-8 an element
  # whose gradient is ~0 moves by +-lr with a sign set by summation order.
  cfg.train.update(dict(warmup_steps=0, eps=1e-3) | train)
  return cfg


def one_step(cfg, batch_BxT):
  """(metrics, initial params, updated params) of the first train step of `cfg` on `batch_BxT`."""
  program = programs.Program(cfg, sharding.make_mesh(cfg.mesh))
  state = program.init_state(tokenizer_digest="")
  initial = jax.tree.map(np.array, jax.device_get(state.params))  # a copy: the step donates the state
  batch = sharding.global_batch({"tokens": batch_BxT, "mask": np.ones_like(batch_BxT, np.float32)},
                                program.mesh)
  state, metrics = program.train_step(program.stages[0])(state, batch)
  return jax.device_get(metrics), initial, jax.device_get(state.params)


def random_batch(cfg, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(4, cfg.data.vocab_size, (cfg.train.batch_size, cfg.data.n_ctx), dtype=np.int32)


def norm(tree):
  return float(np.sqrt(sum(np.sum(np.square(x, dtype=np.float64)) for x in jax.tree.leaves(tree))))


def assert_same_step(a, b, rtol):
  """Equal losses and gradient norms; parameters equal as a whole (the norm of their difference
  under 1e-3 of how far the step moved them: Adam's first step is lr * g / (|g| + eps), so an
  element whose gradient is ~0 moves by a sign set by summation noise; see test_sharding_equivalence)."""
  (metrics_a, initial, params_a), (metrics_b, _, params_b) = a, b
  for key in ("loss", "grad_norm"):
    np.testing.assert_allclose(metrics_a[key], metrics_b[key], rtol=rtol, err_msg=key)
  moved = norm(jax.tree.map(np.subtract, params_b, initial))
  assert norm(jax.tree.map(np.subtract, params_a, params_b)) < 1e-3 * moved


@pytest.mark.parametrize("spec, remat", [("memory.py:tiny,family=transformer", "dots"),
                                         ("memory.py:tiny,family=mixer", "full")])
def test_remat_computes_the_same_step(spec, remat, data_cache):
  plain = tiny_config(spec)
  batch = random_batch(plain)
  checkpointed = tiny_config(spec)
  for tower in ("encoder", "decoder"):
    checkpointed[tower].remat = remat
  assert_same_step(one_step(checkpointed, batch), one_step(plain, batch), rtol=1e-5)


@pytest.mark.parametrize("spec", ["clm.py:tiny,family=transformer", "autoencoder.py:tiny,family=mixer"])
def test_microbatches_compute_the_same_step_as_the_whole_batch(spec, data_cache):
  whole = tiny_config(spec)  # batch 8 on a data=8 mesh: 1 sequence per device
  whole.mesh.update(data=2, fsdp=1, tensor=4)  # 4 sequences per data shard, 2 microbatches of 2
  batch = random_batch(whole)
  split = tiny_config(spec, microbatches=2)
  split.mesh.update(data=2, fsdp=1, tensor=4)
  a, b = one_step(split, batch), one_step(whole, batch)
  assert_same_step(a, b, rtol=1e-5)
  term = next(k for k in a[0] if k.endswith("/tokens"))
  assert a[0][term] == b[0][term]  # counts are summed over microbatches, not averaged


def test_microbatches_that_do_not_divide_a_shard_are_refused(data_cache):
  cfg = tiny_config("clm.py:tiny", microbatches=3)
  cfg.mesh.update(data=2, fsdp=1, tensor=4)
  with pytest.raises(ValueError, match="train.microbatches=3 does not divide the 4 sequences"):
    programs.Program(cfg, sharding.make_mesh(cfg.mesh))


def test_split_microbatches_keeps_each_shard_rows_local():
  from memjax.training import steps

  rows = np.arange(8)[:, None] * np.ones((1, 3), np.int32)  # row i holds i
  split = np.asarray(steps.split_microbatches({"t": rows}, 2)["t"])
  # 2 shards of 4 contiguous rows: each microbatch takes 2 rows of every shard
  assert split[:, :, 0].tolist() == [[0, 2, 4, 6], [1, 3, 5, 7]]
