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
import pathlib
import time
from typing import Any, Sequence

from memjax.experiments import reporting, suite

DRY_ROOT = pathlib.Path("/dry-run")  # runs are only planned, so their paths are never touched


def _signature(cfg, objective: str) -> str:
  """What determines one compiled train step (not its length, schedule or checkpoint paths)."""
  parts = {key: cfg[key].to_dict() for key in ("model", "encoder", "decoder", "memory") if key in cfg}
  for part in parts.values():
    part.pop("checkpoint", None)
  parts |= {"task": cfg.task, "n_ctx": cfg.data.n_ctx, "batch": cfg.train.batch_size,
            "dtype": cfg.train.compute_dtype, "microbatches": cfg.train.get("microbatches", 1),
            "mesh": cfg.mesh.to_dict(), "objective": objective,
            "objective_cfg": cfg.objective.to_dict() | {"stages": ""}}
  return json.dumps(parts, sort_keys=True)


def size_run(spec: suite.RunSpec, devices: Sequence[Any], *, compile_memory: bool,
             cache: dict[str, dict[str, Any]], lower: bool = True) -> dict[str, Any]:
  from memjax.models import flops
  from memjax.training import sharding, tpu_compile
  from memjax.training.program import Program, parameter_count

  cfg = spec.cfg
  program = Program(cfg, sharding.make_mesh(cfg.mesh, list(devices)))
  state = program.abstract_state
  B, T = cfg.train.batch_size, cfg.data.n_ctx
  per_objective = {}
  for stage in program.distinct_stages():
    name = stage.objective
    key = _signature(cfg, name)
    if not lower:
      per_objective[name] = {"step_flops": flops.analytic_flops_per_token(cfg, state, name) * B * T}
      continue
    if key not in cache:
      start = time.perf_counter()
      lowered = program.lower(stage)
      # XLA counts a loop's body once (scanned layers, microbatches): cost the same step unrolled,
      # which lowering alone (no compile) makes cheap.
      costed = (Program(tpu_compile.without_loops(cfg), program.mesh).lower(stage)
                if tpu_compile.loops(cfg) else lowered)
      cost = costed.cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      entry = {"step_flops": float(cost["flops"]),
               "analytic_step_flops": flops.analytic_flops_per_token(cfg, state, name) * B * T}
      if compile_memory:
        memory = lowered.compile().memory_analysis()
        entry["memory_gib_per_device"] = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                                          + memory.temp_size_in_bytes - memory.alias_size_in_bytes) / 2**30
        entry["temp_gib_per_device"] = memory.temp_size_in_bytes / 2**30
      entry["build_seconds"] = time.perf_counter() - start
      cache[key] = entry
    per_objective[name] = cache[key]
  total_flops = sum((s.stop - s.start) * per_objective[s.objective]["step_flops"] for s in program.stages)
  tokens = cfg.train.steps * B * T
  trainable, frozen = parameter_count(state.params), parameter_count(state.frozen)
  memories = [e["memory_gib_per_device"] for e in per_objective.values() if "memory_gib_per_device" in e]
  return {"run": spec.name, "task": cfg.task, "params": trainable + frozen, "trainable_params": trainable,
          "frozen_params": frozen, "steps": cfg.train.steps, "batch": B, "n_ctx": T,
          "tokens": tokens, "flops_per_token": total_flops / tokens, "total_flops": total_flops,
          "memory_gib_per_device": max(memories) if memories else None,
          "objectives": {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in per_objective.items()}}


# What a total's by_experiment adds up: each experiment's runs in full, so a run shared between
# experiments (a causal LM, an autoencoder, a memory model, their probes) is in every one that uses
# it, and their sum exceeds the total, which counts each distinct run once.
BY_EXPERIMENT_COUNTS = ("every run each experiment uses, shared runs in each experiment that uses them "
                        "(their sum exceeds the total, which counts each distinct run once)")


def dry_run(experiments: Sequence[suite.Experiment], *, devices: int = 8, mfu: float = 0.4,
            peak_flops: float = 989e12, compile_memory: bool = True, lower: bool = True) -> dict[str, Any]:
  """Sizes every run of `experiments` at paper scale. `lower=False` skips XLA entirely (FLOPs by
  memjax/models/flops.py, no memory figure): seconds instead of minutes per run on a CPU."""
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
                              for e in experiments},
            "by_experiment_counts": BY_EXPERIMENT_COUNTS}
  return {"rows": rows, "totals": totals}


def compile_for_tpu(experiments: Sequence[suite.Experiment], accelerator: str, *, num_slices: int = 1,
                    min_headroom: float = 0.1, journal: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Every distinct paper-scale run of `experiments` compiled for a TPU slice (memjax/training/
  tpu_compile.py): its steps, chip-hours for its token budget at the roofline step time, and the
  verdict of each step that does not fit. Runs whose steps compile alike (_signature) compile once.
  Chip-hours by experiment count the runs it shares with others; the total counts each run once.

  `journal`: a JSON-lines file that keeps each compiled signature as soon as it is compiled and is
  read back first, so a table of hours of compiles survives an interruption and resumes."""
  from memjax.objectives import curriculum
  from memjax.training import tpu_compile

  rows, steps, problems, cache, sized = [], [], [], {}, {}
  where = (accelerator, num_slices)
  if journal is not None and pathlib.Path(journal).exists():
    for line in pathlib.Path(journal).read_text().splitlines():
      entry = json.loads(line)
      if tuple(entry["slice"]) == where:
        cache[entry["signature"]] = [tpu_compile.CompiledStep(**step) for step in entry["steps"]]
  for experiment in experiments:
    for spec in experiment.plan("paper", DRY_ROOT):
      if spec.name not in sized:
        stages = curriculum.parse(spec.cfg.objective.stages, spec.cfg.train.steps)
        key = _signature(spec.cfg, ",".join(dict.fromkeys(s.objective for s in stages)))
        print(f"[tpu compile] {experiment.name}: {spec.name}" + (" (compiled alike before)" if key in cache else ""),
              flush=True)
        if key not in cache:
          cache[key] = tpu_compile.compile_run(spec.cfg, accelerator, num_slices)
          if journal is not None:
            with open(journal, "a") as f:
              f.write(json.dumps({"slice": where, "signature": key, "run": spec.name,
                                  "steps": [s.to_dict() for s in cache[key]]}) + "\n")
        by_objective = {s.objective: s for s in cache[key]}
        seconds = sum((s.stop - s.start) * by_objective[s.objective].roofline_step_seconds for s in stages)
        devices = cache[key][0].devices
        sized[spec.name] = {"run": spec.name, "chip_hours": seconds * devices / 3600,
                            "fits": all(s.fits for s in cache[key]), "steps": [s.to_dict() for s in cache[key]]}
        for step in cache[key]:
          steps.append((spec.name, step))
          verdict = tpu_compile.verdict(spec.cfg, step, min_headroom)
          if verdict:
            problems.append(f"{spec.name}: {verdict}")
      rows.append({"experiment": experiment.name} | sized[spec.name])
  totals = {"accelerator": accelerator, "num_slices": num_slices, "runs": len(sized),
            "compiled": len(cache), "chip_hours": sum(r["chip_hours"] for r in sized.values()),
            "by_experiment": {e.name: sum(r["chip_hours"] for r in rows if r["experiment"] == e.name)
                              for e in experiments},
            "by_experiment_counts": BY_EXPERIMENT_COUNTS}
  return {"rows": rows, "totals": totals, "problems": problems, "table": tpu_compile.table(steps)}


def table(report: dict[str, Any]) -> str:
  return reporting.markdown_table(
      ["experiment", "run", "params", "frozen", "FLOPs/token", "tokens", "GiB/device", "accel.-hours"],
      [[r["experiment"], r["run"], f"{r['params'] / 1e6:.1f}M", f"{r['frozen_params'] / 1e6:.1f}M",
        f"{r['flops_per_token']:.3g}", f"{r['tokens']:.3g}",
        None if r["memory_gib_per_device"] is None else f"{r['memory_gib_per_device']:.2f}",
        f"{r['accelerator_hours']:.1f}"] for r in report["rows"]])
