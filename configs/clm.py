"""Causal language model, transformer or masked mixer.

COMMAND: python -m memjax.train --config=configs/clm.py:small --workdir=runs/clm
Argument: a preset (tiny | small | paper | smoke | cpu | demo | bench), then optional keys, e.g.
`small,family=mixer`, and `steps` (default: the preset's). The `bench` preset is the shape of
`python -m memjax.bench train` (see benchmarks/README.md).
"""

from memjax import config as mc


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", steps=0, presets=mc.PRESETS + ("bench",))
  size = mc.SIZES[arg.preset]
  cfg = mc.base("clm", arg.preset, stages="clm", family=arg.family, steps=arg.steps)
  cfg.model = mc.architecture(size, arg.family, tie_embeddings=False)
  return cfg
