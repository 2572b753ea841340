"""Training-step benchmark: tokens/s, step time, FLOPs per token, MFU and compiled memory.

  python -m memjax.bench train --config=configs/clm.py:bench [--config.model.family=mixer]

Prints one JSON line. MFU is measured against a float32 matmul peak timed in the same process (so
it is a fraction of what this machine's XLA can do, not of a datasheet number). The step is the real
jitted, sharded, donated train step of `memjax.train` on a batch of real data.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from memjax import cli, runtime

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/clm.py:bench", lock_config=True)
  flags.DEFINE_integer("steps", 20, "Timed steps per repeat.")
  flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
  flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
  flags.mark_flags_as_required(["config"])


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
  """float32 FLOP/s of a large jitted matmul: the attainable peak of this backend."""
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda x, y: x @ y)
  matmul(a, a).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * size**3 / min(times)


def model_flops_per_token(params: Any, cfg: Any) -> float:
  """Training FLOPs per token of a causal LM: 6 per matmul parameter plus token mixing.

  Matmul parameters are the Dense kernels, the head's included; embedding lookups and norms are not
  matmuls (PaLM appendix B). Token mixing adds, per layer,
  6 * n_ctx * d_model for causal attention (QK^T and AV, forward and backward, halved by the mask)
  and 6 * n_ctx * d_model * kernel for a mixer's dense T x T maps (counted here, not as parameters).
  """
  import jax

  kernels = [x for path, x in jax.tree_util.tree_leaves_with_path(params)
             if jax.tree_util.keystr(path).endswith("['kernel']")]  # every Dense layer, head included
  matmul_params = sum(x.size for x in kernels)
  model = cfg.model
  per_layer = 6 * cfg.data.n_ctx * model.d_model
  mixing = per_layer * (1 if model.family == "transformer" else model.mixer_kernel)
  return 6 * matmul_params + model.n_layers * mixing


def bench_train(cfg: Any, *, steps: int = 20, repeats: int = 3, warmup: int = 3) -> dict[str, Any]:
  """Times the train step of `cfg`: the median over `repeats` of the mean time of `steps` steps."""
  import jax

  from memjax.training.loop import Trainer

  if cfg.task != "clm":
    raise app.UsageError("`memjax.bench train` times causal LMs: use configs/clm.py (e.g. :bench)")
  trainer = Trainer(cfg)
  state, batch = trainer.init_state(), trainer.next_batch()
  compiled = trainer.train_step(trainer.stages[0].objective).lower(state, batch).compile()
  memory = compiled.memory_analysis()
  for _ in range(warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(state)
  step_times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    step_times.append((time.perf_counter() - start) / steps)
  step_s = statistics.median(step_times)
  tokens = cfg.train.batch_size * cfg.data.n_ctx
  flops_per_token = model_flops_per_token(state.params, cfg)
  peak = matmul_peak_flops()
  return {
      "benchmark": "train_step", "task": cfg.task,
      "family": cfg.model.family if cfg.task == "clm" else cfg.encoder.family,
      "tokens_per_s": round(tokens / step_s, 1), "step_ms": round(1e3 * step_s, 2),
      "flops_per_token": flops_per_token, "mfu": round(flops_per_token * tokens / step_s / peak, 4),
      "matmul_peak_gflops": round(peak / 1e9, 1),
      "memory_mb": {k: round(getattr(memory, f"{k}_size_in_bytes") / 2**20, 2)
                    for k in ("argument", "output", "temp", "generated_code")},
      "params": int(sum(x.size for x in jax.tree.leaves(state.params))),
      "batch": cfg.train.batch_size, "n_ctx": cfg.data.n_ctx, "compute_dtype": cfg.train.compute_dtype,
      "loss": float(metrics["loss"]), "devices": jax.device_count(), "backend": jax.default_backend(),
      "jax": jax.__version__, "cpu": platform.processor() or platform.machine(),
  }


def main(argv: list[str]) -> None:
  if argv[1:] != ["train"]:
    raise app.UsageError("usage: python -m memjax.bench train --config=configs/clm.py:bench")
  tuned = runtime.tune()  # before jax is imported
  result = bench_train(FLAGS.config, steps=FLAGS.steps, repeats=FLAGS.repeats, warmup=FLAGS.warmup)
  print(json.dumps(result | tuned))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
