"""Causal attention with the Pallas splash-attention kernel (TPU), run over the mesh by shard_map.

The kernel is jax's own (`jax.experimental.pallas.ops.tpu.splash_attention`); this module only fits
memjax's shapes to it:
- every memjax attention is causal, with an optional per-example padding mask. Padding is given as
  segment ids: a key's id is its mask value (1 token, 0 padding), a query's id is 1 from the first
  token on. So token queries read only token keys, and a query before any token reads the padding
  before it (XLA's path spreads it evenly instead: such outputs are never scored). No row is empty,
  which splash needs for a defined softmax.
- the kernel tiles the sequence in blocks of a multiple of 128, so the sequence is padded at its
  end to a multiple of 128 (the memory decoder's chunk + slots, e.g. 259, is no such multiple).
  Causality alone keeps every real query off the padded keys; the padded rows are dropped.
- the head dimension is padded to a multiple of 128 lanes with zeros (scores unchanged), so that
  small test heads take the kernel's well-trodden full-lane path.
- batch is split over the mesh's batch axes and heads over `tensor` where they divide; the mesh is
  the context's (`jax.set_mesh` / `jax.sharding.use_abstract_mesh`), else the one the inputs' types
  carry inside `jax.jit` (in_shardings on a mesh); without one the kernel runs unsharded.
- for a mesh of other devices than TPUs (or none, off TPU) the kernel runs in Pallas interpret
  mode: slow, for tests and tiny runs anywhere. The mesh's platform decides, so that a CPU process
  compiling for a TPU topology gets the real kernel.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import splash_attention as splash
from jax.sharding import PartitionSpec as P

from memjax.kernels import placement

LANES = 128  # splash's blocks and the TPU vector lanes
BLOCKS = (512, 384, 256, 128)  # candidate block lengths, largest first


def block_length(length: int) -> int:
  """The largest candidate block that tiles `length` (a multiple of LANES)."""
  return next(b for b in BLOCKS if length % b == 0)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _kernel(heads: int, length: int, interpret: bool) -> splash.SplashAttentionKernel:
  """A causal multi-head splash kernel for [heads, length, head_dim]. Built where it is traced (not
  cached): its block-mask arrays are staged into the trace that builds it."""
  block = block_length(length)
  sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                            block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block,
                            block_kv_dq=block)
  mask = splash.MultiHeadMask([splash.CausalMask((length, length))] * heads)
  return splash.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                                interpret=interpret)


def _specs(mesh, batch: int, heads: int, kv_heads: int, batch_axes: tuple[str, ...],
           head_axis: str) -> tuple[tuple[str, ...], str | None]:
  """The mesh axes the batch and the heads are split over: those that divide them."""
  free = lambda a: a in mesh.axis_names and a not in mesh.manual_axes and mesh.shape[a] > 1
  axes = tuple(a for a in batch_axes if free(a))
  while axes and batch % math.prod(mesh.shape[a] for a in axes):
    axes = axes[:-1]
  size = mesh.shape[head_axis] if free(head_axis) else 1
  head = head_axis if size > 1 and heads % size == 0 and kv_heads % size == 0 else None
  return axes, head


def splash_attention(q_BxTxNxH: jax.Array, k_BxTxKxH: jax.Array, v_BxTxKxH: jax.Array,
                     mask_BxT: jax.Array | None = None, *, interpret: bool | None = None,
                     batch_axes: tuple[str, ...] = placement.BATCH_AXES,
                     head_axis: str = placement.HEAD_AXIS) -> jax.Array:
  """Causal softmax attention (the contract of `memjax.kernels.attention.causal_attention`)."""
  mesh = placement.mesh_of(q_BxTxNxH)
  if interpret is None:
    interpret = placement.platform_of(q_BxTxNxH) != "tpu"
  B, T, N, H = q_BxTxNxH.shape
  K = k_BxTxKxH.shape[2]
  Tp = _round_up(T, LANES)
  Hp = _round_up(H, LANES)
  pad = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, Tp - T), (0, Hp - H)))
  heads_first = lambda x: pad(x.transpose(0, 2, 1, 3))  # [B, heads, Tp, Hp]
  q = heads_first((q_BxTxNxH * H**-0.5).astype(q_BxTxNxH.dtype))
  k, v = heads_first(k_BxTxKxH), heads_first(v_BxTxKxH)
  ids = None
  if mask_BxT is not None:
    kv_ids_BxT = jnp.pad((mask_BxT > 0).astype(jnp.int32), ((0, 0), (0, Tp - T)))
    ids = (jax.lax.cummax(kv_ids_BxT, axis=1), kv_ids_BxT)

  axes, head = _specs(mesh, B, N, K, batch_axes, head_axis) if not mesh.empty else ((), None)

  def local(q, k, v, ids):
    kernel = _kernel(q.shape[1], Tp, interpret)
    if ids is None:
      return jax.vmap(kernel)(q, k, v)
    return jax.vmap(lambda q, k, v, qi, kvi: kernel(q, k, v, splash.SegmentIds(qi, kvi)))(q, k, v, *ids)

  if axes or head:
    batch = axes or None
    qkv_spec = P(batch, head)
    ids_spec = None if ids is None else (P(batch), P(batch))
    local = jax.shard_map(local, mesh=mesh, in_specs=(qkv_spec, qkv_spec, qkv_spec, ids_spec),
                          out_specs=qkv_spec, check_vma=False)
  out_BxNxTpxHp = local(q, k, v, ids)
  return out_BxNxTpxHp[:, :, :T, :H].transpose(0, 2, 1, 3).astype(q_BxTxNxH.dtype)
