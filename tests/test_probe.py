"""The information probe (configs/probe.py): a frozen encoder's embedding, a fresh decoder."""

import pytest

from memjax.training import loop


def configure(cfg, steps):
  """Small enough for a test, large enough to learn: mixer k=8, 16 tokens, lr 1e-2."""
  cfg.data.n_ctx = 16
  cfg.train.update(steps=steps, lr=1e-2, batch_size=32, warmup_steps=10, eval_every=10**6,
                   eval_batches=4, checkpoint_every=10**6)
  for tower in (cfg.encoder, cfg.decoder):
    tower.update(d_model=64, mixer_kernel=8)
  return cfg


@pytest.mark.slow
def test_an_autoencoder_embedding_holds_clearly_more_than_an_untrained_one(tiny, tmp_path):
  autoencoder = configure(tiny("autoencoder.py:tiny,family=mixer,feed=unroll"), steps=300)
  loop.run(autoencoder, str(tmp_path / "autoencoder"))
  probe = configure(tiny("probe.py:tiny,family=mixer,feed=unroll"), steps=150)
  probe.encoder.checkpoint = str(tmp_path / "autoencoder")
  trained = loop.run(probe, str(tmp_path / "probe_autoencoder"))["eval"]["reconstruction/accuracy"]
  untrained_probe = configure(tiny("probe.py:tiny,family=mixer,feed=unroll"), steps=150)
  untrained = loop.run(untrained_probe, str(tmp_path / "probe_untrained"))["eval"]["reconstruction/accuracy"]
  assert trained > 2 * untrained and trained > untrained + 0.1, (trained, untrained)
