import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from memjax import models, objectives
from memjax.training import optim, sharding, steps
from memjax.training.state import TrainState, split_frozen, split_model

OBJECTIVE = ml_collections.ConfigDict(dict(clm_weight=1.0, copy_weight=1.0, copy_delimiter_tokens=0))
# Adam's first update is lr * g / (|g| + eps): with a tiny eps, gradients that are ~0 up to rounding
# get updates anywhere in [-lr, lr]. A larger eps keeps the update a smooth function of the gradient,
# so that the comparison below tests the sharding, not Adam's sign function.
TRAIN = ml_collections.ConfigDict(dict(lr=1e-2, warmup_steps=0, steps=10, schedule="linear",
                                       weight_decay=0.1, b1=0.9, b2=0.999, eps=1e-4, clip_norm=1.0))


def config(task="clm"):
  arch = dict(family="transformer", d_model=32, n_layers=2, n_heads=4, n_kv_heads=0, mlp_dim=0,
              rope_theta=1e4, norm_eps=1e-6, mixer_kernel=1, mixer_heads=0, scan_layers=False)
  cfg = ml_collections.ConfigDict(dict(task=task, data=dict(vocab_size=64, n_ctx=16)))
  if task == "clm":
    cfg.model = arch | dict(tie_embeddings=False)
  else:
    cfg.encoder = arch | dict(embed_index=-1, compression=1, checkpoint="", frozen=True)
    cfg.decoder = arch | dict(feed="unroll")
  return cfg


def train_one_step(cfg, objective_name, mesh_sizes, frozen=(), compute_dtype=jnp.float32):
  n_devices = int(np.prod(list(mesh_sizes.values())))
  mesh = sharding.make_mesh(ml_collections.ConfigDict(mesh_sizes), devices=jax.devices()[:n_devices])
  graphdef, params = split_model(models.build_model(cfg, nnx.Rngs(0)))
  trainable, frozen_params = split_frozen(params, frozen)
  tx = optim.optimizer(TRAIN)
  state = TrainState(jnp.int32(0), trainable, tx.init(trainable), jax.random.PRNGKey(0), frozen_params)
  shardings = sharding.tree_shardings(state, mesh)
  state = jax.device_put(state, shardings)
  objective = objectives.build(objective_name, OBJECTIVE, task=cfg.task, blank_id=2, delimiter_id=3)
  step = steps.jit_train_step(steps.make_train_step(graphdef, objective, tx, optim.schedule(TRAIN),
                                                   compute_dtype), shardings, mesh)
  tokens = np.asarray(jax.random.randint(jax.random.key(1), (8, 16), 0, 64), np.int32)
  batch = sharding.global_batch({"tokens": tokens, "mask": np.ones((8, 16), np.float32)}, mesh)
  before = jax.device_get(state)  # the step donates (invalidates) its input state
  new_state, metrics = step(state, batch)
  return before, new_state, metrics


def test_a_step_on_a_2x4_mesh_matches_one_device():
  one = dict(data=1, fsdp=1, tensor=1)
  _, reference, ref_metrics = train_one_step(config(), "combined", one)
  for sizes in (dict(data=2, fsdp=4, tensor=1), dict(data=2, fsdp=1, tensor=4)):
    _, sharded, metrics = train_one_step(config(), "combined", sizes)
    np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 jax.device_get(sharded.params), jax.device_get(reference.params))
  assert int(reference.step) == 1 and float(ref_metrics["grad_norm"]) > 0


def test_frozen_parameters_are_untouched_and_have_no_optimizer_state():
  before, after, _ = train_one_step(config("autoencoder"), "autoencode", dict(data=2, fsdp=2, tensor=2),
                                    frozen=("encoder",))
  jax.tree.map(np.testing.assert_array_equal, before.frozen, jax.device_get(after.frozen))
  assert "encoder" not in after.params
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(after.opt_state)]
  assert paths and not [p for p in paths if "encoder" in p]
  assert not np.allclose(jax.device_get(after.params["decoder"]["blocks"]["attn"]["q"]["kernel"]),
                         before.params["decoder"]["blocks"]["attn"]["q"]["kernel"])


def test_bfloat16_compute_keeps_float32_parameters_and_close_losses():
  one = dict(data=2, fsdp=2, tensor=2)
  _, full, full_metrics = train_one_step(config(), "clm", one)
  _, mixed, mixed_metrics = train_one_step(config(), "clm", one, compute_dtype=jnp.bfloat16)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(mixed.params))
  np.testing.assert_allclose(mixed_metrics["loss"], full_metrics["loss"], rtol=2e-2)
  assert float(mixed_metrics["loss"]) != float(full_metrics["loss"])  # it did compute in bfloat16


def test_split_frozen_takes_nested_paths_and_keeps_the_nesting():
  params = {"encoder": {"embed": {"w": 1}, "stack": {"w": 2}}, "head": {"w": 3}}
  trainable, frozen = split_frozen(params, ("encoder/stack",))
  assert trainable == {"encoder": {"embed": {"w": 1}}, "head": {"w": 3}}
  assert frozen == {"encoder": {"stack": {"w": 2}}}
  assert split_frozen(params, ("encoder",)) == ({"head": {"w": 3}}, {"encoder": params["encoder"]})
  assert split_frozen(params, ()) == (params, {})
