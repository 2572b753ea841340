"""A mixer's kernel-k token mixing, forward and backward, compiled for one v5e chip from a CPU host.

  ALLOW_MULTIPLE_LIBTPU_LOAD=1 python benchmarks/tpu_mixing_compile.py [B T F k]
  python benchmarks/tpu_mixing_compile.py --cpu [B T F k]   # runs both on XLA:CPU, interleaved

Two ways to compute y[b, i, f] = sum_{j, p} W[p, i, j] z[b, j, f + p - (k-1)//2] (the paper mixer's
token mixing, one map): `taps` stacks the k shifted copies of z and contracts them (memjax before
2026-12-03), `conv` is memjax's `models.mixer.mix_taps` (one grouped 1-D convolution over features).
Prints one JSON line per way: compiled FLOPs, bytes accessed, temporaries, compile seconds. Nothing
runs: libtpu compiles for abstract devices. Default shape: 16 sequences of 1024 positions, 1024
features, kernel 8 (the paper's mixer encoder, per v5e-8 chip).
"""

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.experimental import topologies  # noqa: E402
from jax.sharding import SingleDeviceSharding  # noqa: E402

from memjax.models.mixer import mix_taps, shifted_features  # noqa: E402


def taps(weight_NxKxTxT, z_BxNxTxF):
  stacked = jax.vmap(shifted_features, in_axes=(1, None), out_axes=1)(z_BxNxTxF, weight_NxKxTxT.shape[1])
  return jnp.einsum("nkij,bnkjf->bnif", weight_NxKxTxT, stacked)


def time_on_cpu(B: int, T: int, F: int, k: int, rounds: int = 5, calls: int = 5) -> None:
  """Median seconds of one forward + backward per way, the ways interleaved round by round (the
  host's speed drifts)."""
  import numpy as np

  rng = np.random.default_rng(0)
  weight = jnp.asarray(rng.normal(size=(1, k, T, T)), jnp.float32)
  z = jnp.asarray(rng.normal(size=(B, 1, T, F)), jnp.float32)
  steps = {name: jax.jit(jax.grad(lambda w, z, mix=mix: jnp.sum(mix(w, z) ** 2), argnums=(0, 1)))
           for name, mix in (("taps", taps), ("conv", mix_taps))}
  seconds = {name: [] for name in steps}
  for step in steps.values():
    jax.block_until_ready(step(weight, z))
  for _ in range(rounds):
    for name, step in steps.items():
      start = time.perf_counter()
      for _ in range(calls):
        jax.block_until_ready(step(weight, z))
      seconds[name].append((time.perf_counter() - start) / calls)
  for name, values in seconds.items():
    print(json.dumps({"way": name, "shape": [B, T, F, k], "cpu_ms": round(1e3 * float(np.median(values)), 2)}))


def main() -> None:
  args = [a for a in sys.argv[1:] if a != "--cpu"]
  B, T, F, k = (int(a) for a in args[:4]) if len(args) > 3 else (16, 1024, 1024, 8)
  if "--cpu" in sys.argv:
    return time_on_cpu(B, T, F, k)
  device = topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2").devices[0]
  on_chip = SingleDeviceSharding(device)
  weight = jax.ShapeDtypeStruct((1, k, T, T), jnp.bfloat16, sharding=on_chip)
  z = jax.ShapeDtypeStruct((B, 1, T, F), jnp.bfloat16, sharding=on_chip)
  for name, mix in (("taps", taps), ("conv", mix_taps)):
    loss = lambda w, z, mix=mix: jnp.sum(mix(w, z).astype(jnp.float32) ** 2)  # noqa: E731
    start = time.perf_counter()
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(weight, z).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    print(json.dumps({"way": name, "shape": [B, T, F, k], "flops": cost["flops"],
                      "bytes_accessed": cost["bytes accessed"],
                      "temp_gib": compiled.memory_analysis().temp_size_in_bytes / 2**30,
                      "compile_seconds": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
  main()
