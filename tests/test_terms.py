import jax
import jax.numpy as jnp
import pytest

from memjax.objectives import terms


def constant_term(value):
  return lambda outputs, batch: (jnp.float32(value), {"loss": jnp.float32(value)})


def test_compose_weights_terms_and_reports_each():
  loss = terms.compose({"a": terms.Term(constant_term(2.0), 0.5), "b": constant_term(3.0)})
  total, metrics = loss({}, {}, jnp.int32(0))
  assert total == pytest.approx(4.0)
  assert metrics["a/loss"] == 2.0 and metrics["b/loss"] == 3.0 and metrics["a/weight"] == 0.5
  assert metrics["loss"] == total


def test_weights_may_depend_on_the_step_inside_jit():
  ramp = terms.Term(constant_term(1.0), lambda step: jnp.minimum(step / 10.0, 1.0))
  loss = jax.jit(terms.compose({"ramp": ramp}))
  assert loss({}, {}, jnp.int32(5))[0] == pytest.approx(0.5)
  assert loss({}, {}, jnp.int32(50))[0] == pytest.approx(1.0)


def test_next_token_and_reconstruction_terms_differ_by_the_shift():
  logits = jax.nn.one_hot(jnp.array([[1, 2, 3]]), 4) * 20.0
  batch = {"targets": jnp.array([[1, 2, 3]]), "weights": jnp.ones((1, 3))}
  assert terms.reconstruction_loss({"logits": logits}, batch)[1]["accuracy"] == 1.0
  assert terms.next_token_loss({"logits": logits}, batch)[1]["accuracy"] == 0.0
  shifted = {"targets": jnp.array([[0, 1, 2]]), "weights": jnp.ones((1, 3))}
  assert terms.next_token_loss({"logits": logits}, shifted)[1]["tokens"] == 2.0


def test_on_view_selects_one_view():
  term = terms.on_view("copy", lambda outputs, batch: (outputs["x"] + batch["y"], {}))
  assert term({"copy": {"x": 1.0}}, {"copy": {"y": 2.0}})[0] == 3.0


def test_compose_needs_terms():
  with pytest.raises(ValueError):
    terms.compose({})
