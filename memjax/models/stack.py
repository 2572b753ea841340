"""What every model is built from: a block stack, the tower (token embedding and stack) and an LM head.

Layers are created with `nnx.vmap`, so each parameter carries a leading layer axis (one checkpoint
leaf per weight, not per layer), and are applied either in an unrolled Python loop (fastest on CPU)
or with `jax.lax.scan` (`scan_layers=True`: one compiled block, for deep models).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax import importing
from memjax.kernels import placement
from memjax.models import bidirectional, decoding, init, mixer, transformer
from memjax.models.config import StackConfig
from memjax.models.dense import Dense

BLOCKS = {"transformer": transformer.TransformerBlock, "mixer": mixer.MixerBlock,
          "bert": bidirectional.BertBlock}


def block_class(family: str) -> type[nnx.Module]:
  """A family's block: built-in, or user code 'package.module:Block', a module built as
  `Block(cfg: StackConfig, *, rngs)` mapping [B, T, D] -> [B, T, D] (causally, for causal towers),
  optionally with the decode methods of memjax.models.decoding (else generation re-runs it)."""
  if family in BLOCKS:
    return BLOCKS[family]
  block = importing.load(family, "model family")
  if not (isinstance(block, type) and issubclass(block, nnx.Module)):
    raise ValueError(f"model family {family!r} is not an nnx.Module class: {block!r}")
  return block


class Stack(nnx.Module):
  """`n_layers` causal blocks of one family followed by the family's final norm.

  Maps embeddings [B, T, D] to hidden states [B, T, D] at every position. Mixers have no final
  norm (as in the reference); transformers end with RMSNorm (as `LlamaModel`).
  """

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    block_cls = block_class(cfg.family)

    @nnx.split_rngs(splits=cfg.n_layers)
    @nnx.vmap(in_axes=0, out_axes=0)
    def make_blocks(rngs: nnx.Rngs):
      return block_cls(cfg, rngs=rngs)

    self.blocks = make_blocks(rngs)
    self.n_layers = cfg.n_layers
    self.scan_layers = cfg.scan_layers
    self.remat = cfg.remat
    self.norm = transformer.final_norm(cfg, rngs) if cfg.family == "transformer" else None
    self.positions = bidirectional.LearnedPositions(cfg, rngs=rngs) if cfg.family == "bert" else None

  def __call__(self, x_BxTxD: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    """`mask_BxT` (1 on tokens, 0 on padding): transformer positions never attend to padding."""
    if self.positions is not None:
      x_BxTxD = self.positions(x_BxTxD)
    graphdef, layers = nnx.split(self.blocks)
    # Without a mask, blocks are called as block(x): a user's block family need not know of masks.
    # Every block's output split over the batch axes as the batch is (a no-op without a mesh).
    apply_block = lambda x, layer: placement.constrain_batch(
        nnx.merge(graphdef, layer)(x) if mask_BxT is None else nnx.merge(graphdef, layer)(x, mask_BxT))
    if self.remat != "none":  # per block: one block's intermediates alive at a time in the backward
      policy = jax.checkpoint_policies.checkpoint_dots if self.remat == "dots" else None
      apply_block = jax.checkpoint(apply_block, policy=policy, prevent_cse=not self.scan_layers)
    if self.scan_layers:
      x_BxTxD, _ = jax.lax.scan(lambda x, layer: (apply_block(x, layer), None), x_BxTxD, layers)
    else:
      for i in range(self.n_layers):
        x_BxTxD = apply_block(x_BxTxD, jax.tree.map(lambda w: w[i], layers))
    return self.norm(x_BxTxD) if self.norm is not None else x_BxTxD

  # ---------------------------------------------------------------- incremental decoding

  def decodes_itself(self) -> bool:
    """Whether the blocks decode over caches of their own (else `decode` re-runs the forward)."""
    return decoding.decodes_itself(type(self.blocks))

  def max_length(self) -> int | None:
    """Positions a decode cache may hold: a mixer's map length; None (unbounded) otherwise."""
    return getattr(self.blocks, "max_length", None)

  def init_cache(self, batch: int, length: int, width: int, dtype: jnp.dtype | None = None) -> list:
    """Each layer's decode cache for `length` positions (the fallback's: the stack's inputs, of
    width `width`), a list of pytrees."""
    if not self.decodes_itself():
      return [{"x": jnp.zeros((batch, length, width), dtype or jnp.float32)}]
    graphdef, layers = nnx.split(self.blocks)
    return [nnx.merge(graphdef, jax.tree.map(lambda w: w[i], layers)).init_cache(batch, length, dtype)
            for i in range(self.n_layers)]

  def decode(self, x_BxSxD: jax.Array, cache: list, start_B: jax.Array) -> tuple[jax.Array, list]:
    """The stack at positions start[b] .. start[b]+S-1 of each sequence, given `cache` (from
    `init_cache`) of the earlier ones: the hidden states [B, S, D] (after the final norm) that
    `__call__` computes there on the whole sequence, and the cache with these positions written."""
    positions_BxS = start_B[:, None] + jnp.arange(x_BxSxD.shape[1])[None, :]
    if not self.decodes_itself():
      return self._decode_by_forward(x_BxSxD, cache, positions_BxS)
    graphdef, layers = nnx.split(self.blocks)
    new = []
    for i in range(self.n_layers):
      block = nnx.merge(graphdef, jax.tree.map(lambda w: w[i], layers))
      x_BxSxD, layer_cache = block.decode(x_BxSxD, cache[i], positions_BxS)
      new.append(layer_cache)
    return (self.norm(x_BxSxD) if self.norm is not None else x_BxSxD), new

  def _decode_by_forward(self, x_BxSxD: jax.Array, cache: list,
                         positions_BxS: jax.Array) -> tuple[jax.Array, list]:
    """For block families without decode methods: keeps the inputs of every position and re-runs
    the whole (causal) stack on them, at a full forward's cost per step."""
    x_BxTxD = decoding.write(cache[0]["x"], x_BxSxD, positions_BxS[:, 0])
    h_BxTxD = self(x_BxTxD)
    return jnp.take_along_axis(h_BxTxD, positions_BxS[:, :, None], axis=1), [{"x": x_BxTxD}]


class Tower(nnx.Module):
  """Token embedding followed by a stack: token ids [B, T] -> hidden states [B, T, D].

  Every encoder and decoder is one (a causal LM is a decoder tower and a head); it is also the unit
  that is probed, exported and frozen: a causal LM's decoder, an autoencoder's or memory model's
  encoder.
  """

  def __init__(self, cfg: StackConfig, *, init_convention: str = "memjax", rngs: nnx.Rngs):
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs,
                           embedding_init=init.token_embedding(cfg.family, init_convention))
    self.stack = Stack(cfg, rngs=rngs)

  def __call__(self, tokens_BxT: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    return self.stack(self.embed(tokens_BxT), mask_BxT)


def lm_head(cfg: StackConfig, rngs: nnx.Rngs, init_convention: str = "memjax") -> Dense:
  kernel_init = init.lm_head(cfg.family, cfg.d_model, init_convention)
  return Dense(cfg.d_model, cfg.vocab_size, use_bias=False, kernel_init=kernel_init, rngs=rngs)


def logits_from(hidden_BxTxD: jax.Array, head: Dense | None, embed: nnx.Embed | None) -> jax.Array:
  """Vocabulary logits in float32, from the head or, when tied, from the embedding matrix."""
  logits = head(hidden_BxTxD) if head is not None else embed.attend(hidden_BxTxD)
  return logits.astype(jnp.float32)
