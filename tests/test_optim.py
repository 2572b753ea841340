import jax
import jax.numpy as jnp
import ml_collections
import pytest

from memjax.training import optim


def cfg(**kw):
  return ml_collections.ConfigDict(dict(lr=1.0, warmup_steps=10, steps=110, schedule="linear",
                                        weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0) | kw)


def test_warmup_then_linear_or_cosine_decay_to_zero():
  linear = optim.schedule(cfg())
  assert [float(linear(s)) for s in (0, 5, 10, 60, 110)] == pytest.approx([0, 0.5, 1.0, 0.5, 0.0])
  cosine = optim.schedule(cfg(schedule="cosine"))
  assert float(cosine(60)) == pytest.approx(0.5) and float(cosine(35)) > float(linear(35))


def second_moment_after_one_step(**kw):
  tx = optim.optimizer(cfg(**kw))
  params = {"w": jnp.zeros(4)}
  _, state = tx.update({"w": jnp.full(4, 10.0)}, tx.init(params), params)
  adam_state = next(s for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "nu"))
                    if hasattr(s, "nu"))
  return float(adam_state.nu["w"][0])


def test_gradients_are_clipped_by_global_norm_before_adam():
  # Gradient norm 20 is clipped to 1: each entry 0.5, so Adam's nu = (1 - b2) * 0.25.
  assert second_moment_after_one_step(clip_norm=1.0) == pytest.approx(0.001 * 0.25, rel=1e-4)
  assert second_moment_after_one_step(clip_norm=0.0) == pytest.approx(0.001 * 100.0, rel=1e-4)


def test_bad_schedule_settings_are_named():
  with pytest.raises(ValueError, match="train.schedule"):
    optim.schedule(cfg(schedule="step"))
  with pytest.raises(ValueError, match="warmup_steps"):
    optim.schedule(cfg(warmup_steps=200))
