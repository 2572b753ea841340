import jax.numpy as jnp
import numpy as np
import pytest

from memjax.objectives import views

BATCH = {"tokens": jnp.array([[10, 11, 12, 13, 14, 15, 16, 17]]),
         "mask": jnp.array([[1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]])}


def test_language_modelling_view():
  view = views.language_modelling(BATCH)
  np.testing.assert_array_equal(view["inputs"], view["targets"])
  np.testing.assert_array_equal(view["weights"], BATCH["mask"])


def test_copy_repeats_the_first_half_and_scores_only_the_copy():
  view = views.copy(BATCH)
  np.testing.assert_array_equal(view["inputs"], [[10, 11, 12, 13, 10, 11, 12, 13]])
  np.testing.assert_array_equal(view["targets"], [[10, 11, 12, 13, 10, 11, 12, 13]])
  # The first half has no targets; the copy keeps the padding mask of what it copies.
  np.testing.assert_array_equal(view["weights"], [[0, 0, 0, 0, 1, 1, 1, 0]])


def test_blank_copy_hides_the_copied_tokens_from_the_decoder():
  view = views.copy(BATCH, blank_id=2)
  np.testing.assert_array_equal(view["inputs"], [[10, 11, 12, 13, 2, 2, 2, 2]])
  np.testing.assert_array_equal(view["targets"], [[10, 11, 12, 13, 10, 11, 12, 13]])


def test_delimiter_replaces_and_unscores_the_first_copied_inputs():
  view = views.copy(BATCH, blank_id=2, delimiter_id=3, delimiter_tokens=2)
  np.testing.assert_array_equal(view["inputs"], [[10, 11, 12, 13, 3, 3, 2, 2]])
  np.testing.assert_array_equal(view["weights"], [[0, 0, 0, 0, 0, 0, 1, 0]])


def test_odd_lengths_are_refused():
  with pytest.raises(ValueError, match="even"):
    views.copy({"tokens": jnp.zeros((1, 5), jnp.int32), "mask": jnp.ones((1, 5))})
