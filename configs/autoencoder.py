"""Autoencoder: encoder -> one embedding -> decoder regenerating all n_ctx tokens in one pass.

COMMAND: python -m memjax.train --config=configs/autoencoder.py:small --workdir=runs/autoencoder
Argument: a preset (tiny | small | paper | smoke | cpu | demo), then optional keys: family
(transformer | mixer), feed (unroll | repeat; default unroll for transformers, whose decoders need
distinct inputs per position, and repeat for mixers, as in the paper; unroll for both in the presets
smoke, cpu and demo), steps (default: the preset's), and the width, depth and mixer kernel of both
towers where they differ from the preset's: d_model, n_layers, kernel (0: the preset's; e.g. the
reference's frozen encoders of memory models, memjax/experiments/runs.py CHUNK_AUTOENCODERS).
"""

from memjax import config as mc

# Steps by preset where an autoencoder's differ from the preset's: at cpu scale it trains twice as
# long as a causal LM (docs/results.md).
STEPS = {"cpu": 1000}


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", feed="", steps=0, d_model=0, n_layers=0, kernel=0)
  size = mc.SIZES[arg.preset]
  cfg = mc.base("autoencoder", arg.preset, stages="autoencode", family=arg.family,
                steps=arg.steps or STEPS.get(arg.preset, 0))
  cfg.encoder = mc.encoder(size, arg.family)
  cfg.decoder = mc.decoder(size, arg.family, feed=arg.feed)
  if arg.preset == "paper":  # paper §2.7: 8 + 8 layers; mixers d=1024 with kernel 8
    cfg.init = "reference"  # nn.Embedding N(0, 1) and nn.Linear heads around the Llama blocks
    for tower in (cfg.encoder, cfg.decoder):
      tower.n_layers = 8
      if arg.family == "mixer":
        tower.d_model, tower.mixer_kernel = 1024, 8
      else:
        tower.n_heads = 8
  for tower in (cfg.encoder, cfg.decoder):
    for key, value in (("d_model", arg.d_model), ("n_layers", arg.n_layers), ("mixer_kernel", arg.kernel)):
      if value:
        tower[key] = value
  return cfg
