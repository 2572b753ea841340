"""The chip table against the Cloud TPU documentation's slice tables (the expected values are the
docs' own: chips, VMs and topology of each accelerator type)."""

import pytest

from memjax import accelerators

# accelerator type -> (chips, VMs, topology), from the Cloud TPU docs' v4 / v5e / v5p / v6e pages
DOCUMENTED = {
    "v4-8": (4, 1, "v4:2x2x1"), "v4-16": (8, 2, "v4:2x2x2"), "v4-64": (32, 8, "v4:2x4x4"),
    "v5litepod-1": (1, 1, "v5e:1x1"), "v5litepod-8": (8, 1, "v5e:2x4"), "v5litepod-16": (16, 4, "v5e:4x4"),
    "v5litepod-256": (256, 64, "v5e:16x16"),
    "v5p-8": (4, 1, "v5p:2x2x1"), "v5p-32": (16, 4, "v5p:2x2x4"), "v5p-128": (64, 16, "v5p:4x4x4"),
    "v6e-8": (8, 1, "v6e:2x4"), "v6e-64": (64, 16, "v6e:8x8"),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_slices_have_the_documented_chips_hosts_and_topology(name):
  slice_ = accelerators.parse(name)
  assert (slice_.chips, slice_.hosts, slice_.topology) == DOCUMENTED[name]


def test_v5e_is_accepted_for_v5litepod_and_chips_carry_their_hbm():
  assert accelerators.parse("v5e-8").name == "v5litepod-8"
  assert accelerators.parse("v5e-8").chip.hbm_gib == 16 and accelerators.parse("v6e-8").chip.hbm_gib == 32


@pytest.mark.parametrize("name, message", [("v6e-3", "v6e-1, v6e-4, v6e-8"), ("v5p-7", "TensorCores"),
                                           ("v7-8", "expected v4-N"), ("v5e-512", "v5litepod-256")])
def test_sizes_that_do_not_exist_are_refused_with_the_valid_ones(name, message):
  with pytest.raises(ValueError, match=message):
    accelerators.parse(name)
