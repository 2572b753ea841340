"""Hugging Face BERT -> memjax bidirectional encoder: parity with transformers (torch CPU, no skips)."""

import json

import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors.numpy import save_file

from memjax import cli, convert, models
from memjax.models import hf_bert
from memjax.models.config import StackConfig
from memjax.models.stack import Tower
from memjax.training import encoders, run_folder

from tests.test_hf_llama import tokenizer_json

VOCAB = 50
HF_CONFIG = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 vocab_size=VOCAB, max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12)
TOKENS = np.random.RandomState(0).randint(0, VOCAB, (3, 12))
TOLERANCE = 1e-5  # float32, both sides: rtol and atol on hidden states of unit scale (LayerNorm outputs)


def hf_bert_model(directory, model_class=transformers.BertModel):
  """A random BERT (every weight, LayerNorms and the token-type table included, ~N(0, 0.2); LayerNorm
  scales around 1) saved as safetensors with a tokenizer."""
  torch.manual_seed(0)
  model = model_class(transformers.BertConfig(**HF_CONFIG)).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.normal_(1.0 if name.endswith("LayerNorm.weight") else 0.0, 0.2)
  model.save_pretrained(directory, safe_serialization=True)
  (directory / "tokenizer.json").write_text(tokenizer_json(VOCAB))
  return model


def memjax_encoder(folder):
  """The converted encoder as a probe loads it (encoders.locate / encoders.load)."""
  source = encoders.locate(str(folder))
  cfg = StackConfig(**(source.architecture | {"length": TOKENS.shape[1]}))
  abstract = nnx.eval_shape(lambda: Tower(cfg, rngs=nnx.Rngs(0)))
  target = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
  trunk = encoders.load(str(folder), cfg, run_folder.tokenizer_digest(folder), target)
  return nnx.merge(nnx.graphdef(abstract), trunk)


@pytest.mark.parametrize("model_class", [transformers.BertModel, transformers.BertForMaskedLM],
                         ids=["BertModel", "BertForMaskedLM"])
def test_converted_bert_matches_transformers_hidden_states(tmp_path, model_class):
  model = hf_bert_model(tmp_path / "hf", model_class)
  bert = model if model_class is transformers.BertModel else model.bert
  mask = np.ones_like(TOKENS)
  mask[1, :4] = 0  # left padding in one sequence: padded keys get no attention
  with torch.no_grad():
    expected = bert(torch.tensor(TOKENS), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
  cli.call(convert, ["bert", str(tmp_path / "hf"), str(tmp_path / "converted")])
  encoder = memjax_encoder(tmp_path / "converted")
  got = np.asarray(encoder(TOKENS, mask))
  np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE)
  # Not a tolerance too loose to tell: the mask, and the token-type row, each change the states.
  with torch.no_grad():
    unmasked = bert(torch.tensor(TOKENS)).last_hidden_state.numpy()
    other_segment = bert(torch.tensor(TOKENS), attention_mask=torch.tensor(mask),
                         token_type_ids=torch.ones_like(torch.tensor(TOKENS))).last_hidden_state.numpy()
  assert np.abs(unmasked[1] - expected[1]).max() > 100 * TOLERANCE
  assert np.abs(other_segment - expected).max() > 100 * TOLERANCE
  np.testing.assert_allclose(np.asarray(encoder(TOKENS)), unmasked, rtol=TOLERANCE, atol=TOLERANCE)


def test_what_memjax_cannot_represent_is_refused_by_name(tmp_path):
  for changes, match in [({"hidden_act": "gelu_new"}, "hidden_act='gelu_new'"),
                         ({"position_embedding_type": "relative_key"}, "relative_key"),
                         ({"is_decoder": True}, "is_decoder"), ({"model_type": "roberta"}, "roberta"),
                         ({"architectures": ["BertForSequenceClassification"]}, "architectures")]:
    with pytest.raises(ValueError, match=match):
      hf_bert.read_config(HF_CONFIG | changes)
  hf_bert_model(tmp_path / "hf")
  save_file({"encoder.layer.0.attention.self.distance_embedding.weight": np.zeros((31, 8), np.float32)},
            str(tmp_path / "hf" / "model-extra.safetensors"))
  with pytest.raises(SystemExit, match="distance_embedding"):
    cli.call(convert, ["bert", str(tmp_path / "hf"), str(tmp_path / "out")])
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  with pytest.raises(ValueError, match="max_positions=16"):
    StackConfig(**(hf_bert.read_config(config).to_dict() | {"length": 32}))


def test_a_bert_tower_is_never_built_as_a_causal_lm(tiny):
  cfg = tiny("clm.py:tiny")
  cfg.model.update(family="bert", max_positions=cfg.data.n_ctx)
  with pytest.raises(ValueError, match="bidirectional"):
    models.build_model(cfg, nnx.Rngs(0))
