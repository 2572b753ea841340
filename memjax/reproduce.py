"""Reproduce the paper's findings, one command per experiment.

  python -m memjax.reproduce NAME [--scale=tiny|cpu|paper] [--workdir=DIR]
  python -m memjax.reproduce all --scale=cpu
  python -m memjax.reproduce NAME --scale=paper --dry-run [--devices=8] [--mfu=0.4]
  python -m memjax.reproduce NAME --scale=paper --dry-run --accelerator=v5e-8 [--num_slices=N]
  python -m memjax.reproduce NAME --commands [--scale=...] [--workdir=DIR]

NAME is one of EXPERIMENTS (or `all`). Every experiment is a set of ordinary memjax runs in
DIR/runs/<run> (resumable: run the command again after an interruption; runs shared between
experiments train once; DIR/compile_cache keeps their compiled steps) and a report in DIR/NAME/:
results.json, results.md (the table beside the paper's numbers) and PNG figures. `--dry-run` trains
nothing: it builds every run abstractly and prints its parameters, FLOPs per token, tokens to train,
compiled per-device memory of one train step on a mesh of --devices devices, and accelerator-hours at
the stated MFU (see memjax/experiments/dryrun.py). With `--accelerator`, every run is instead
compiled for that Cloud TPU slice by the TPU compiler (python -m memjax.aot, one run at a time):
HBM per chip, roofline step time and MFU, chip-hours; it exits 1 when a run does not fit.
`--commands` trains nothing: it prints, for every run of NAME, the `python -m memjax.train` command
that trains that one run exactly as the suite does (configs/experiments.py:RUN,scale=...,workdir=...).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import sys

EXPERIMENTS: tuple[str, ...] = ("information", "memory", "copy", "combined", "frozen", "oracle", "feed",
                                "context_length")


def experiment(name: str):
  if name not in EXPERIMENTS:
    raise ValueError(f"unknown experiment {name!r}; choose from {EXPERIMENTS} or 'all'")
  return importlib.import_module(f"memjax.experiments.{name}").EXPERIMENT


def run_config(name: str, scale: str, root: str | pathlib.Path):
  """The config the suite trains run `name` with at `scale` in workdir `root` (the first experiment
  that plans it; every other plans the same config under that name)."""
  from memjax.experiments import suite

  suite.check_scale(scale)
  for experiment_name in EXPERIMENTS:
    for spec in experiment(experiment_name).plan(scale, pathlib.Path(root)):
      if spec.name == name:
        return spec.cfg
  raise ValueError(f"no experiment has a run {name!r} at scale {scale!r}")


def commands(name: str, scale: str, workdir: str) -> list[str]:
  """For each run of experiment `name`, the command that trains it alone, as the suite does."""
  from memjax.experiments import suite

  return [f"python -m memjax.train --config=configs/experiments.py:{spec.name},scale={scale},workdir={workdir} "
          f"--workdir={suite.run_dir(pathlib.Path(workdir), spec.name)}"
          for spec in experiment(name).plan(scale, pathlib.Path(workdir))]


def parse(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m memjax.reproduce", description=__doc__.split("\n\n")[0])
  parser.add_argument("name", help=f"one of {', '.join(EXPERIMENTS)}, or 'all'")
  parser.add_argument("--scale", default="cpu", choices=("tiny", "cpu", "paper"))
  parser.add_argument("--workdir", default="", help="default: runs/reproduce_<scale>")
  parser.add_argument("--dry-run", action="store_true", help="build every run without training")
  parser.add_argument("--devices", type=int, default=8, help="dry run: devices of the target mesh")
  parser.add_argument("--mfu", type=float, default=0.4, help="dry run: assumed model FLOPs utilization")
  parser.add_argument("--peak-tflops", type=float, default=989.0,
                      help="dry run: accelerator peak (default: H100 SXM dense bf16, 989 TFLOP/s)")
  parser.add_argument("--no-compile", action="store_true", help="dry run: skip the compiled memory")
  parser.add_argument("--no-lower", action="store_true",
                      help="dry run: no XLA at all (analytic FLOPs, no memory figure; seconds per run)")
  parser.add_argument("--quiet", action="store_true", help="no per-step progress bars")
  parser.add_argument("--out", default="", help="dry run: also write the full report to this JSON file")
  parser.add_argument("--accelerator", default="", help="dry run: compile for this TPU slice (v5e-8, ...)")
  parser.add_argument("--num_slices", type=int, default=1, help="dry run with --accelerator: slices")
  parser.add_argument("--commands", action="store_true",
                      help="print the command that trains each run alone (configs/experiments.py)")
  args = parser.parse_args(argv)
  if args.name != "all" and args.name not in EXPERIMENTS:
    parser.error(f"unknown experiment {args.name!r}; choose from {', '.join(EXPERIMENTS)}, all")
  if args.dry_run and args.scale != "paper":
    parser.error("--dry-run sizes the paper-scale runs: add --scale=paper")
  if not 0 < args.mfu <= 1:
    parser.error(f"--mfu must be in (0, 1], got {args.mfu}")
  return args


def main(argv: list[str] | None = None) -> None:
  args = parse(sys.argv[1:] if argv is None else argv)
  names = EXPERIMENTS if args.name == "all" else (args.name,)
  workdir = args.workdir or f"runs/reproduce_{args.scale}"
  if args.commands:
    for name in names:
      print("\n".join(commands(name, args.scale, workdir)))
    return
  if args.dry_run and args.accelerator:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the host compiles; the TPU devices are abstract
    from memjax.experiments import dryrun

    report = dryrun.compile_for_tpu([experiment(n) for n in names], args.accelerator,
                                    num_slices=args.num_slices,
                                    journal=f"{args.out}.journal.jsonl" if args.out else None)
    print(report.pop("table"))
    print(json.dumps(report["totals"], indent=2))
    if args.out:
      with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    if report["problems"]:
      sys.exit("memjax.reproduce: does not fit:\n" + "\n".join(report["problems"]))
    return
  if args.dry_run:
    flag = f"--xla_force_host_platform_device_count={args.devices}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    from memjax.experiments import dryrun

    report = dryrun.dry_run([experiment(n) for n in names], devices=args.devices, mfu=args.mfu,
                            peak_flops=args.peak_tflops * 1e12, compile_memory=not args.no_compile, lower=not args.no_lower)
    print(dryrun.table(report))
    print(json.dumps(report["totals"], indent=2))
    if args.out:
      with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    return
  from memjax import runtime

  runtime.tune()  # before jax is imported
  # The suite's runs compile the same step functions again and again (ten probes of one shape): a
  # persistent compilation cache in the workdir skips XLA's compile on every repeat (most of a
  # cpu-scale run's start-up: benchmarks/README.md). A run computes the same numbers with or
  # without it.
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(workdir, "compile_cache"))
  from memjax.experiments import suite

  for name in names:
    summary = suite.run_experiment(experiment(name), args.scale, workdir, progress=not args.quiet)
    print(f"\n{summary['table']}\n\n{name}: {summary['minutes']:.1f} min this call (its runs trained "
          f"in {summary['training_minutes_all_runs']:.1f} min, runs shared with other experiments included); "
          f"{workdir}/{name}/results.md, results.json, {', '.join(summary['figures'])}", flush=True)


if __name__ == "__main__":
  try:
    main()
  except (ValueError, FileNotFoundError) as error:
    sys.exit(f"memjax.reproduce: error: {error}")
