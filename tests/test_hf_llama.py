import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

from memjax.models import hf_llama
from memjax.models.config import StackConfig
from memjax.models.stack import TokenEncoder

HF_CONFIG = dict(model_type="llama", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=50, rms_norm_eps=1e-6,
                 rope_theta=10000.0, max_position_embeddings=64)


def save_hf_model(directory, params, cfg: StackConfig):
  """Writes memjax TokenEncoder parameters under Hugging Face Llama names (the inverse mapping)."""
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
  params = nnx.to_pure_dict(nnx.state(TokenEncoder(cfg, rngs=nnx.Rngs(0)), nnx.Param))
  save_hf_model(tmp_path / "model", params, cfg)
  loaded_cfg, loaded = hf_llama.load(tmp_path / "model")
  assert loaded_cfg == cfg
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(params))


def test_matches_transformers_llama_hidden_states(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  config = {k: v for k, v in HF_CONFIG.items() if k != "model_type"}
  reference = transformers.LlamaModel(transformers.LlamaConfig(**config)).eval()
  with torch.no_grad():
    for p in reference.parameters():
      p.normal_(0, 0.2)
  reference.save_pretrained(tmp_path / "model", safe_serialization=True)
  tokens = np.random.RandomState(0).randint(0, 50, (2, 12))
  with torch.no_grad():
    expected = reference(torch.tensor(tokens)).last_hidden_state.numpy()
  cfg, params = hf_llama.load(tmp_path / "model")
  encoder = nnx.merge(nnx.graphdef(nnx.eval_shape(lambda: TokenEncoder(cfg, rngs=nnx.Rngs(0)))), params)
  np.testing.assert_allclose(encoder(jnp.asarray(tokens)), expected, atol=1e-5)


def test_unsupported_checkpoints_are_refused(tmp_path):
  with pytest.raises(ValueError, match="RoPE scaling"):
    hf_llama.architecture(HF_CONFIG | {"rope_scaling": {"rope_type": "llama3", "factor": 32.0}})
  with pytest.raises(FileNotFoundError, match="config.json"):
    hf_llama.load(tmp_path)
