"""A paper-scale train step compiled for a v5e 2x2 slice from a CPU host, by attention path.

  python benchmarks/tpu_attention_compile.py clm.py:paper 32 xla splash

Prints one JSON line per path: compile seconds, per-device memory (XLA's memory analysis: argument
+ output + temporaries - donated aliases) and the number of Mosaic kernels. Nothing runs: this
compiles with the local libtpu for abstract TPU devices (set ALLOW_MULTIPLE_LIBTPU_LOAD=1 when
another process holds libtpu).
"""

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402
from jax.experimental import topologies  # noqa: E402

from memjax import config as mc, models  # noqa: E402
from memjax.data import SpecialIds  # noqa: E402
from memjax.objectives import curriculum, lookup  # noqa: E402
from memjax.training import loop, optim, sharding, steps  # noqa: E402
from memjax.training.state import split_model  # noqa: E402


def compile_step(config: str, batch_size: int, attention: str, devices) -> dict:
  """`config` as --config takes it, relative to configs/: 'clm.py:paper'."""
  name, _, arg = config.partition(":")
  cfg = mc.load(f"configs/{name}", arg or None)
  cfg.mesh.update(data=len(devices), fsdp=1, tensor=1)
  cfg.train.batch_size = batch_size
  for tower in ("model", "encoder", "decoder"):
    if tower in cfg and "attention" in cfg[tower]:
      cfg[tower].attention = attention
  graphdef, _ = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
  stage = curriculum.parse(cfg.objective.stages, cfg.train.steps)[0]
  tx = optim.optimizer(cfg.train)
  state = jax.eval_shape(lambda: loop._init_state(cfg, tx))
  objective = lookup.resolve_all([stage.objective], cfg, special=SpecialIds(pad=0, eos=0, blank=1, sep=2))
  mesh = sharding.make_mesh(cfg.mesh, list(devices))
  shardings = sharding.tree_shardings(state, mesh)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
  B, T = cfg.train.batch_size, cfg.data.n_ctx
  spec = sharding.batch_sharding(mesh)
  batch = {"tokens": jax.ShapeDtypeStruct((B, T), jnp.int32, sharding=spec),
           "mask": jax.ShapeDtypeStruct((B, T), jnp.float32, sharding=spec)}
  step = steps.make_train_step(graphdef, objective[stage.objective], tx, optim.schedule(cfg.train),
                               loop.COMPUTE_DTYPES[cfg.train.compute_dtype])
  start = time.perf_counter()
  compiled = steps.jit_train_step(step, shardings, mesh).lower(abstract, batch).compile()
  seconds = time.perf_counter() - start
  m = compiled.memory_analysis()
  total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
  return {"config": config, "attention": attention, "compile_s": round(seconds, 1), "batch": B, "n_ctx": T,
          "temp_gib": round(m.temp_size_in_bytes / 2**30, 2), "total_gib": round(total / 2**30, 2),
          "mosaic_kernels": compiled.as_text().count('custom_call_target="tpu_custom_call"')}


if __name__ == "__main__":
  jax.config.update("jax_enable_compilation_cache", False)
  tpu = topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2").devices
  for path in sys.argv[3:]:
    print(json.dumps(compile_step(sys.argv[1], int(sys.argv[2]), path, tpu)), flush=True)
