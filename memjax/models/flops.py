"""Model FLOPs by the 6N rule, per tower: what a training step must compute, whatever the compiler does.

The denominator of MFU (model FLOPs utilization): compiled FLOPs include recomputation (remat) and
any replicated work, model FLOPs do not.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from memjax.models.spec import model_spec


def _matmul_params(tree: Any) -> int:
  return int(sum(math.prod(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(tree)
                 if jax.tree_util.keystr(path).endswith("['kernel']")))


def analytic_flops_per_token(cfg, state, objective: str) -> float:
  """Training FLOPs per input token by the 6N rule (as memjax/bench.py's model_flops_per_token), per tower.

  Each tower counts 2 FLOPs per matmul parameter per position it processes forward, and token
  mixing of 2 * S * d (causal attention, QK^T and AV halved by the mask) or 2 * S * d * kernel (a
  masked mixer's maps) per position and layer for sequences of S positions; trainable towers are
  counted 3x (forward and backward), frozen ones 1x. The combined objective runs two views.
  """
  T = cfg.data.n_ctx
  spec = model_spec(cfg)
  if spec.task == "clm" or spec.kind == "full":  # one causal tower over the whole input
    encoder, decoder, enc_calls, dec_calls = None, spec.encoder or spec.decoder, 1, 1
  elif spec.task == "autoencoder" or spec.kind == "oracle":  # one pass of each tower
    encoder, decoder, enc_calls, dec_calls = spec.encoder, spec.decoder, 1, 1
  else:  # memory models: every chunk decoded, all but the last encoded
    encoder, decoder, enc_calls, dec_calls = spec.encoder, spec.decoder, spec.chunks - 1, spec.chunks
  total = 0.0
  for group, params, passes in [(k, v, 3) for k, v in state.params.items()] + \
                               [(k, v, 1) for k, v in state.frozen.items()]:
    is_encoder = group == "encoder" and encoder is not None
    tower = encoder if is_encoder else decoder
    calls = enc_calls if is_encoder else dec_calls
    positions = calls * tower.length
    total += passes * 2 * _matmul_params(params) * positions
    if group in ("encoder", "decoder"):  # the towers with blocks
      # (bidirectional attention reads every position: twice causal attention's)
      factor = {"transformer": 1, "bert": 2}.get(tower.family, tower.mixer_kernel)
      mixing = 2 * tower.length * tower.d_model * factor
      total += passes * mixing * tower.n_layers * positions
  views = 2 if objective == "combined" else 1
  return views * total / T
