"""The losses API: a loss term is a pure function `(outputs, batch) -> (scalar, metrics)`.

`compose` joins named, weighted terms (a weight may be a function of the step) into one loss that
reports its total and every term's value and metrics, e.g. `clm/loss`, `copy/accuracy`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp

from memjax.metrics.entropy import token_cross_entropy

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
LossTerm = Callable[[Any, Any], tuple[jax.Array, Metrics]]
Weight = Union[float, Callable[[jax.Array], jax.Array]]


def next_token_loss(outputs: Mapping[str, jax.Array], batch: Batch) -> tuple[jax.Array, Metrics]:
  """Causal LM: logits [B, T, V] at position t predict target t+1 (batch 'targets', 'weights' [B, T]).

  Positions with weight 0 are excluded. Metrics: 'loss' (mean CE in nats), 'accuracy', 'tokens'.
  """
  metrics = token_cross_entropy(outputs["logits"], batch["targets"], batch["weights"], shift=True)
  return metrics["loss"], metrics


def reconstruction_loss(outputs: Mapping[str, jax.Array], batch: Batch) -> tuple[jax.Array, Metrics]:
  """Autoencoding: logits [B, T, V] at position t regenerate target t (no shift); as next_token_loss."""
  metrics = token_cross_entropy(outputs["logits"], batch["targets"], batch["weights"], shift=False)
  return metrics["loss"], metrics


def on_view(view: str, term: LossTerm) -> LossTerm:
  """Applies `term` to one named view of a multi-view step (outputs and batches keyed by view)."""
  return lambda outputs, batch: term(outputs[view], batch[view])


@dataclasses.dataclass(frozen=True)
class Term:
  """A loss term and its weight: a number, or a function of the step (an optax schedule or any
  `step -> weight`, traced inside the jitted step)."""

  fn: LossTerm
  weight: Weight = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class ComposedLoss:
  """`loss(outputs, batch, step) -> (total, metrics)` with total = sum of weight(step) * term.

  Metrics hold the total as `loss` and every term's metrics under its name (`copy/accuracy`), with
  its weight at this step (`copy/weight`). `terms` is public, so a composed loss can be extended:
  `compose({**loss.terms, "aux": aux_term})`.
  """

  terms: Mapping[str, Term]

  def __call__(self, outputs: Any, batch: Any,
               step: jax.Array = jnp.zeros((), jnp.int32)) -> tuple[jax.Array, Metrics]:
    total, metrics = jnp.zeros((), jnp.float32), {}
    for name, term in self.terms.items():
      value, term_metrics = term.fn(outputs, batch)
      weight = term.weight(step) if callable(term.weight) else term.weight
      total = total + weight * value
      metrics |= {f"{name}/{key}": metric for key, metric in term_metrics.items()}
      metrics[f"{name}/weight"] = jnp.asarray(weight, jnp.float32)
    metrics["loss"] = total
    return total, metrics


def compose(terms: Mapping[str, Term | LossTerm]) -> ComposedLoss:
  """Joins named terms (bare functions get weight 1) into one loss reporting each of them."""
  terms = {name: t if isinstance(t, Term) else Term(t) for name, t in terms.items()}
  if not terms:
    raise ValueError("compose needs at least one loss term")
  for name, term in terms.items():
    if not callable(term.fn):
      raise TypeError(f"loss term {name!r} is not callable: {term.fn!r}")
  return ComposedLoss(terms)
