"""Train any memjax model from a config file.

  python -m memjax.train --config=configs/clm.py:small --workdir=runs/clm
  python -m memjax.train --config=configs/probe.py:small --config.encoder.checkpoint=runs/ae \
      --workdir=runs/probe_ae

Overrides: `--config.section.key=value` (unknown keys are refused). Running again with the same
workdir resumes from its latest checkpoint.

Multi-host: run the same command on every host; the launcher's environment (Cloud TPU, SLURM, or
JAX_COORDINATOR_ADDRESS / JAX_PROCESS_COUNT / JAX_PROCESS_ID) starts JAX's distributed runtime
(memjax/training/distributed.py). On SIGTERM every process saves a checkpoint at the same step and
the command exits with code 42 (memjax/training/preemption.py); the same command resumes.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from memjax import cli, runtime
from memjax.training import distributed

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file and argument, e.g. configs/clm.py:small",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Run folder (local path or gs:// bucket).")
  flags.mark_flags_as_required(["config", "workdir"])

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()  # before jax is imported
  try:
    distributed.initialize()  # before anything touches a device
  except ValueError as error:
    sys.exit(f"memjax.train: error: {error}")
  from memjax.training import checkpoint, loop, preemption

  try:
    results = loop.run(FLAGS.config, FLAGS.workdir)
  except (*USER_ERRORS, checkpoint.CheckpointError) as error:
    sys.exit(f"memjax.train: error: {error}")
  except preemption.Preempted as stop:
    print(f"memjax.train: {stop}", flush=True)
    sys.exit(preemption.EXIT_CODE)
  print("final evaluation:")
  for key, value in sorted(results["eval"].items()):
    print(f"  {key:40s} {value:.4f}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
