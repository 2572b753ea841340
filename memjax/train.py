"""Train any memjax model from a config file.

  python -m memjax.train --config=configs/clm.py:small --workdir=runs/clm
  python -m memjax.train --config=configs/probe.py:small --config.encoder.checkpoint=runs/ae \
      --workdir=runs/probe_ae

Overrides: `--config.section.key=value` (unknown keys are refused). Running again with the same
workdir resumes from its latest checkpoint. Multi-host: set MEMJAX_DISTRIBUTED=1 on every host.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from memjax import cli, runtime

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file and argument, e.g. configs/clm.py:small",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Run folder (local path or gs:// bucket).")
  flags.mark_flags_as_required(["config", "workdir"])

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError)


def maybe_init_distributed() -> None:
  """Multi-host runs (TPU pods, GPU clusters) set MEMJAX_DISTRIBUTED=1 on every process."""
  if os.environ.get("MEMJAX_DISTRIBUTED") == "1":
    import jax

    jax.distributed.initialize()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()  # before jax is imported
  maybe_init_distributed()
  from memjax.training import checkpoint, loop

  try:
    results = loop.run(FLAGS.config, FLAGS.workdir)
  except (*USER_ERRORS, checkpoint.CheckpointError) as error:
    sys.exit(f"memjax.train: error: {error}")
  print("final evaluation:")
  for key, value in sorted(results["eval"].items()):
    print(f"  {key:40s} {value:.4f}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
