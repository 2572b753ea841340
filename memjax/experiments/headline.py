"""The paper's headline (`make demo`; Badger 2026, §5.1 and Fig. 1): the information experiment's
masked-mixer causal LM and autoencoder, and the probes of three encoders (untrained, causal LM,
autoencoder), at the `demo` scale.

  python -m memjax.experiments.headline --workdir=runs/demo [--scale=demo]

Trains a causal LM and an autoencoder of the same family and size for the same number of steps on
the embedded corpus, then freezes the three encoders and trains a fresh decoder to regenerate the
input from each one's single embedding (experiments/information.py, its runs from
experiments/runs.py). Prints the paper's information table (cross-entropy, entropy proportion I_e,
token accuracy on held-out text) and writes WORKDIR/headline/{results.json, results.md,
headline.png}. Every run is an ordinary memjax run in WORKDIR/runs/<run> (its config a preset of
configs/: `configs/clm.py:demo,family=mixer`, ...), so an interrupted demo resumes where it stopped
and each run can be inspected (metrics.jsonl, TensorBoard) like any run. `--scale=tiny` (tests), `cpu`
or `paper` plan the same runs at those scales of `python -m memjax.reproduce`.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any

from absl import app, flags

from memjax import cli, runtime
from memjax.experiments import information, suite

FLAGS = flags.FLAGS
FAMILY = "mixer"  # masked mixers form memories far faster than transformers (paper §2.2)
ENCODERS = information.ENCODERS[:3]  # untrained, causal LM, autoencoder
SCALES = ("demo",) + suite.SCALES

EXPERIMENT = suite.Experiment(
    "headline", "Information in one embedding: the headline (paper §5.1, Fig. 1)",
    functools.partial(information.plan, families=(FAMILY,), encoders=ENCODERS),
    functools.partial(information.report, families=(FAMILY,), encoders=ENCODERS, figure="headline.png"),
    scales=SCALES, findings=information.findings)


def define_flags() -> None:
  flags.DEFINE_enum("scale", "demo", SCALES, "demo: minutes on 2 CPU cores (docs/headline.md).")
  flags.DEFINE_string("workdir", "runs/demo", "Folder for every run (runs/) and the report (headline/).")
  flags.DEFINE_bool("quiet", False, "No per-step progress bars.")


def run(scale: str, workdir: str | pathlib.Path, progress: bool = True) -> dict[str, Any]:
  """Trains (or resumes, or reads back) the headline's runs and writes its report."""
  return suite.run_experiment(EXPERIMENT, scale, workdir, progress=progress)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()  # before jax is imported
  # Probes of one shape share their compiled steps: a persistent cache in the workdir compiles them
  # once (as memjax.reproduce does). A run computes the same numbers with or without it.
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(FLAGS.workdir, "compile_cache"))
  with cli.user_errors("memjax.experiments.headline"):
    summary = run(FLAGS.scale, FLAGS.workdir, progress=not FLAGS.quiet)
  out = pathlib.Path(FLAGS.workdir) / EXPERIMENT.name
  print(f"\nInformation in one embedding (probe decoders on held-out text):\n\n{summary['table']}\n\n"
        f"{summary['minutes']:.1f} min; results.json, results.md and {', '.join(summary['figures'])} "
        f"in {out}", flush=True)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
