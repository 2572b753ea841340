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
COPY_STEPS = {"paper": 100_000}  # the copy curriculum's stages (elsewhere configs/memory.py's steps)

# Probe names by the key of the probed run (None: an untrained encoder), as the information
# experiment first named them after its table's labels; other probed runs: <family>_probe_<key>.
PROBE_NAMES = {None: "untrained", "clm": "causal_lm", "autoencoder": "autoencoder",
               "memory_clm": "memory_model_clm", "memory_combined": "memory_model_combined"}
# Where a probe reads a run's encoder: the last position of a causal LM never received a loss.
EMBED_INDEX = {"clm": -2}
# At paper scale, as the reference's probe drivers: its causal transformer is read at the last
# position (hamming_drivers/clm_transformer_information.py), its causal mixer at the second-to-last
# (clm_mixer_information.py, clm_encoder=True); docs/differences.md.
PAPER_EMBED_INDEX = {("transformer", "clm"): -1}
# The frozen autoencoder encoders of the reference's memory-model drivers, by experiment, at paper
# scale (elsewhere, and for transformers, the shared autoencoder on chunk-length contexts): copy
# (memory_mixer_copy.py: a d=512, 16-layer, kernel-4 mixer autoencoder) and frozen
# (frozen_mixer_trainer.py: a d=512, 8-layer, kernel-16 one). configs/autoencoder.py keys.
CHUNK_AUTOENCODERS = {"copy": {"mixer": dict(d_model=512, n_layers=16, kernel=4)},
                      "frozen": {"mixer": dict(d_model=512, n_layers=8, kernel=16)}}


def embed_index(scale: str, family: str, key: str | None) -> int:
  """The position a probe or a memory model reads the encoder of run `key` at (a retrieval-trained
  run's: where its base run's is read, which is where its retrieval term read it)."""
  key = RETRIEVAL_BASES.get(key, key)
  if scale == "paper" and (family, key) in PAPER_EMBED_INDEX:
    return PAPER_EMBED_INDEX[family, key]
  return EMBED_INDEX.get(key, -1)


def clm(scale: str, family: str) -> suite.RunSpec:
  return suite.RunSpec(f"{family}_clm", suite.config("clm.py", scale, family=family))


def autoencoder(scale: str, family: str, feed: str | None = None, **towers: int) -> suite.RunSpec:
  """The shared autoencoder (its decoder fed as the preset feeds it: unrolled below paper scale), or
  one fed `feed` where that differs: <family>_autoencoder_<feed>; `towers` (configs/autoencoder.py's
  d_model, n_layers, kernel) size both towers otherwise: <family>_autoencoder_d512_n16_k4."""
  shared = suite.RunSpec(f"{family}_autoencoder", suite.config("autoencoder.py", scale, family=family))
  if towers:
    name = f"{family}_autoencoder_" + "_".join(f"{TOWER_TAGS[key]}{towers[key]}" for key in TOWER_TAGS
                                              if key in towers)
    return suite.RunSpec(name, suite.config("autoencoder.py", scale, family=family, **towers))
  if feed is None or shared.cfg.decoder.feed == feed:
    return shared
  cfg = suite.config("autoencoder.py", scale, family=family, feed=feed)
  return suite.RunSpec(f"{family}_autoencoder_{feed}", cfg)


TOWER_TAGS = {"d_model": "d", "n_layers": "n", "kernel": "k"}


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


def chunk_encoders(scale: str, family: str, use: str = "") -> dict[str, suite.RunSpec]:
  """The causal LM and autoencoder whose encoders memory models reuse frozen: trained on a memory
  model's chunk length (the shared runs where that is their context, as at tiny and cpu scale). The
  autoencoder is the reference's for `use` (CHUNK_AUTOENCODERS: copy, frozen) at paper scale."""
  chunk = suite.encoder_length(memory(scale, family).cfg)
  towers = CHUNK_AUTOENCODERS.get(use, {}).get(family, {}) if scale == "paper" else {}
  return {"clm": suite.at_length(clm(scale, family), chunk),
          "autoencoder": suite.at_length(autoencoder(scale, family, **towers), chunk)}


def copy_run(scale: str, family: str, name: str, stages: str, root: pathlib.Path, *, kind: str = "parallel",
             encoder: suite.RunSpec | None = None, embed_index: int = -1, init_from: str = "",
             steps: dict[str, int] = COPY_STEPS) -> suite.RunSpec:
  """A memory model on a copy objective (configs/memory.py), its encoder `encoder`'s frozen (else
  trainable), continuing run `init_from` (a curriculum's next stage): <family>_<name>."""
  cfg = suite.config("memory.py", scale, steps, family=family, kind=kind, stages=stages)
  if encoder is not None:
    suite.reuse_encoder(cfg, encoder, root, embed_index=embed_index)
  cfg.train.init_from = str(suite.run_dir(root, init_from)) if init_from else ""
  return suite.RunSpec(f"{family}_{name}", cfg)


def curriculum(scale: str, family: str, root: pathlib.Path) -> list[suite.RunSpec]:
  """The reference's curriculum (reference-code.md §3.3), each stage a run continuing the previous
  one's: the autoencoder (on chunk-length contexts), then a memory model reading its frozen encoder
  on blank copy, on copy, and on the combined objective (next-token prediction + copy, the paper
  preset's view and weights: blank copy at half the weight, memory_transformer_combined.py)."""
  ae = chunk_encoders(scale, family, "copy")["autoencoder"]
  return [ae,
          copy_run(scale, family, "blank_copy_frozen_ae", "blank_copy", root, encoder=ae),
          copy_run(scale, family, "curriculum_frozen_ae", "copy", root, encoder=ae,
                   init_from=f"{family}_blank_copy_frozen_ae"),
          copy_run(scale, family, "curriculum_combined_frozen_ae", "combined", root, encoder=ae,
                   init_from=f"{family}_curriculum_frozen_ae", steps=COMBINED_STEPS)]


# The retrieval-trained runs (paper §5.1 "Causal → Retrieval", "Autoencoder → Retrieval"): a shared
# run continued (train.init_from, fresh AdamW state and schedule) on the InfoNCE retrieval objective
# alone (objectives/retrieval.py), as the reference fine-tuned its causal LMs and autoencoders; by
# key, the key of the run they continue. Steps and, at paper scale, the reference's InfoNCE learning
# rate (reference-code.md's run table: 200k steps at 1e-4).
RETRIEVAL_BASES = {"clm_retrieval": "clm", "autoencoder_retrieval": "autoencoder"}
RETRIEVAL_STEPS = {"cpu": 300, "paper": 200_000}
PAPER_RETRIEVAL_LR = 1e-4


def retrieval(scale: str, family: str, key: str, root: pathlib.Path) -> suite.RunSpec:
  """Run `key` of RETRIEVAL_BASES: <family>_<base>_retrieval, its embedding read where the base run's
  is probed."""
  if key not in RETRIEVAL_BASES:
    raise ValueError(f"unknown retrieval-trained run {key!r}; choose from {tuple(RETRIEVAL_BASES)}")
  base = shared(scale, family)[RETRIEVAL_BASES[key]]
  file = "clm.py" if base.cfg.task == "clm" else "autoencoder.py"
  cfg = suite.config(file, scale, RETRIEVAL_STEPS, family=family)
  cfg.objective.stages = "retrieval"
  if base.cfg.task == "clm":  # other encoders are read at their own encoder.embed_index
    cfg.objective.retrieval_index = embed_index(scale, family, key)
  cfg.train.init_from = str(suite.run_dir(root, base.name))
  if scale == "paper":
    cfg.train.lr = PAPER_RETRIEVAL_LR
  return suite.RunSpec(f"{base.name}_retrieval", cfg)


def probed(scale: str, family: str, key: str | None, n_ctx: int | None = None,
           root: pathlib.Path | None = None) -> suite.RunSpec | None:
  """The run whose encoder the probe of `key` reads: the shared run (or the retrieval-trained run of
  RETRIEVAL_BASES in `root`), or (`n_ctx`) the same run trained on contexts of that length
  (suite.at_length); None for an untrained encoder."""
  if key is None:
    return None
  source = retrieval(scale, family, key, root) if key in RETRIEVAL_BASES else shared(scale, family)[key]
  return suite.at_length(source, n_ctx) if n_ctx is not None else source


def probe_name(family: str, key: str | None) -> str:
  return f"{family}_probe_{PROBE_NAMES.get(key, key)}"


def probe(scale: str, family: str, key: str | None, root: pathlib.Path, n_ctx: int | None = None) -> suite.RunSpec:
  """The probe of a shared run's frozen encoder (`key`; None: an untrained encoder of the causal
  LM's architecture), named after the key (PROBE_NAMES); of the run trained at another length
  `n_ctx`: <family>_probe_<key>_c<n_ctx>."""
  source = probed(scale, family, key, n_ctx, root)
  own_length = source is None or source.name == probed(scale, family, key, root=root).name
  name = probe_name(family, key) if own_length else f"{family}_probe_{key}_c{n_ctx}"
  cfg = suite.probe(scale, source, root, embed_index=embed_index(scale, family, key),
                    architecture=clm(scale, family).cfg.model)
  return suite.RunSpec(name, cfg)
