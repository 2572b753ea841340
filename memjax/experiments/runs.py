"""The runs that several experiments share, and their names: one registry instead of experiments
reaching into each other.

A shared run is trained once per workdir (suite.train reads a finished one back), so a name must
always stand for one config: every experiment asks this module for the causal LMs, autoencoders,
CLM-only and combined-objective memory models, their memory-model baselines and the probes of their
encoders. The names are those of workdirs already trained (docs/results.md), hence a few irregular
ones, each declared here once.
"""

from __future__ import annotations

import pathlib

from memjax.experiments import suite

# Every shared run trains for its config file's steps at the scale's preset (configs/*.py: at cpu
# scale sized so that each experiment trains in at most 20 minutes from an empty workdir on 2 cores,
# docs/results.md), except the combined-objective memory models:
COMBINED_STEPS = {"cpu": 300, "paper": 100_000}

# Probe names by the key of the probed run (None: an untrained encoder), as the information
# experiment first named them after its table's labels; other probed runs: <family>_probe_<key>.
PROBE_NAMES = {None: "untrained", "clm": "causal_lm", "autoencoder": "autoencoder",
               "memory_clm": "memory_model_clm", "memory_combined": "memory_model_combined"}
# Where a probe reads a run's encoder: the last position of a causal LM never received a loss.
EMBED_INDEX = {"clm": -2}


def clm(scale: str, family: str) -> suite.RunSpec:
  return suite.RunSpec(f"{family}_clm", suite.config("clm.py", scale, family=family))


def autoencoder(scale: str, family: str, feed: str | None = None) -> suite.RunSpec:
  """The shared autoencoder (its decoder fed as the preset feeds it: unrolled below paper scale), or
  one fed `feed` where that differs: <family>_autoencoder_<feed>."""
  shared = suite.RunSpec(f"{family}_autoencoder", suite.config("autoencoder.py", scale, family=family))
  if feed is None or shared.cfg.decoder.feed == feed:
    return shared
  cfg = suite.config("autoencoder.py", scale, family=family, feed=feed)
  return suite.RunSpec(f"{family}_autoencoder_{feed}", cfg)


def memory(scale: str, family: str, kind: str = "parallel", *, slots: str = "fixed", stages: str = "clm",
           combined_copy: str = "copy") -> suite.RunSpec:
  """A memory model (configs/memory.py) reading 4 chunks. Names: the parallel, fixed-slot models by
  their objective (<family>_memory_clm, _memory_combined, _memory_combined_blank for the blank-copy
  view), the others by kind (<family>_memory_none, _memory_parallel_variable, ...)."""
  steps = COMBINED_STEPS if stages == "combined" else None
  cfg = suite.config("memory.py", scale, steps, family=family, kind=kind, stages=stages)
  cfg.memory.slots = slots
  if stages == "combined":  # the view of the copy half: visible tokens unless asked (the paper
    cfg.objective.combined_copy = combined_copy  # preset's default is blank copy)
  if kind == "parallel" and slots == "fixed":
    name = f"{family}_memory_{stages}" + ("_blank" if combined_copy == "blank_copy" else "")
  else:
    name = f"{family}_memory_{kind}" + ("_variable" if slots == "variable" else "")
  return suite.RunSpec(name, cfg)


def shared(scale: str, family: str) -> dict[str, suite.RunSpec]:
  """Every shared trained run of one family whose encoder is probed, by key."""
  return {"clm": clm(scale, family), "autoencoder": autoencoder(scale, family),
          "memory_clm": memory(scale, family), "memory_combined": memory(scale, family, stages="combined"),
          "memory_combined_blank": memory(scale, family, stages="combined", combined_copy="blank_copy")}


def chunk_encoders(scale: str, family: str) -> dict[str, suite.RunSpec]:
  """The causal LM and autoencoder whose encoders memory models reuse frozen: trained on a memory
  model's chunk length (the shared runs where that is their context, as at tiny and cpu scale)."""
  chunk = suite.encoder_length(memory(scale, family).cfg)
  return {"clm": suite.at_length(clm(scale, family), chunk),
          "autoencoder": suite.at_length(autoencoder(scale, family), chunk)}


def probed(scale: str, family: str, key: str | None, n_ctx: int | None = None) -> suite.RunSpec | None:
  """The run whose encoder the probe of `key` reads: the shared run, or (`n_ctx`) the same run
  trained on contexts of that length (suite.at_length); None for an untrained encoder."""
  if key is None:
    return None
  source = shared(scale, family)[key]
  return suite.at_length(source, n_ctx) if n_ctx is not None else source


def probe_name(family: str, key: str | None) -> str:
  return f"{family}_probe_{PROBE_NAMES.get(key, key)}"


def probe(scale: str, family: str, key: str | None, root: pathlib.Path, n_ctx: int | None = None) -> suite.RunSpec:
  """The probe of a shared run's frozen encoder (`key`; None: an untrained encoder of the causal
  LM's architecture), named after the key (PROBE_NAMES); of the run trained at another length
  `n_ctx`: <family>_probe_<key>_c<n_ctx>."""
  source = probed(scale, family, key, n_ctx)
  own_length = source is None or source.name == shared(scale, family)[key].name
  name = probe_name(family, key) if own_length else f"{family}_probe_{key}_c{n_ctx}"
  cfg = suite.probe(scale, source, root, embed_index=EMBED_INDEX.get(key, -1),
                    architecture=clm(scale, family).cfg.model)
  return suite.RunSpec(name, cfg)
