"""Initialization conventions (memjax/models/init.py), checked against torch's own modules."""

import numpy as np
import pytest
import torch
from flax import nnx

from memjax import models
from conftest import load_config


def build(spec, **changes):
  cfg = load_config(spec)
  cfg.update(changes)
  return models.build_model(cfg, nnx.Rngs(0))


def torch_reference(vocab, d_model):
  """Statistics of the reference's own modules: nn.Embedding(V, d) and nn.Linear(d, V, bias=False)."""
  torch.manual_seed(0)
  embed, head = torch.nn.Embedding(vocab, d_model), torch.nn.Linear(d_model, vocab, bias=False)
  embed, head = embed.weight.detach(), head.weight.detach()
  return float(embed.std()), float(head.abs().max()), float(head.std())


@pytest.mark.parametrize("spec", ["autoencoder.py:tiny", "memory.py:tiny"])
def test_reference_init_matches_torch_embedding_and_linear(spec):
  model = build(spec, init="reference")
  vocab, d = model.head.kernel.shape[1], model.head.kernel.shape[0]
  embed_std, head_bound, head_std = torch_reference(vocab, d)
  towers = [model.encoder, model.decoder] if spec.startswith("memory") else [model.encoder]
  for tower in towers:
    assert float(np.std(tower.embed.embedding[...])) == pytest.approx(embed_std, rel=0.05)
  kernel = np.asarray(model.head.kernel[...])
  assert np.abs(kernel).max() <= d**-0.5 and np.abs(kernel).max() == pytest.approx(head_bound, rel=0.02)
  assert float(kernel.std()) == pytest.approx(head_std, rel=0.05)
  # The Llama blocks keep N(0, 0.02) in both conventions.
  encoder_blocks = model.encoder.stack.blocks
  assert float(np.std(encoder_blocks.attn.q.kernel[...])) == pytest.approx(0.02, rel=0.05)


def test_memjax_init_is_llama_for_transformers_and_the_same_for_mixers():
  model = build("autoencoder.py:tiny")
  assert float(np.std(model.encoder.embed.embedding[...])) == pytest.approx(0.02, rel=0.05)
  assert float(np.std(model.head.kernel[...])) == pytest.approx(0.02, rel=0.05)
  for convention in ("memjax", "reference"):  # mixers are torch modules in the reference too
    mixer = build("autoencoder.py:tiny,family=mixer", init=convention)
    assert float(np.std(mixer.encoder.embed.embedding[...])) == pytest.approx(1.0, rel=0.05)
  with pytest.raises(ValueError, match="init must be one of"):
    build("autoencoder.py:tiny", init="xavier")


def test_paper_presets_use_the_reference_init():
  for spec in ("autoencoder.py:paper", "probe.py:paper", "memory.py:paper"):
    assert load_config(spec).init == "reference"
  for spec in ("autoencoder.py:small", "probe.py:small", "memory.py:small", "clm.py:paper"):
    assert load_config(spec).init == "memjax"
