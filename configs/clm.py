"""Causal language model, transformer or masked mixer.

COMMAND: python -m memjax.train --config=configs/clm.py:small --workdir=runs/clm
Argument: a preset (tiny | small | paper | bench), then optional keys, e.g. `small,family=mixer`.
The `bench` preset is the shape of `python -m memjax.bench train` (see benchmarks/README.md).
"""

from memjax import config as mc


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", presets=mc.PRESETS + ("bench",))
  size = mc.SIZES[arg.preset]
  cfg = mc.base("clm", arg.preset, stages="clm")
  cfg.model = mc.architecture(size, arg.family, tie_embeddings=False)
  if arg.preset == "paper":
    cfg.train.lr = mc.PAPER_LEARNING_RATES[arg.family]
  return cfg
