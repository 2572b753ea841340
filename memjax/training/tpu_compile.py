"""Ahead-of-time compile of a run for a Cloud TPU slice, on any machine: no TPU, no data, no weights.

libtpu (`pip install 'memjax[tpu]'`) describes the slice's devices (`get_topology_desc`); the run's
Program is built on a mesh of them and each distinct train step of its curriculum is lowered for the
abstract state and batch and compiled by the real TPU compiler. Its memory analysis gives what one
chip must hold (HBM), its cost analysis the per-device FLOPs and bytes of one step, hence a roofline
step time max(FLOPs / peak, bytes / HBM bandwidth) and the MFU that time would give. A step that
does not fit is reported from the compiler's own error, with the knobs that shrink it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Any

import ml_collections

from memjax import accelerators

GIB = 2**30
# What the compiler says when a program exceeds HBM, e.g. "the total memory required for HLO
# temporaries (22.55G) exceeds available HBM (15.75G)".
_OOM = re.compile(r"required for (?P<what>[\w ]+?) \((?P<need>[\d.]+)(?P<unit>[KMGT])\) exceeds "
                  r"available HBM \((?P<have>[\d.]+)(?P<have_unit>[KMGT])\)")
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class LibTpuUnavailable(RuntimeError):
  """libtpu is not installed or cannot load here: no TPU compile is possible."""


def topology_devices(slice_: accelerators.Slice, num_slices: int = 1) -> list[Any]:
  """The abstract devices of `num_slices` slices of `slice_` (libtpu's topology description)."""
  # libtpu locks a file per machine; a compile-only client may share it with another process.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    from jax.experimental import topologies

    description = topologies.get_topology_desc(platform="tpu", topology_name=slice_.topology,
                                               num_slices=num_slices)
  except Exception as error:  # ImportError, or libtpu's own errors (missing, wrong version)
    raise LibTpuUnavailable(f"cannot describe TPU topology {slice_.topology} ({error}); install libtpu "
                            "with pip install 'memjax[tpu]'") from None
  return list(description.devices)


@dataclasses.dataclass
class CompiledStep:
  """One distinct train step of a run, compiled for a slice (sizes per device = per chip here:
  every supported generation presents one JAX device per chip)."""

  accelerator: str
  num_slices: int
  objective: str
  devices: int
  batch_per_device: int  # sequences of the global batch on one device
  fits: bool
  hbm_bytes_per_device: int
  hbm_bytes_per_chip: int
  hbm_capacity_bytes: int
  headroom_fraction: float
  state_bytes: int  # parameters, optimizer state, frozen parameters on one device
  temp_bytes: int
  output_bytes: int
  step_flops: float  # compiled, per device
  bytes_accessed: float  # compiled, per device
  model_flops: float  # by the 6N rule, per device (memjax/models/flops.py)
  roofline_step_seconds: float
  roofline_mfu: float
  tokens_per_s: float
  compile_seconds: float
  error: str = ""  # the compiler's message when the step does not fit
  # HBM bytes per step by memjax source (memjax/training/hbm_traffic.py), largest first
  traffic: dict[str, float] = dataclasses.field(default_factory=dict)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def compile_run(cfg: ml_collections.ConfigDict, accelerator: str, num_slices: int = 1, *,
                loop_costs: bool = True) -> list[CompiledStep]:
  """Every distinct train step of the run `cfg`, compiled for `num_slices` x `accelerator`.

  `loop_costs=False` takes the cost analysis of a looping step as it is (a loop body counted once:
  the FLOPs and roofline then undercount) instead of compiling three unrolled variants."""
  import jax

  from memjax.models import flops
  from memjax.training import memory_report, sharding
  from memjax.training.program import Program

  slice_ = accelerators.parse(accelerator)
  devices = topology_devices(slice_, num_slices)
  program = Program(cfg, sharding.make_mesh(cfg.mesh, devices))
  state_bytes = memory_report.device_bytes(program.sharded_abstract_state())
  chip, n = slice_.chip, len(devices)
  tokens = cfg.train.batch_size * cfg.data.n_ctx
  steps = []
  for stage in program.distinct_stages():
    model_flops = flops.analytic_flops_per_token(cfg, program.abstract_state, stage.objective) * tokens / n
    start = time.perf_counter()
    lowered = program.lower(stage)
    try:
      compiled, error = lowered.compile(), ""
    except jax.errors.JaxRuntimeError as failure:
      compiled, error = None, str(failure)
      if _OOM.search(error) is None:
        raise
    seconds = time.perf_counter() - start
    if compiled is not None:
      memory = compiled.memory_analysis()
      temp, output = memory.temp_size_in_bytes, memory.output_size_in_bytes
      hbm = (memory.argument_size_in_bytes + output + temp - memory.alias_size_in_bytes
             + memory.generated_code_size_in_bytes)
      step_flops, accessed, traffic = (_unrolled_cost(cfg, program.mesh, stage.objective)
                                       if loop_costs and loops(cfg) else _cost(compiled))
    else:  # the compiler stopped at its memory check: its figure, and no cost analysis
      match = _OOM.search(error)
      temp = int(float(match["need"]) * _UNITS[match["unit"]])
      output, hbm = 0, state_bytes + temp
      step_flops = accessed = float("nan")
      traffic = {}
    roofline = max(step_flops / chip.peak_bf16_flops, accessed / chip.hbm_bytes_per_s)
    steps.append(CompiledStep(
        accelerator=slice_.name, num_slices=num_slices, objective=stage.objective, devices=n,
        batch_per_device=cfg.train.batch_size // (program.mesh.shape["data"] * program.mesh.shape["fsdp"]),
        fits=compiled is not None and hbm <= chip.hbm_bytes, hbm_bytes_per_device=int(hbm),
        hbm_bytes_per_chip=int(hbm), hbm_capacity_bytes=chip.hbm_bytes,
        headroom_fraction=1 - hbm / chip.hbm_bytes, state_bytes=state_bytes, temp_bytes=int(temp),
        output_bytes=int(output), step_flops=step_flops, bytes_accessed=accessed, model_flops=model_flops,
        roofline_step_seconds=roofline, roofline_mfu=model_flops / (roofline * chip.peak_bf16_flops),
        tokens_per_s=tokens / roofline, compile_seconds=seconds, error=error, traffic=traffic))
  return steps


def _cost(compiled: Any) -> tuple[float, float, dict[str, float]]:
  """(FLOPs, bytes accessed, bytes by memjax source) per device of one compiled step."""
  from memjax.training import hbm_traffic

  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return (float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0)),
          hbm_traffic.breakdown(compiled.as_text()))


def _towers(cfg: ml_collections.ConfigDict) -> list[str]:
  return [key for key in ("model", "encoder", "decoder") if key in cfg]


def loops(cfg: ml_collections.ConfigDict) -> bool:
  """Whether the step loops (scanned layers, microbatches): XLA's cost analysis counts a loop's
  body once, whatever its trip count."""
  return cfg.train.get("microbatches", 1) > 1 or any(cfg[t].get("scan_layers") for t in _towers(cfg))


def without_loops(cfg: ml_collections.ConfigDict, batch_size: int | None = None,
                  depths: dict[str, int] | None = None) -> ml_collections.ConfigDict:
  """`cfg` with every tower unrolled (at `depths`, else its own depth) and one microbatch of
  `batch_size` (else the whole batch): the same step, with no loop for XLA's cost analysis to count once."""
  variant = ml_collections.ConfigDict(cfg.to_dict())
  variant.train.update(microbatches=1, batch_size=batch_size or cfg.train.batch_size)
  for tower in _towers(cfg):
    variant[tower].update(scan_layers=False, n_layers=(depths or {}).get(tower, cfg[tower].n_layers))
  return variant


def _unrolled_cost(cfg: ml_collections.ConfigDict, mesh: Any,
                   objective: str) -> tuple[float, float, dict[str, float]]:
  """(FLOPs, bytes accessed, bytes by source) per device of the step without loops, extrapolated from compiles of
  the same step with every tower unrolled at 1 layer, then each tower at 2: both grow linearly in
  each tower's depth. Microbatches are costed as one microbatch's batch, times their number (the
  optimizer update counted that often: a small overestimate)."""
  from memjax.training.program import Program

  towers, microbatches = _towers(cfg), cfg.train.get("microbatches", 1)

  def cost(deeper: str = "") -> tuple[float, float, dict[str, float]]:
    variant = without_loops(cfg, cfg.train.batch_size // microbatches,
                            {tower: 2 if tower == deeper else 1 for tower in towers})
    return _cost(Program(variant, mesh).lower(objective).compile())

  base = cost()
  total, traffic = list(base[:2]), dict(base[2])
  for tower in towers:
    deeper = cost(tower)
    for i in range(2):
      total[i] += (cfg[tower].n_layers - 1) * (deeper[i] - base[i])
    for source in deeper[2].keys() | base[2].keys():
      extra = deeper[2].get(source, 0.0) - base[2].get(source, 0.0)
      traffic[source] = traffic.get(source, 0.0) + (cfg[tower].n_layers - 1) * extra
  traffic = {k: v * microbatches for k, v in sorted(traffic.items(), key=lambda kv: -kv[1]) if v > 0}
  return total[0] * microbatches, total[1] * microbatches, traffic


def knobs(cfg: ml_collections.ConfigDict, step: CompiledStep) -> list[str]:
  """Config changes that shrink what one chip holds, most effective first for this step."""
  towers, per_device, found = _towers(cfg), step.batch_per_device, []
  if step.temp_bytes > step.state_bytes:  # activations dominate
    if any(cfg[t].get("remat", "none") != "full" for t in towers):
      found.append(" ".join(f"--config.{t}.remat=full" for t in towers)
                   + " (recompute each block in the backward pass)")
    microbatches = cfg.train.get("microbatches", 1)
    if per_device // microbatches > 1:
      found.append(f"--config.train.microbatches={2 * microbatches} (activations of "
                   f"{per_device // (2 * microbatches)} sequences per device at a time)")
  if cfg.mesh.fsdp != -1:
    found.append("--config.mesh.data=1 --config.mesh.fsdp=-1 (parameters and optimizer state "
                 "split over every device)")
  found.append(f"a smaller --config.train.batch_size (now {per_device} sequences per device)")
  return found


def verdict(cfg: ml_collections.ConfigDict, step: CompiledStep, min_headroom: float) -> str:
  """'' when the step fits with `min_headroom` of HBM to spare, else why not and what would help."""
  if step.fits and step.headroom_fraction >= min_headroom:
    return ""
  lines = [f"{step.objective} step on {step.accelerator}: needs {step.hbm_bytes_per_chip / GIB:.2f} GiB "
           f"per chip of {step.hbm_capacity_bytes / GIB:.2f} GiB HBM (wanted at least {min_headroom:.0%} "
           f"spare); largest: temporaries {step.temp_bytes / GIB:.2f} GiB, parameters and optimizer "
           f"state {step.state_bytes / GIB:.2f} GiB"]
  if step.error:
    lines.append("  compiler: " + _OOM.search(step.error).group(0))
  lines += ["  would help: " + knob for knob in knobs(cfg, step)]
  return "\n".join(lines)


def table(steps: list[CompiledStep] | list[tuple[str, CompiledStep]]) -> str:
  """One line per compiled step (optionally labelled by its run): HBM per chip against capacity,
  roofline time and MFU."""
  labelled = [s if isinstance(s, tuple) else ("", s) for s in steps]
  width = max([len(name) for name, _ in labelled] + [3]) if any(name for name, _ in labelled) else 0
  label = lambda name: f"{name:<{width}} " if width else ""  # noqa: E731
  rows = [label("run") + f"{'objective':<12} {'slice':<16} {'HBM/chip':>9} {'of':>6} {'spare':>6} "
          f"{'state':>7} {'temps':>7} {'TFLOP/step':>10} {'roofline':>9} {'MFU':>5} {'tokens/s':>10} "
          f"{'compile':>8}"]
  for name, s in labelled:
    where = s.accelerator + (f" x{s.num_slices}" if s.num_slices > 1 else "")
    rows.append(label(name) + f"{s.objective:<12} {where:<16} {s.hbm_bytes_per_chip / GIB:>8.2f}G "
                f"{s.hbm_capacity_bytes / GIB:>5.1f}G {s.headroom_fraction:>6.0%} {s.state_bytes / GIB:>6.2f}G "
                f"{s.temp_bytes / GIB:>6.2f}G {s.step_flops / 1e12:>10.2f} {s.roofline_step_seconds:>8.3f}s "
                f"{s.roofline_mfu:>5.0%} {s.tokens_per_s:>10.0f} {s.compile_seconds:>7.1f}s")
  return "\n".join(rows)


def traffic_table(step: CompiledStep, top: int = 8) -> str:
  """Where one step's HBM bytes come from: its `top` memjax sources and the rest, with the time
  each would take at the chip's HBM bandwidth (why a bytes-bound step is slow)."""
  if not step.traffic:
    return ""
  bandwidth = accelerators.parse(step.accelerator).chip.hbm_bytes_per_s
  total = sum(step.traffic.values())
  items = list(step.traffic.items())
  rows = items[:top] + ([("the rest", sum(v for _, v in items[top:]))] if len(items) > top else [])
  lines = [f"HBM traffic of the {step.objective} step by source ({total / 1e9:.1f} GB per chip, "
           f"{total / bandwidth:.3f} s at {bandwidth / 1e9:.0f} GB/s):"]
  lines += [f"  {v / total:>6.1%} {v / 1e9:>8.2f} GB  {source}" for source, v in rows]
  return "\n".join(lines)
