"""Causal language model, transformer or masked mixer.

COMMAND: python -m memjax.train --config=configs/clm.py:small --workdir=runs/clm
Argument: a preset (tiny | small | paper | smoke | cpu | demo | bench), then optional keys, e.g.
`small,family=mixer`, and `steps` (default: the preset's). The `bench` preset is the shape of
`python -m memjax.bench train` (see benchmarks/README.md). The `paper` preset is the causal LM whose
embedding the reference's information probes read (§5.1): a transformer d=512 with 8 layers and 4
heads, a mixer d=1024 with 8 layers and kernel 1 (the paper's table §2.7 lists 16 layers;
docs/differences.md).
"""

from memjax import config as mc


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", steps=0, presets=mc.PRESETS + ("bench",))
  size = mc.SIZES[arg.preset]
  cfg = mc.base("clm", arg.preset, stages="clm", family=arg.family, steps=arg.steps)
  cfg.model = mc.architecture(size, arg.family, tie_embeddings=False)
  if arg.preset == "paper":  # hamming_drivers/clm_transformer_information.py, clm_mixer_information.py
    cfg.model.n_layers = 8  # fineweb_llama_512_n8_h4 / fineweb_mixer_1024_n8_b32 (kernel 1)
    if arg.family == "mixer":
      cfg.model.d_model = 1024
  return cfg
