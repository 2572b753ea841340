"""Autoencoder: encoder -> one embedding -> decoder regenerating all n_ctx tokens in one pass.

COMMAND: python -m memjax.train --config=configs/autoencoder.py:small --workdir=runs/autoencoder
Argument: a preset (tiny | small | paper), then optional keys: family (transformer | mixer) and feed
(unroll | repeat; default unroll for transformers, whose decoders need distinct inputs per position,
and repeat for mixers, as in the paper).
"""

from memjax import config as mc


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", feed="")
  size = mc.SIZES[arg.preset]
  feed = arg.feed or ("unroll" if arg.family == "transformer" else "repeat")
  cfg = mc.base("autoencoder", arg.preset, stages="autoencode")
  cfg.encoder = mc.encoder(size, arg.family)
  cfg.decoder = mc.decoder(size, arg.family, feed=feed)
  if arg.preset == "paper":  # paper §2.7: 8 + 8 layers; mixers d=1024 with kernel 8
    cfg.train.lr = mc.PAPER_LEARNING_RATES[arg.family]
    cfg.init = "reference"  # nn.Embedding N(0, 1) and nn.Linear heads around the Llama blocks
    for tower in (cfg.encoder, cfg.decoder):
      tower.n_layers = 8
      if arg.family == "mixer":
        tower.d_model, tower.mixer_kernel = 1024, 8
      else:
        tower.n_heads = 8
  return cfg
