"""Cloud TPU slices by the names users type in gcloud: chips, hosts, topology, HBM and peak FLOP/s.

One table for the AOT compile (`memjax.aot`) and the launcher (`launch/`), which imports this module
without jax: standard library only. Figures are the Cloud TPU documentation's per-chip
specifications (bf16 peak, HBM capacity and bandwidth).
"""

from __future__ import annotations

import dataclasses
import math
import re


@dataclasses.dataclass(frozen=True)
class Chip:
  """One TPU generation's chip."""

  generation: str  # the gcloud prefix: v4, v5litepod, v5p, v6e
  topology_prefix: str  # what jax.experimental.topologies calls it: v4, v5e, v5p, v6e
  hbm_gib: float
  peak_bf16_flops: float
  hbm_bytes_per_s: float
  cores_per_chip: int  # TensorCores a slice name counts per chip (v4 and v5p count cores)
  max_chips: int  # the largest slice (one pod)
  dims: int  # topology dimensions: 3 (v4, v5p, twisted tori) or 2 (v5e, v6e)

  @property
  def hbm_bytes(self) -> int:
    return int(self.hbm_gib * 2**30)


CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", "v4", 32, 275e12, 1228e9, 2, 4096, 3),
    "v5litepod": Chip("v5litepod", "v5e", 16, 197e12, 819e9, 1, 256, 2),
    "v5p": Chip("v5p", "v5p", 95, 459e12, 2765e9, 2, 4096, 3),
    "v6e": Chip("v6e", "v6e", 32, 918e12, 1640e9, 1, 256, 2),
}
ALIASES = {"v5e": "v5litepod"}
# Slice shapes of the 2-D generations (chips -> topology), from the Cloud TPU docs' tables.
TOPOLOGIES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
                 256: "16x16"}


@dataclasses.dataclass(frozen=True)
class Slice:
  """A slice named as gcloud names it (`v5litepod-16`; `v5e-16` accepted)."""

  name: str  # the gcloud accelerator type
  chip: Chip
  chips: int

  @property
  def hosts(self) -> int:
    """VMs in the slice: 4 chips per VM, except single-VM v5e/v6e slices of up to 8 chips."""
    if self.chip.dims == 2 and self.chips <= 8:
      return 1
    return max(1, self.chips // 4)

  @property
  def chips_per_host(self) -> int:
    return self.chips // self.hosts

  @property
  def topology(self) -> str:
    """The topology name `jax.experimental.topologies.get_topology_desc` takes, e.g. 'v5e:2x4'."""
    if self.chip.dims == 2:
      return f"{self.chip.topology_prefix}:{TOPOLOGIES_2D[self.chips]}"
    return f"{self.chip.topology_prefix}:{'x'.join(map(str, _cube(self.chips)))}"


def _cube(chips: int) -> tuple[int, int, int]:
  """The 3-D shape of a v4/v5p slice of `chips` chips: 2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, ..."""
  shape = [2, 2, 1]
  while math.prod(shape) < chips:  # double the smallest dimension, the last of equals
    i = max(range(3), key=lambda d: (-shape[d], d))
    shape[i] *= 2
  return tuple(shape)


def parse(name: str) -> Slice:
  """`v5e-8` -> Slice; refuses sizes that do not exist (`v6e-3`, `v5p-7`) with the valid ones."""
  match = re.fullmatch(r"(v4|v5e|v5litepod|v5p|v6e)-([1-9][0-9]*)", name.strip())
  if not match:
    raise ValueError(f"accelerator {name!r}: expected v4-N, v5litepod-N (or v5e-N), v5p-N or v6e-N")
  generation = ALIASES.get(match[1], match[1])
  chip, size = CHIPS[generation], int(match[2])
  valid = valid_sizes(generation)
  if size not in valid:
    shown = ", ".join(f"{generation}-{n}" for n in valid[:8])
    raise ValueError(f"accelerator {name!r} does not exist: {generation} slices are {shown}, ... "
                     f"(the number counts {'TensorCores, 2 per chip' if chip.cores_per_chip == 2 else 'chips'})")
  return Slice(f"{generation}-{size}", chip, size // chip.cores_per_chip)


def valid_sizes(generation: str) -> list[int]:
  """The slice sizes gcloud offers (in the name's unit): powers of two up to a pod."""
  chip = CHIPS[ALIASES.get(generation, generation)]
  if chip.dims == 2:
    return sorted(TOPOLOGIES_2D)
  sizes, chips = [], 4  # v4-8 / v5p-8: 4 chips is the smallest slice
  while chips <= chip.max_chips:
    sizes.append(chips * chip.cores_per_chip)
    chips *= 2
  return sizes
