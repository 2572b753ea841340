"""Benchmarks: the training step, and generation against context length.

  python -m memjax.bench train --config=configs/clm.py:bench [--config.model.family=mixer]
  python -m memjax.bench generate [--size=bench] [--contexts=1024,2048,4096,8192,16384] [--chunk=256]

`train` prints one JSON line. MFU is measured against a float32 matmul peak timed in the same process (so
it is a fraction of what this machine's XLA can do, not of a datasheet number). The step is the real
jitted, sharded, donated train step of `memjax.train` on a batch of real data.

`generate` prints one JSON line per model (memory | full | recurrent) and context length (prefill
time, decode latency and tokens/s, KV-cache bytes; see memjax/generation/benchmark.py), one line of
ratios per length, then the train step of a memory model with a trainable and a frozen encoder.
"""

from __future__ import annotations

import json
import pathlib
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
  flags.DEFINE_string("size", "bench", "generate: decoder size preset (memjax.config.SIZES).")
  flags.DEFINE_list("contexts", ["1024", "2048", "4096", "8192", "16384"], "generate: context lengths.")
  flags.DEFINE_integer("chunk", 256, "generate: chunk length of the memory and recurrent models.")
  flags.DEFINE_list("models", ["memory", "full", "recurrent"], "generate: models to time.")
  flags.DEFINE_enum("quantize", "none", ["none", "bf16", "int8", "int4", "binary"],
                    "generate: the memory model's memory storage (memjax.models.quantize).")
  flags.DEFINE_integer("full_prefill_max", 0, "generate: skip the full-context prefill above this "
                       "many tokens (0: never), decoding from a zero cache of the same size.")
  flags.DEFINE_integer("train_steps", 5, "generate: timed memory-model train steps per repeat (0: skip).")


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


def time_train_step(trainer: Any, *, steps: int, repeats: int, warmup: int):
  """(median seconds per step, compiled memory analysis, final state, last metrics)."""
  import jax

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
  return statistics.median(step_times), memory, state, metrics


def bench_train(cfg: Any, *, steps: int = 20, repeats: int = 3, warmup: int = 3) -> dict[str, Any]:
  """Times the train step of `cfg`: the median over `repeats` of the mean time of `steps` steps."""
  import jax

  from memjax.training.loop import Trainer

  if cfg.task != "clm":
    raise app.UsageError("`memjax.bench train` times causal LMs: use configs/clm.py (e.g. :bench)")
  trainer = Trainer(cfg)
  step_s, memory, state, metrics = time_train_step(trainer, steps=steps, repeats=repeats, warmup=warmup)
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


def bench_frozen_encoder(size: str, chunk: int, *, steps: int, repeats: int, warmup: int):
  """The train step of a 4-chunk memory model (encoder half the decoder's width) with a trainable
  and with a frozen encoder: a frozen one runs forward only (no encoder gradients, no moments)."""
  from memjax import config as mc
  from memjax.training.loop import Trainer

  for frozen in (False, True):
    cfg = mc.load(pathlib.Path(__file__).parent.parent / "configs" / "memory.py", "small")
    arch = mc.SIZES[size]
    for tower, width in (("decoder", arch["d_model"]), ("encoder", arch["d_model"] // 2)):
      cfg[tower].update(d_model=width, n_layers=arch["n_layers"], n_heads=arch["n_heads"])
    cfg.data.update(n_ctx=4 * chunk, vocab_size=arch["vocab_size"])
    cfg.train.update(batch_size=8, progress=False)
    cfg.encoder.frozen = frozen
    step_s, memory, _, _ = time_train_step(Trainer(cfg), steps=steps, repeats=repeats, warmup=warmup)
    yield {"benchmark": "memory_train_step", "encoder": "frozen" if frozen else "trainable",
           "step_ms": round(1e3 * step_s, 1), "tokens_per_s": round(8 * 4 * chunk / step_s, 1),
           "temp_memory_mb": round(memory.temp_size_in_bytes / 2**20, 1), "batch": 8,
           "n_ctx": 4 * chunk, "d_decoder": arch["d_model"], "d_encoder": arch["d_model"] // 2,
           "n_layers": arch["n_layers"]}


def bench_generate(tuned: dict[str, Any]) -> None:
  import jax

  from memjax import config as mc
  from memjax.generation import benchmark
  from memjax.models.config import StackConfig

  if FLAGS.size not in mc.SIZES:
    raise app.UsageError(f"--size must be one of {sorted(mc.SIZES)}")
  arch = mc.SIZES[FLAGS.size]
  decoder = StackConfig(family="transformer", d_model=arch["d_model"], n_layers=arch["n_layers"],
                        n_heads=arch["n_heads"], length=1, vocab_size=arch["vocab_size"])
  encoder = decoder.replace(d_model=arch["d_model"] // 2)
  machine = {"size": FLAGS.size, "d_model": decoder.d_model, "n_layers": decoder.n_layers,
             "backend": jax.default_backend(), "jax": jax.__version__,
             "cpu": platform.processor() or platform.machine()} | tuned
  by_length: dict[int, dict[str, dict[str, Any]]] = {}
  results = benchmark.run(decoder, encoder, [int(c) for c in FLAGS.contexts], chunk=FLAGS.chunk,
                          models=tuple(FLAGS.models), repeats=FLAGS.repeats,
                          full_prefill_max=FLAGS.full_prefill_max, quantize=FLAGS.quantize)
  for result in results:
    print(json.dumps(result | machine), flush=True)
    by_length.setdefault(result["context_tokens"], {})[result["model"]] = result
    row = by_length[result["context_tokens"]]
    if "memory" in row and "full" in row and len(row) == len(FLAGS.models):
      full, memory = row["full"], row["memory"]
      print(json.dumps({"benchmark": "generate_ratio", "context_tokens": result["context_tokens"],
                        "decode_speedup": round(full["decode_ms_per_token"] / memory["decode_ms_per_token"], 2),
                        "kv_cache_ratio": round(full["kv_cache_bytes"] / memory["kv_cache_bytes"], 1),
                        "prefill_speedup": (round(full["prefill_s"] / memory["prefill_s"], 2)
                                            if full["prefill_s"] else None)}), flush=True)
  if FLAGS.train_steps:
    for result in bench_frozen_encoder(FLAGS.size, FLAGS.chunk, steps=FLAGS.train_steps,
                                       repeats=FLAGS.repeats, warmup=2):
      print(json.dumps(result | machine), flush=True)


def main(argv: list[str]) -> None:
  if argv[1:] not in (["train"], ["generate"]):
    raise app.UsageError("usage: python -m memjax.bench train --config=configs/clm.py:bench\n"
                         "       python -m memjax.bench generate [--contexts=1024,...,16384]")
  tuned = runtime.tune()  # before jax is imported
  if argv[1] == "generate":
    bench_generate(tuned)
    return
  if FLAGS.config is None:
    raise app.UsageError("`memjax.bench train` needs --config, e.g. --config=configs/clm.py:bench")
  result = bench_train(FLAGS.config, steps=FLAGS.steps, repeats=FLAGS.repeats, warmup=FLAGS.warmup)
  print(json.dumps(result | tuned))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
