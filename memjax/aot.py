"""Compile a run for a Cloud TPU slice ahead of time, here (no TPU), and say whether it fits in HBM.

  python -m memjax.aot --config=configs/memory.py:paper,family=mixer --accelerator=v5e-8
  python -m memjax.aot --config=configs/clm.py:paper --accelerator=v5e-256 --num_slices=2 --out=aot.json

Builds the run abstractly (no weights, no data), compiles every distinct train step of its curriculum
with the real TPU compiler (libtpu: pip install 'memjax[tpu]') and prints, per chip, what the step
holds against the chip's HBM, the compiled FLOPs, a roofline step time, the tokens/s and MFU it would
give, and the compile time (memjax/training/tpu_compile.py). Exits 1, naming the knobs that would
help, when a step needs more than (1 - --min_headroom) of HBM; the launcher runs this before it
rents a slice.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags
from ml_collections import config_flags

from memjax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file and argument, e.g. configs/clm.py:paper",
                                  lock_config=True)
  flags.DEFINE_string("accelerator", None, "A Cloud TPU slice as gcloud names it: v4-8, v5e-8 "
                      "(v5litepod-8), v5p-8, v6e-8, ... up to pods such as v5e-256")
  flags.DEFINE_integer("num_slices", 1, "Slices joined over the data-center network (multislice)")
  flags.DEFINE_float("min_headroom", 0.1, "Fraction of HBM that must stay free")
  flags.DEFINE_string("out", "", "Also write the compiled steps to this JSON file")
  flags.DEFINE_bool("loop_costs", True, "Cost a step with scanned layers or microbatches by compiling "
                    "unrolled 1- and 2-layer variants (XLA counts a loop body once); off: memory only, "
                    "FLOPs and roofline undercounted")
  flags.mark_flags_as_required(["config", "accelerator"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"memjax.aot: error: unexpected arguments: {argv[1:]}")
  from memjax import accelerators
  from memjax.training import tpu_compile

  with cli.user_errors("memjax.aot"):
    accelerators.parse(FLAGS.accelerator)  # a bad name fails before any compile
    if FLAGS.num_slices < 1:
      raise ValueError(f"--num_slices must be >= 1, got {FLAGS.num_slices}")
    try:
      steps = tpu_compile.compile_run(FLAGS.config, FLAGS.accelerator, FLAGS.num_slices,
                                       loop_costs=FLAGS.loop_costs)
    except tpu_compile.LibTpuUnavailable as error:
      sys.exit(f"memjax.aot: error: {error}")
  print(tpu_compile.table(steps))
  for step in steps:
    print(tpu_compile.traffic_table(step))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump([s.to_dict() for s in steps], f, indent=2)
  problems = [v for v in (tpu_compile.verdict(FLAGS.config, s, FLAGS.min_headroom) for s in steps) if v]
  if problems:
    sys.exit("memjax.aot: does not fit:\n" + "\n".join(problems))
  print(f"fits: every step leaves at least {FLAGS.min_headroom:.0%} of HBM free")


if __name__ == "__main__":
  os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the host compiles; the TPU devices are abstract
  define_flags()
  cli.run(main)
