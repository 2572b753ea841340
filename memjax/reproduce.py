"""Reproduce the paper's findings, one command per experiment.

  python -m memjax.reproduce NAME [--scale=tiny|cpu|paper] [--workdir=DIR] [--seeds=N]
  python -m memjax.reproduce all --scale=cpu
  python -m memjax.reproduce NAME --scale=paper --dry-run [--devices=8] [--mfu=0.4]
  python -m memjax.reproduce NAME --scale=paper --dry-run --accelerator=v5e-8 [--num_slices=N]
  python -m memjax.reproduce NAME --commands [--scale=...] [--workdir=DIR]

NAME is one of EXPERIMENTS (or `all`). Every experiment is a set of ordinary memjax runs in
DIR/runs/<run> (resumable: run the command again after an interruption; runs shared between
experiments train once; DIR/compile_cache keeps their compiled steps) and a report in DIR/NAME/:
results.json, results.md (the table beside the paper's numbers) and PNG figures. `--seeds=N` trains
every run with seeds 0..N-1 (cfg.seed: model initialization and data order), seed s > 0 in
DIR/seed<s>/runs/<run> (seed 0's are the folders above, so a one-seed workdir is its seed 0), and the
report shows each number as its mean and interval over the seeds (min-max below 4 seeds, a 95 %
t-interval from 4) and the verdict of each finding (docs/results.md's rule). `--dry-run` trains
nothing: it builds every run abstractly and prints its parameters, FLOPs per token, tokens to train,
compiled per-device memory of one train step on a mesh of --devices devices, and accelerator-hours at
the stated MFU (see memjax/experiments/dryrun.py). With `--accelerator`, every run is instead
compiled for that Cloud TPU slice by the TPU compiler (python -m memjax.aot, one run at a time):
HBM per chip, roofline step time and MFU, chip-hours; it exits 1 when a run does not fit.
`--commands` trains nothing: it prints, for every run of NAME, the `python -m memjax.train` command
that trains that one run exactly as the suite does (configs/experiments.py:RUN,scale=...,workdir=...).
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import sys

from absl import flags

from memjax import cli

FLAGS = flags.FLAGS

EXPERIMENTS: tuple[str, ...] = ("information", "memory", "copy", "combined", "frozen", "oracle", "feed",
                                "context_length", "retrieval", "control", "llm_probe", "pretrained", "memory_long",
                                "quantize", "capacity", "facts")


def experiment(name: str):
  if name not in EXPERIMENTS:
    raise ValueError(f"unknown experiment {name!r}; choose from {EXPERIMENTS} or 'all'")
  return importlib.import_module(f"memjax.experiments.{name}").EXPERIMENT


def run_config(name: str, scale: str, root: str | pathlib.Path, seed: int = 0):
  """The config the suite trains run `name` with at `scale` and `seed` in workdir `root` (the first
  experiment that plans it; every other plans the same config under that name)."""
  from memjax.experiments import suite

  suite.check_scale(scale)
  for experiment_name in EXPERIMENTS:
    for spec in suite.plan(experiment(experiment_name), scale, root, seed):
      if spec.name == name:
        return spec.cfg
  raise ValueError(f"no experiment has a run {name!r} at scale {scale!r}")


def commands(name: str, scale: str, workdir: str, seeds: int = 1) -> list[str]:
  """For each seed and run of experiment `name`, the command that trains it alone, as the suite does."""
  from memjax.experiments import suite

  return [f"python -m memjax.train --config=configs/experiments.py:{spec.name},scale={scale},workdir={workdir}"
          f"{f',seed={seed}' if seed else ''} --workdir={suite.run_dir(suite.seed_dir(workdir, seed), spec.name)}"
          for seed in range(seeds) for spec in suite.plan(experiment(name), scale, workdir, seed)]


def define_flags() -> None:
  flags.DEFINE_enum("scale", "cpu", ["tiny", "cpu", "paper"], "Scale of every run.")
  flags.DEFINE_string("workdir", "", "Folder for the runs and reports (default: runs/reproduce_<scale>).")
  flags.DEFINE_integer("seeds", 1, "Train every run with seeds 0..N-1 (seed s > 0 in WORKDIR/seed<s>/); "
                       "tables show mean and interval over them.", lower_bound=1)
  flags.DEFINE_bool("dry_run", False, "Build every run without training (spelled --dry-run too).")
  flags.DEFINE_integer("devices", 8, "Dry run: devices of the target mesh.")
  flags.DEFINE_float("mfu", 0.4, "Dry run: assumed model FLOPs utilization, in (0, 1].")
  flags.DEFINE_float("peak_tflops", 989.0, "Dry run: accelerator peak (default: H100 SXM dense bf16, "
                     "989 TFLOP/s).")
  flags.DEFINE_bool("no_compile", False, "Dry run: skip the compiled memory.")
  flags.DEFINE_bool("no_lower", False, "Dry run: no XLA at all (analytic FLOPs, no memory figure; "
                    "seconds per run).")
  flags.DEFINE_bool("quiet", False, "No per-step progress bars.")
  flags.DEFINE_string("out", "", "Dry run: also write the full report to this JSON file.")
  flags.DEFINE_string("accelerator", "", "Dry run: compile for this TPU slice (v5e-8, ...).")
  flags.DEFINE_integer("num_slices", 1, "Dry run with --accelerator: slices.", lower_bound=1)
  flags.DEFINE_bool("commands", False, "Print the command that trains each run alone "
                    "(configs/experiments.py).")
  flags.register_validator("mfu", lambda mfu: 0 < mfu <= 1, "--mfu must be in (0, 1]")
  flags.register_multi_flags_validator(
      ["dry_run", "scale"], lambda f: not f["dry_run"] or f["scale"] == "paper",
      "--dry-run sizes the paper-scale runs: add --scale=paper")


def experiment_names(argv: list[str]) -> tuple[str, ...]:
  """The experiments the positional NAME (one of EXPERIMENTS, or `all`) stands for."""
  if len(argv) != 2:
    sys.exit(f"memjax.reproduce: error: name one experiment ({', '.join(EXPERIMENTS)}) or all, "
             f"got {argv[1:]}")
  if argv[1] != "all" and argv[1] not in EXPERIMENTS:
    sys.exit(f"memjax.reproduce: error: unknown experiment {argv[1]!r}; choose from "
             f"{', '.join(EXPERIMENTS)}, all")
  return EXPERIMENTS if argv[1] == "all" else (argv[1],)


def main(argv: list[str]) -> None:
  names = experiment_names(argv)
  workdir = FLAGS.workdir or f"runs/reproduce_{FLAGS.scale}"
  if FLAGS.commands:
    for name in names:
      print("\n".join(commands(name, FLAGS.scale, workdir, FLAGS.seeds)))
    return
  if FLAGS.dry_run and FLAGS.accelerator:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the host compiles; the TPU devices are abstract
    from memjax.experiments import dryrun

    report = dryrun.compile_for_tpu([experiment(n) for n in names], FLAGS.accelerator,
                                    num_slices=FLAGS.num_slices,
                                    journal=f"{FLAGS.out}.journal.jsonl" if FLAGS.out else None)
    print(report.pop("table"))
    print(json.dumps(report["totals"], indent=2))
    if FLAGS.out:
      with open(FLAGS.out, "w") as f:
        json.dump(report, f, indent=2)
    if report["problems"]:
      sys.exit("memjax.reproduce: does not fit:\n" + "\n".join(report["problems"]))
    return
  if FLAGS.dry_run:
    flag = f"--xla_force_host_platform_device_count={FLAGS.devices}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    from memjax.experiments import dryrun

    report = dryrun.dry_run([experiment(n) for n in names], devices=FLAGS.devices, mfu=FLAGS.mfu,
                            peak_flops=FLAGS.peak_tflops * 1e12, compile_memory=not FLAGS.no_compile,
                            lower=not FLAGS.no_lower)
    print(dryrun.table(report))
    print(json.dumps(report["totals"], indent=2))
    if FLAGS.out:
      with open(FLAGS.out, "w") as f:
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
    summary = suite.run_experiment(experiment(name), FLAGS.scale, workdir, progress=not FLAGS.quiet,
                                   seeds=FLAGS.seeds)
    print(f"\n{summary['table']}\n\n{name}: {summary['minutes']:.1f} min this call (its runs trained "
          f"in {summary['training_minutes_all_runs']:.1f} min, runs shared with other experiments included); "
          f"{workdir}/{name}/results.md, results.json, {', '.join(summary['figures'])}", flush=True)


if __name__ == "__main__":
  define_flags()
  try:
    cli.run(main)
  except (ValueError, FileNotFoundError) as error:
    sys.exit(f"memjax.reproduce: error: {error}")
