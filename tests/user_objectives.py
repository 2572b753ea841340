"""A user's objectives, outside memjax: named by the tests by import path (`user_objectives:...`)
or handed to `memjax.api.fit`. Built only from the public API."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from memjax import api as mj

Z_WEIGHT = optax.linear_schedule(0.0, 0.5, 10)  # 0 at step 0, 0.5 from step 10 on


def z_loss(outputs, view):
  """PaLM's z-loss: the squared log-normalizer of the logits, over the positions with a target."""
  log_z_BxT = jax.nn.logsumexp(outputs["logits"].astype(jnp.float32), axis=-1)
  weights = view["weights"]
  value = (log_z_BxT**2 * weights).sum() / jnp.maximum(weights.sum(), 1.0)
  return value, {"loss": value}


# Loss terms a config adds to any objective (objective.extra_terms), over its views by name.
z_ramp = mj.Term(mj.on_view("text", z_loss), Z_WEIGHT)  # a term with its own schedule
text_z_loss = mj.on_view("text", z_loss)  # a bare loss function (weight 1, or set in the config)


def clm_with_z_loss(cfg, special):
  """Next-token prediction plus a z-loss whose weight ramps up with the step (an optax schedule)."""
  return mj.Objective("zclm", views={"text": mj.language_modelling},
                      loss=mj.compose({"clm": mj.on_view("text", mj.next_token_loss),
                                       "z": mj.Term(mj.on_view("text", z_loss), Z_WEIGHT)}))


def with_hidden_norm(model, view):
  """A wrapped model call: the usual outputs plus an auxiliary one (the mean hidden-state norm)."""
  outputs = model(view["inputs"])
  return {**outputs, "hidden_norm": jnp.linalg.norm(outputs["hidden"], axis=-1).mean()}


# An Objective value (no config needed): CLM plus a tiny penalty on the wrapped call's extra output.
clm_with_hidden_penalty = mj.Objective(
    "hclm", views={"text": mj.language_modelling},
    loss=mj.compose({"clm": mj.on_view("text", mj.next_token_loss),
                     "norm": mj.Term(mj.on_view("text", lambda out, view: (out["hidden_norm"],
                                                                           {"loss": out["hidden_norm"]})),
                                     1e-3)}),
    forward=with_hidden_norm)

NOT_AN_OBJECTIVE = 42


def returns_a_string(cfg, special):
  return "clm"


class CausalMeanBlock(nnx.Module):
  """A user's model block (a tower family by import path): x + MLP(running mean of x), causal."""

  def __init__(self, cfg: mj.StackConfig, *, rngs: nnx.Rngs):
    self.up = nnx.Linear(cfg.d_model, cfg.hidden_dim, rngs=rngs)
    self.down = nnx.Linear(cfg.hidden_dim, cfg.d_model, rngs=rngs)

  def __call__(self, x_BxTxD, mask_BxT=None):  # called with a padding mask on padded data (unused)
    mean_BxTxD = jnp.cumsum(x_BxTxD, axis=1) / jnp.arange(1, x_BxTxD.shape[1] + 1)[:, None]
    return x_BxTxD + self.down(jax.nn.gelu(self.up(mean_BxTxD)))
