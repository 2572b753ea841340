"""Hugging Face Llama <-> memjax: parity with transformers (torch CPU, the `parity` extra; no skips)."""

import json

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models as tokenizer_models

from memjax import cli, convert, export, score
from memjax.models import hf_llama
from memjax.models.config import StackConfig
from memjax.models.stack import Tower
from memjax.training import encoders, run_folder

VOCAB = 50
HF_CONFIG = dict(model_type="llama", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB, rms_norm_eps=1e-5,
                 rope_theta=10000.0, max_position_embeddings=64)
# Llama 3.x scaling with a 16-token original context: at 12 positions it changes every frequency
# but the highest (head_dim 8 has wavelengths 6, 63, 628 and 6283 positions).
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}
LINEAR = {"rope_type": "linear", "factor": 4.0}


def tokenizer_json(vocab=VOCAB):
  return Tokenizer(tokenizer_models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0")).to_str()


def save_hf_model(directory, params, cfg: StackConfig):
  """Writes memjax Tower parameters under Hugging Face Llama names (the inverse mapping)."""
  weights = {"model.embed_tokens.weight": params["embed"]["embedding"],
             "model.norm.weight": params["stack"]["norm"]["scale"]}
  for path, (name, transpose) in hf_llama.LAYER_WEIGHTS.items():
    stacked = params["stack"]["blocks"]
    for key in path:
      stacked = stacked[key]
    for i in range(cfg.n_layers):
      weights[f"model.layers.{i}.{name}"] = np.ascontiguousarray(stacked[i].T if transpose else stacked[i])
  directory.mkdir(parents=True, exist_ok=True)
  save_file({k: np.asarray(v, np.float32) for k, v in weights.items()}, str(directory / "model.safetensors"))
  (directory / "config.json").write_text(json.dumps(HF_CONFIG))


def test_round_trip_through_hugging_face_names(tmp_path):
  cfg = hf_llama.architecture(HF_CONFIG)
  assert (cfg.d_model, cfg.n_layers, cfg.kv_heads, cfg.hidden_dim, cfg.vocab_size) == (32, 2, 2, 48, 50)
  params = nnx.to_pure_dict(nnx.state(Tower(cfg, rngs=nnx.Rngs(0)), nnx.Param))
  save_hf_model(tmp_path / "model", params, cfg)
  loaded_cfg, tie = hf_llama.read_config(hf_llama.read_hf_config(tmp_path / "model"))
  assert loaded_cfg == cfg
  loaded = hf_llama.read_params(hf_llama.open_weights(tmp_path / "model"), cfg, tie, head=False)["decoder"]
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(params))


def hf_model(directory, *, tie, rope, dtype=torch.float32):
  """A random LlamaForCausalLM (all weights, norms included, ~N(0, 0.2)) saved with its tokenizer."""
  torch.manual_seed(0)
  config = transformers.LlamaConfig(**{k: v for k, v in HF_CONFIG.items() if k != "model_type"},
                                    tie_word_embeddings=tie, rope_scaling=dict(rope) if rope else None)
  model = transformers.LlamaForCausalLM(config).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0, 0.2)
  model.to(dtype).save_pretrained(directory, safe_serialization=True)
  (directory / "tokenizer.json").write_text(tokenizer_json())
  return model


def write_layout(directory, layout, rope):
  """Rewrites config.json with the RoPE settings at the top level or under `rope_parameters`."""
  config = json.loads((directory / "config.json").read_text())
  for key in ("rope_scaling", "rope_parameters", "rope_theta"):
    config.pop(key, None)
  if layout == "top-level":
    config |= {"rope_theta": 10000.0, "rope_scaling": dict(rope)}
  else:
    config |= {"rope_parameters": dict(rope) | {"rope_theta": 10000.0}}
  (directory / "config.json").write_text(json.dumps(config))


def hf_logits(model, tokens):
  with torch.no_grad():
    return model(torch.tensor(tokens, dtype=torch.long)).logits.float().numpy()


TOKENS = np.random.RandomState(0).randint(0, VOCAB, (3, 12))


@pytest.mark.parametrize("tie,rope", [(True, LLAMA3), (False, LLAMA3), (False, LINEAR)],
                         ids=["tied-llama3", "untied-llama3", "untied-linear"])
def test_converted_model_matches_transformers_in_both_layouts_and_back(tmp_path, tie, rope):
  model = hf_model(tmp_path / "hf", tie=tie, rope=rope)
  expected = hf_logits(model, TOKENS)
  unscaled = hf_model(tmp_path / "unscaled", tie=tie, rope=None)
  assert np.abs(hf_logits(unscaled, TOKENS) - expected).max() > 1e-2  # 1000x the tolerance: scaling matters
  np.save(tmp_path / "tokens.npy", TOKENS)
  for layout in ("top-level", "rope_parameters"):
    write_layout(tmp_path / "hf", layout, rope)
    cli.call(convert, ["hf-llama", str(tmp_path / "hf"), str(tmp_path / layout)])
    cli.call(score, [f"--checkpoint={tmp_path / layout}", f"--tokens={tmp_path / 'tokens.npy'}",
                f"--out={tmp_path / 'logits.npy'}", "--batch_size=2"])
    got = np.load(tmp_path / "logits.npy")
    assert got.dtype == np.float32 and got.shape == (3, 12, VOCAB)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=layout)
  # memjax -> HF -> transformers.
  cli.call(convert, ["to-hf", str(tmp_path / "rope_parameters"), str(tmp_path / "back")])
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
  assert reloaded.config.tie_word_embeddings == tie
  np.testing.assert_allclose(hf_logits(reloaded, TOKENS), expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_checkpoints_are_read_exactly_and_the_trunk_loads_as_an_encoder(tmp_path):
  model = hf_model(tmp_path / "hf", tie=False, rope=LLAMA3, dtype=torch.bfloat16)
  _, _, params, _ = hf_llama.load_causal_lm(tmp_path / "hf")
  expected = model.model.layers[1].self_attn.k_proj.weight.detach().float().numpy().T
  np.testing.assert_array_equal(params["decoder"]["stack"]["blocks"]["attn"]["k"]["kernel"][1], expected)
  # The converted folder as `encoder.checkpoint` (a frozen encoder), and its trunk exported alone
  # (memjax.export): read as a run reads them, both give LlamaModel's hidden states.
  cli.call(convert, ["hf-llama", str(tmp_path / "hf"), str(tmp_path / "converted")])
  cli.call(export, [f"--workdir={tmp_path / 'converted'}", f"--out={tmp_path / 'encoder'}"])
  reference = transformers.LlamaModel.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
  with torch.no_grad():  # (a float32 model: casting the bf16 one would keep its bf16 RoPE buffer)
    hidden = reference(torch.tensor(TOKENS)).last_hidden_state.numpy()
  for folder in (tmp_path / "converted", tmp_path / "encoder"):
    source = encoders.locate(str(folder))
    assert source.architecture["rope_type"] == "llama3"
    cfg = StackConfig(**source.architecture)
    abstract = nnx.eval_shape(lambda: Tower(cfg, rngs=nnx.Rngs(0)))
    target = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
    trunk = encoders.load(str(folder), cfg, run_folder.tokenizer_digest(folder), target)
    encoder = nnx.merge(nnx.graphdef(abstract), trunk)
    np.testing.assert_allclose(encoder(TOKENS), hidden, rtol=1e-5, atol=1e-5, err_msg=str(folder))


def refused(config_changes, match):
  with pytest.raises(ValueError, match=match):
    hf_llama.read_config(HF_CONFIG | config_changes)


def test_what_memjax_cannot_represent_is_refused_by_name(tmp_path):
  refused({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, r"rope_scaling.rope_type='yarn'")
  refused({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}},
          r"rope_parameters.rope_type='dynamic'")
  refused({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "has no 'low_freq_factor'")
  refused({"rope_scaling": LINEAR | {"attention_factor": 2.0}}, "attention_factor")
  refused({"attention_bias": True}, "attention_bias")
  refused({"mlp_bias": True}, "mlp_bias")
  refused({"hidden_act": "gelu"}, "hidden_act='gelu'")
  refused({"head_dim": 16}, "head_dim=16")
  refused({"model_type": "mistral"}, "model_type='mistral'")
  refused({"architectures": ["LlamaForSequenceClassification"]}, "architectures")
  hf_model(tmp_path / "hf", tie=False, rope=None)
  save_file({"model.layers.0.self_attn.q_proj.bias": np.zeros(32, np.float32)},
            str(tmp_path / "hf" / "model-bias.safetensors"))
  with pytest.raises(SystemExit, match="q_proj.bias"):
    cli.call(convert, ["hf-llama", str(tmp_path / "hf"), str(tmp_path / "out")])
  with pytest.raises(SystemExit, match="no config.json"):
    cli.call(convert, ["hf-llama", str(tmp_path), str(tmp_path / "out")])


def test_a_config_saved_by_transformers_reads_as_the_published_one():
  """transformers' LlamaConfig writes rope_theta into the rope_scaling it is given; the config.json it
  saves must read as the published config.json it came from."""
  import copy

  saved = transformers.LlamaConfig(**copy.deepcopy(hf_llama.LLAMA_3_2_1B)).to_dict()
  assert hf_llama.read_config(saved) == hf_llama.read_config(hf_llama.LLAMA_3_2_1B)
  assert hf_llama.read_config(saved)[0].rope_theta == 500000.0  # the published value, by hand
  refused({"rope_scaling": LINEAR | {"rope_theta": 1.0}}, "disagrees with rope_theta")
