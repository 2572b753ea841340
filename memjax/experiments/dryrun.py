"""Paper-scale dry run: every run of an experiment built abstractly, sized, compiled, never trained.

For each run: parameters (trainable and frozen), FLOPs per trained token (XLA's cost analysis of the
real jitted train step, per objective of its curriculum, weighted by the stage lengths; frozen
encoders get no backward pass, as in training), tokens to train, the compiled per-device memory of
one train step on a mesh of `devices` devices (argument + output + temporaries - donated aliases,
from `compiled.memory_analysis()`), and accelerator-hours = total FLOPs / (peak x MFU). Nothing is
initialized (eval_shape only) and no data is read: the batch is abstract.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any, Sequence

from memjax.experiments import suite

DRY_ROOT = pathlib.Path("/dry-run")  # runs are only planned, so their paths are never touched


def _signature(cfg, objective: str) -> str:
  """What determines one compiled train step (not its length, schedule or checkpoint paths)."""
  parts = {key: cfg[key].to_dict() for key in ("model", "encoder", "decoder", "memory") if key in cfg}
  for part in parts.values():
    part.pop("checkpoint", None)
  parts |= {"task": cfg.task, "n_ctx": cfg.data.n_ctx, "batch": cfg.train.batch_size,
            "dtype": cfg.train.compute_dtype, "objective": objective,
            "objective_cfg": cfg.objective.to_dict() | {"stages": ""}}
  return json.dumps(parts, sort_keys=True)


def _matmul_params(tree: Any) -> int:
  import jax

  return int(sum(math.prod(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(tree)
                 if jax.tree_util.keystr(path).endswith("['kernel']")))


def analytic_flops_per_token(cfg, state, objective: str) -> float:
  """Training FLOPs per input token by the 6N rule (bench.model_flops_per_token), per tower.

  Each tower counts 2 FLOPs per matmul parameter per position it processes forward, and token
  mixing of 2 * S * d (causal attention, QK^T and AV halved by the mask) or 2 * S * d * kernel (a
  masked mixer's maps) per position and layer for sequences of S positions; trainable towers are
  counted 3x (forward and backward), frozen ones 1x. The combined objective runs two views.
  """
  from memjax import models
  from memjax.models.config import stack_config

  T = cfg.data.n_ctx
  kind = cfg.memory.kind if cfg.task == "memory" else ""
  encoder = models.encoder_config(cfg) if kind not in ("none", "full", "recurrent") else None
  if cfg.task == "memory" and kind != "full":
    K = cfg.memory.chunks
    dec_len = models.decoder_length(cfg)
    dec_calls = 1 if kind == "oracle" else K
    enc_calls = 1 if kind == "oracle" else K - 1
    decoder = stack_config(cfg.decoder, length=dec_len, vocab_size=cfg.data.vocab_size)
  elif cfg.task == "autoencoder":
    dec_calls = enc_calls = 1
    decoder = stack_config(cfg.decoder, length=T, vocab_size=cfg.data.vocab_size)
  else:  # a causal LM, or a full-context memory model (a causal LM over the whole input)
    dec_calls = enc_calls = 1
    decoder = (models.encoder_config(cfg) if cfg.task == "clm"
               else stack_config(cfg.decoder, length=T, vocab_size=cfg.data.vocab_size))
    encoder = None
  total = 0.0
  for group, params, passes in [(k, v, 3) for k, v in state.params.items()] + \
                               [(k, v, 1) for k, v in state.frozen.items()]:
    is_encoder = group == "encoder" and encoder is not None
    tower = encoder if is_encoder else decoder
    calls = enc_calls if is_encoder else dec_calls
    positions = calls * tower.length
    total += passes * 2 * _matmul_params(params) * positions
    if group in ("encoder", "decoder"):  # the towers with blocks
      mixing = 2 * tower.length * tower.d_model * (1 if tower.family == "transformer" else tower.mixer_kernel)
      total += passes * mixing * tower.n_layers * positions
  views = 2 if objective == "combined" else 1
  return views * total / T


def size_run(spec: suite.RunSpec, devices: Sequence[Any], *, compile_memory: bool,
             cache: dict[str, dict[str, Any]], lower: bool = True) -> dict[str, Any]:
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from memjax import models
  from memjax.data import SpecialIds
  from memjax.objectives import curriculum, lookup
  from memjax.training import loop, optim, sharding, steps
  from memjax.training.state import split_model

  cfg = spec.cfg
  graphdef, params = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
  stages = curriculum.parse(cfg.objective.stages, cfg.train.steps)
  restart = bool(cfg.objective.get("restart_stages", False))  # each stage its own AdamW and schedule
  tx = optim.optimizer(cfg.train, stages[0].steps if restart else None)
  state = jax.eval_shape(lambda: loop._init_state(cfg, tx))
  special = SpecialIds(pad=0, eos=0, blank=1, sep=2)  # ids do not change shapes or FLOPs
  built = lookup.resolve_all([s.objective for s in stages], cfg, special=special)
  mesh = sharding.make_mesh(cfg.mesh, list(devices))
  shardings = sharding.tree_shardings(state, mesh)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
  B, T = cfg.train.batch_size, cfg.data.n_ctx
  batch_sharding = sharding.batch_sharding(mesh)
  batch = {"tokens": jax.ShapeDtypeStruct((B, T), jnp.int32, sharding=batch_sharding),
           "mask": jax.ShapeDtypeStruct((B, T), jnp.float32, sharding=batch_sharding)}
  per_objective = {}
  for stage in stages:
    name = stage.objective
    if name in per_objective:
      continue
    key = _signature(cfg, name)
    if not lower:
      per_objective[name] = {"step_flops": analytic_flops_per_token(cfg, state, name) * B * T}
      continue
    if key not in cache:
      stage_tx = optim.optimizer(cfg.train, stage.steps) if restart else tx  # same state layout
      schedule = optim.schedule(cfg.train, stage.steps if restart else None)
      step = steps.make_train_step(graphdef, built[name], stage_tx, schedule,
                                   loop.COMPUTE_DTYPES[cfg.train.compute_dtype])
      start = time.perf_counter()
      lowered = steps.jit_train_step(step, shardings, mesh).lower(abstract, batch)
      cost = lowered.cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      entry = {"step_flops": float(cost["flops"]),
               "analytic_step_flops": analytic_flops_per_token(cfg, state, name) * B * T}
      if compile_memory:
        memory = lowered.compile().memory_analysis()
        entry["memory_gib_per_device"] = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                                          + memory.temp_size_in_bytes - memory.alias_size_in_bytes) / 2**30
        entry["temp_gib_per_device"] = memory.temp_size_in_bytes / 2**30
      entry["build_seconds"] = time.perf_counter() - start
      cache[key] = entry
    per_objective[name] = cache[key]
  total_flops = sum((s.stop - s.start) * per_objective[s.objective]["step_flops"] for s in stages)
  tokens = cfg.train.steps * B * T
  count = lambda tree: int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))  # noqa: E731
  memories = [e["memory_gib_per_device"] for e in per_objective.values() if "memory_gib_per_device" in e]
  return {"run": spec.name, "task": cfg.task, "params": count(params), "trainable_params": count(state.params),
          "frozen_params": count(state.frozen), "steps": cfg.train.steps, "batch": B, "n_ctx": T,
          "tokens": tokens, "flops_per_token": total_flops / tokens, "total_flops": total_flops,
          "memory_gib_per_device": max(memories) if memories else None,
          "objectives": {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in per_objective.items()}}


def dry_run(experiments: Sequence[suite.Experiment], *, devices: int = 8, mfu: float = 0.4,
            peak_flops: float = 989e12, compile_memory: bool = True, lower: bool = True) -> dict[str, Any]:
  """Sizes every run of `experiments` at paper scale. `lower=False` skips XLA entirely (FLOPs by
  analytic_flops_per_token, no memory figure): seconds instead of minutes per run on a CPU."""
  import jax

  available = jax.devices()
  if len(available) < devices:
    raise ValueError(f"the dry run needs {devices} devices, jax sees {len(available)}; on CPU set "
                     f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} before jax starts")
  cache: dict[str, dict[str, Any]] = {}
  sized: dict[str, dict[str, Any]] = {}
  rows = []
  for experiment in experiments:
    for spec in experiment.plan("paper", DRY_ROOT):
      if spec.name not in sized:
        print(f"[dry run] {experiment.name}: {spec.name}", flush=True)
        sized[spec.name] = size_run(spec, available[:devices], compile_memory=compile_memory and lower,
                                    cache=cache, lower=lower)
        sized[spec.name]["accelerator_hours"] = sized[spec.name]["total_flops"] / (peak_flops * mfu) / 3600
      rows.append({"experiment": experiment.name} | sized[spec.name])
  totals = {"runs": len(sized), "devices": devices, "mfu": mfu, "peak_tflops": peak_flops / 1e12,
            "flops": "XLA cost analysis of the train step" if lower else "analytic 6N rule",
            "tokens": sum(r["tokens"] for r in sized.values()),
            "accelerator_hours": sum(r["accelerator_hours"] for r in sized.values()),
            "max_memory_gib_per_device": max((r["memory_gib_per_device"] for r in sized.values()
                                              if r["memory_gib_per_device"] is not None), default=None),
            "by_experiment": {e.name: sum(r["accelerator_hours"] for r in rows if r["experiment"] == e.name)
                              for e in experiments}}
  return {"rows": rows, "totals": totals}


def table(report: dict[str, Any]) -> str:
  return suite.markdown_table(
      ["experiment", "run", "params", "frozen", "FLOPs/token", "tokens", "GiB/device", "accel.-hours"],
      [[r["experiment"], r["run"], f"{r['params'] / 1e6:.1f}M", f"{r['frozen_params'] / 1e6:.1f}M",
        f"{r['flops_per_token']:.3g}", f"{r['tokens']:.3g}",
        None if r["memory_gib_per_device"] is None else f"{r['memory_gib_per_device']:.2f}",
        f"{r['accelerator_hours']:.1f}"] for r in report["rows"]])
