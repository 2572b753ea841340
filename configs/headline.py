"""The headline demo: causal-LM vs autoencoder embeddings, probed (memjax/experiments/headline.py).

COMMAND: python -m memjax.experiments.headline --config=configs/headline.py:cpu --workdir=runs/headline
Presets: `cpu` (the README's `make demo`: minutes on 2 CPU cores, timed in docs/headline.md) and
`tiny` (tests).
Sub-configs `clm`, `autoencoder` and `probe` are complete run configs; override any key, e.g.
--config.autoencoder.train.steps=3000.
"""

import pathlib

import ml_collections

from memjax import config as mc

HERE = pathlib.Path(__file__).parent


def get_config(arg="cpu"):
  preset = {"cpu": "small", "tiny": "tiny"}[arg]
  family = "mixer"  # masked mixers form memories far faster than transformers (paper §2.2)
  cfg = ml_collections.ConfigDict()
  cfg.clm = mc.load(HERE / "clm.py", f"{preset},family={family}")
  cfg.autoencoder = mc.load(HERE / "autoencoder.py", f"{preset},family={family},feed=unroll")
  cfg.probe = mc.load(HERE / "probe.py", f"{preset},family={family},feed=unroll")
  towers = (cfg.clm.model, cfg.autoencoder.encoder, cfg.autoencoder.decoder, cfg.probe.encoder,
            cfg.probe.decoder)
  if arg == "cpu":
    for tower in towers:
      tower.mixer_kernel = 8
    # Equal budgets: the causal LM and the autoencoder train for the same number of steps (the
    # autoencoder's step costs more, two towers; giving the causal LM the same steps favours it).
    for run, steps in ((cfg.clm, 2000), (cfg.autoencoder, 2000), (cfg.probe, 1000)):
      run.data.n_ctx = 32
      run.train.update(steps=steps, lr=5e-3, eval_every=250, checkpoint_every=500)
  else:
    for run in (cfg.clm, cfg.autoencoder, cfg.probe):
      run.train.update(steps=4, eval_every=2, checkpoint_every=4, eval_batches=1)
  return cfg
