"""Export an encoder as its own checkpoint, to reuse (frozen) elsewhere.

  python -m memjax.export --workdir=runs/autoencoder --out=encoders/autoencoder

The export holds the encoder's parameters (the run's latest checkpoint), `encoder.json` (its
architecture) and `tokenizer.json`. Name it in any config with --config.encoder.checkpoint=DIR (the
encoder section, data.vocab_size and data.tokenizer must then match encoder.json and
tokenizer.json); a run's workdir can be named there directly too. A Hugging Face Llama becomes such
a workdir with `python -m memjax.convert hf-llama SRC DIR` (its trunk is the encoder; exporting DIR
keeps the trunk alone, without the LM head).
"""

from __future__ import annotations

from absl import app, flags

from memjax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "A trained run's folder, or a converted model "
                      "(python -m memjax.convert hf-llama).")
  flags.DEFINE_string("out", None, "A new (or empty) folder for the exported encoder.")
  flags.mark_flags_as_required(["workdir", "out"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from memjax.training import encoders

  with cli.user_errors("memjax.export"):
    out = encoders.export(FLAGS.workdir, FLAGS.out)
  print(f"exported the encoder of {FLAGS.workdir} to {out}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
