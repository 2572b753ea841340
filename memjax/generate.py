"""Generate text with a trained causal model (causal LM, memory model, full-context or recurrent).

  python -m memjax.generate --checkpoint=runs/memory --prompt="Once upon a time" --max_new_tokens=64
  python -m memjax.generate --checkpoint=runs/clm --prompt=A --prompt=B --temperature=0.8 --top_p=0.9
  python -m memjax.generate --checkpoint=runs/memory --prompt_file=long.txt --top_k=40 --seed=1

Greedy by default (--temperature=0). Several --prompt flags (and --prompt_file) form one batch.
A single prompt's continuation is streamed as it is decoded; a batch is printed when done.
"""

from __future__ import annotations

import sys

from absl import app, flags

from memjax import cli, runtime

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("checkpoint", None, "A trained run's workdir (its latest checkpoint is used).")
  flags.DEFINE_multi_string("prompt", [], "A prompt; repeat the flag for a batch of prompts.")
  flags.DEFINE_multi_string("prompt_file", [], "A text file holding one prompt (repeatable).")
  flags.DEFINE_integer("max_new_tokens", 64, "Tokens to generate per prompt.")
  flags.DEFINE_float("temperature", 0.0, "0: greedy; > 0: sample from softmax(logits / temperature).")
  flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens only (0: off).")
  flags.DEFINE_float("top_p", 1.0, "Sample from the smallest set of tokens holding this mass (1: off).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_bool("stop_at_eos", True, "End a continuation at the end-of-text token.")
  flags.mark_flags_as_required(["checkpoint"])


def read_prompts(texts: list[str], files: list[str]) -> list[str]:
  prompts = list(texts)
  for path in files:
    try:
      with open(path, encoding="utf-8") as f:
        prompts.append(f.read())
    except OSError as error:
      raise FileNotFoundError(f"prompt file {path!r} cannot be read: {error.strerror}") from None
  if not prompts:
    raise ValueError("give a prompt: --prompt=TEXT or --prompt_file=FILE")
  for i, prompt in enumerate(prompts):
    if not prompt:
      raise ValueError(f"prompt {i} is empty")
  return prompts


class Stream:
  """Prints one sequence's text as tokens arrive (decoding the whole continuation each time, so
  tokens that are parts of one character print once the character is complete)."""

  def __init__(self, tokenizer, stop: int | None):
    self.tokenizer, self.stop, self.ids, self.shown, self.ended = tokenizer, stop, [], "", False

  def __call__(self, token_B) -> None:
    token = int(token_B[0])
    if self.ended or token == self.stop:
      self.ended = True
      return
    self.ids.append(token)
    text = self.tokenizer.decode(self.ids)
    if not text.endswith("\ufffd") and text.startswith(self.shown):
      sys.stdout.write(text[len(self.shown):])
      sys.stdout.flush()
      self.shown = text


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()  # before jax is imported
  from memjax.data import tokenizer as tokenizers
  from memjax.generation import trained as trained_lib
  from memjax.generation.generator import Generator
  from memjax.generation.sampling import Sampling
  from memjax.training import checkpoint

  try:
    texts = read_prompts(FLAGS.prompt, FLAGS.prompt_file)
    sampling = Sampling(FLAGS.temperature, FLAGS.top_k, FLAGS.top_p)
    run = trained_lib.load(FLAGS.checkpoint)
    prompts = [run.tokenizer.encode(text).ids for text in texts]
    for i, ids in enumerate(prompts):
      if not ids:
        raise ValueError(f"prompt {i} is empty after tokenization")
    generator = Generator(run.model, run.context, sampling=sampling)
    generator.check(prompts, FLAGS.max_new_tokens)
  except (ValueError, FileNotFoundError, checkpoint.CheckpointError) as error:
    sys.exit(f"memjax.generate: error: {error}")
  eos = tokenizers.special_id(run.tokenizer, tokenizers.EOS, -1)
  stop = eos if FLAGS.stop_at_eos and eos >= 0 else None
  if len(prompts) == 1:
    sys.stdout.write(texts[0])
    sys.stdout.flush()
    stream = Stream(run.tokenizer, stop)
    generator.generate(prompts, FLAGS.max_new_tokens, seed=FLAGS.seed, on_token=stream, stop_token=stop)
    sys.stdout.write("\n")
    return
  tokens = generator.generate(prompts, FLAGS.max_new_tokens, seed=FLAGS.seed, stop_token=stop)["tokens"]
  for i, (text, row) in enumerate(zip(texts, tokens)):
    row = list(row)
    if stop is not None and stop in row:
      row = row[:row.index(stop)]
    print(f"[{i}] {text}{run.tokenizer.decode(row)}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
