"""Score token ids with a causal LM: float32 logits, for comparing against another implementation.

  python -m memjax.score --checkpoint=DIR --tokens=FILE.npy --out=LOGITS.npy [--batch_size=8]

DIR is a converted model (python -m memjax.convert hf-llama), a clm run's workdir, or a memory
model's workdir (its decoder alone, LoRA merged). FILE.npy holds a [batch, length] integer array;
LOGITS.npy receives [batch, length, vocab] float32 logits (position t scores token t+1).
"""

from __future__ import annotations

import sys

import numpy as np
from absl import flags

from memjax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("checkpoint", None, "A converted model or a run's workdir.")
  flags.DEFINE_string("tokens", None, "A .npy file of [batch, length] token ids.")
  flags.DEFINE_string("out", None, "The .npy file for the [batch, length, vocab] logits.")
  flags.DEFINE_integer("batch_size", 8, "Sequences per forward pass.", lower_bound=1)
  flags.mark_flags_as_required(["checkpoint", "tokens", "out"])


def load_tokens(path: str, vocab_size: int) -> np.ndarray:
  try:
    tokens = np.load(path)
  except (OSError, ValueError) as error:
    raise ValueError(f"--tokens={path} is not a readable .npy file: {error}") from None
  if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"--tokens={path} must hold a [batch, length] integer array, got "
                     f"{tokens.dtype} of shape {tokens.shape}")
  if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
    raise ValueError(f"--tokens={path} holds ids in [{tokens.min()}, {tokens.max()}], outside the "
                     f"model's vocabulary [0, {vocab_size})")
  return tokens.astype(np.int32)


def logits(checkpoint_dir: str, tokens_BxT: np.ndarray | None = None, *, tokens_path: str = "",
           batch_size: int = 8) -> np.ndarray:
  """[B, T, V] float32 logits of the causal LM in `checkpoint_dir`."""
  import jax
  from flax import nnx

  from memjax.models.lm import CausalLM
  from memjax.training import pretrained

  source = pretrained.locate(checkpoint_dir)
  if tokens_BxT is None:
    tokens_BxT = load_tokens(tokens_path, source.arch.vocab_size)
  params = pretrained.read(source, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  # Layers under lax.scan: the unrolled loop's per-layer weight slices are XLA temporaries, a
  # second copy of the weights (temporaries of both: benchmarks/README.md, "Pretrained models").
  arch = source.arch.replace(scan_layers=True)
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: CausalLM(arch, tie_embeddings=source.tie, rngs=nnx.Rngs(0))))
  forward = jax.jit(lambda p, t: nnx.merge(graphdef, p)(t)["logits"])
  out = [np.asarray(forward(params, tokens_BxT[i:i + batch_size]), np.float32)
         for i in range(0, len(tokens_BxT), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, tokens_BxT.shape[1], source.arch.vocab_size), np.float32)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"memjax.score: error: unexpected arguments: {argv[1:]}")
  with cli.user_errors("memjax.score"):
    result = logits(FLAGS.checkpoint, tokens_path=FLAGS.tokens, batch_size=FLAGS.batch_size)
  np.save(FLAGS.out, result)
  print(f"wrote {result.dtype} logits of shape {result.shape} to {FLAGS.out}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
