"""Export the encoder of a trained run as its own checkpoint, to reuse (frozen) elsewhere.

  python -m memjax.export --workdir=runs/autoencoder --out=encoders/autoencoder

The export holds the encoder's parameters (from the run's latest checkpoint), `encoder.json` (its
architecture) and `tokenizer.json`. Name it in any config with --config.encoder.checkpoint=DIR.
"""

from __future__ import annotations

import sys

from absl import app, flags

from memjax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The trained run's folder.")
_OUT = flags.DEFINE_string("out", None, "A new (or empty) folder for the exported encoder.")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from memjax.training import checkpoint, encoders

  try:
    out = encoders.export(_WORKDIR.value, _OUT.value)
  except (ValueError, FileNotFoundError, FileExistsError, checkpoint.CheckpointError) as error:
    sys.exit(f"memjax.export: error: {error}")
  print(f"exported the encoder of {_WORKDIR.value} to {out}")


if __name__ == "__main__":
  cli.run(main)
