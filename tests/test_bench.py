import pytest

from memjax import bench


def test_bench_reports_throughput_flops_mfu_and_memory(tiny):
  result = bench.bench_train(tiny("clm.py:tiny"), steps=2, repeats=1, warmup=1)
  assert result["tokens_per_s"] > 0 and result["step_ms"] > 0
  assert 0 < result["mfu"] < 1 and result["matmul_peak_gflops"] > 0
  assert result["memory_mb"]["temp"] > 0 and result["devices"] == 8


def test_flops_per_token_counts_matmuls_and_token_mixing(tiny):
  cfg = tiny("clm.py:bench")
  from flax import nnx

  from memjax import models
  from memjax.training.state import split_model

  _, params = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
  # 4 layers x (4 d^2 attention + 3 * 4 d^2 MLP) + head d x V, and causal attention 6 T d per layer.
  expected = 6 * (4 * 16 * 256**2 + 256 * 8000) + 4 * 6 * 256 * 256
  assert bench.model_flops_per_token(params, cfg) == expected


def test_only_language_models_are_timed(tiny):
  from absl import app

  with pytest.raises(app.UsageError):
    bench.bench_train(tiny("autoencoder.py:tiny"), steps=1, repeats=1, warmup=0)
