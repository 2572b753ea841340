"""Export an encoder as its own checkpoint, to reuse (frozen) elsewhere.

  python -m memjax.export --workdir=runs/autoencoder --out=encoders/autoencoder
  python -m memjax.export --hf_llama=path/to/hf_model --out=encoders/llama   # the trunk only

The export holds the encoder's parameters (a run's latest checkpoint, or the trunk of a pretrained
Hugging Face Llama-architecture model), `encoder.json` (its architecture) and `tokenizer.json`.
(`python -m memjax.convert hf-llama` converts the whole causal LM, LM head included.)
Name it in any config with --config.encoder.checkpoint=DIR (the encoder section, data.vocab_size
and data.tokenizer must then match encoder.json and tokenizer.json).
"""

from __future__ import annotations


from absl import app, flags

from memjax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "A trained run's folder.")
  flags.DEFINE_string("hf_llama", None, "A Hugging Face Llama model folder (config.json, "
                      "*.safetensors, tokenizer.json).")
  flags.DEFINE_string("out", None, "A new (or empty) folder for the exported encoder.")
  flags.mark_flags_as_required(["out"])
  flags.mark_flags_as_mutual_exclusive(["workdir", "hf_llama"], required=True)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from memjax.training import encoders

  with cli.user_errors("memjax.export"):
    if FLAGS.workdir:
      out = encoders.export(FLAGS.workdir, FLAGS.out)
    else:
      out = encoders.import_hf_llama(FLAGS.hf_llama, FLAGS.out)
  print(f"exported the encoder of {FLAGS.workdir or FLAGS.hf_llama} to {out}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
