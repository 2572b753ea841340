"""Config building blocks shared by the files in configs/ (big_vision style `get_config(arg)`).

A config file's argument is a preset name optionally followed by `key=value` pairs, e.g.
`configs/clm.py:small,family=mixer`. Presets: `tiny` (tests, seconds), `small` (CPU minutes),
`paper` (the paper's sizes), and the runs of `python -m memjax.reproduce` at its smaller scales:
`smoke` (`--scale=tiny`), `cpu` (`--scale=cpu`) and `demo` (`make demo`). Any leaf can then be
overridden with `--config.section.key=value`.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
from typing import Any

import ml_collections

PRESETS: tuple[str, ...] = ("tiny", "small", "paper", "smoke", "cpu", "demo")
PAPER_LEARNING_RATES = {"transformer": 2e-4, "mixer": 5e-4}  # paper §4
# A family's learning rate where it differs from its preset's `lr`: the paper's, and at CPU scale
# 5e-3 for d=128 mixers (the headline's measured choice, docs/headline.md).
FAMILY_LEARNING_RATES = {"paper": PAPER_LEARNING_RATES, "cpu": {"mixer": 5e-3}, "demo": {"mixer": 5e-3}}


def proportional(steps: int) -> dict[str, int]:
  """A run's length with its intervals in proportion (20 logs, 5 evaluations, 2 checkpoints, a 10 %
  warmup of at most 100 steps), so that one preset serves runs of any length."""
  return dict(steps=steps, log_every=max(steps // 20, 1), eval_every=max(steps // 5, 1),
              checkpoint_every=max(steps // 2, 1), warmup_steps=min(100, steps // 10))


# Sizes shared by every task, so that the encoder trained by one config fits the probe of another.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, n_layers=2, n_heads=2, vocab_size=512, n_ctx=32, batch_size=8,
                 steps=20, lr=3e-3, warmup_steps=2, log_every=5, eval_every=10, eval_batches=2,
                 checkpoint_every=10),
    "small": dict(d_model=128, n_layers=2, n_heads=4, vocab_size=2048, n_ctx=32, batch_size=64,
                  steps=2000, lr=2e-3, warmup_steps=100, log_every=50, eval_every=500,
                  eval_batches=8, checkpoint_every=500),
    # Paper runs scan their layers and recompute each block in the backward pass, so that every
    # run fits a v5e-8 slice (16 GiB per chip) with its batch and compiles in minutes (docs/tpu.md).
    "paper": dict(d_model=512, n_layers=16, n_heads=4, vocab_size=8000, n_ctx=512, batch_size=128,
                  steps=200_000, lr=2e-4, warmup_steps=500, log_every=500, eval_every=4000,
                  eval_batches=64, checkpoint_every=8000, scan_layers=True, remat="full"),
    # The shape timed by `python -m memjax.bench train` (see benchmarks/README.md).
    "bench": dict(d_model=256, n_layers=4, n_heads=4, vocab_size=8000, n_ctx=256, batch_size=8,
                  steps=100, lr=2e-4, warmup_steps=10, log_every=10, eval_every=100, eval_batches=4,
                  checkpoint_every=100),
    # The reproduction suite's tiny scale (tests): every run built, compiled and stepped twice; one
    # layer, as compilation is most of such a run's time.
    "smoke": dict(d_model=32, n_layers=1, n_heads=2, vocab_size=512, n_ctx=32, batch_size=8,
                  steps=2, lr=3e-3, warmup_steps=1, log_every=1, eval_every=2, eval_batches=1,
                  checkpoint_every=2, decoder_feed="unroll"),
    # Its cpu scale (docs/results.md): small's widths on 16-token windows (memory models: 4 chunks of
    # 16), so that a transformer autoencoder learns in 1000 steps and each experiment trains within
    # 20 minutes on 2 cores; memory models take 16 x 64 tokens per step, a causal LM batch's 1024.
    "cpu": dict(d_model=128, n_layers=2, n_heads=4, vocab_size=2048, n_ctx=16, batch_size=64,
                memory_batch_size=16, lr=2e-3, eval_batches=8, mixer_kernel=8, decoder_feed="unroll",
                **proportional(500)),
}
# `make demo` (docs/headline.md): small's sizes on 32-token windows, where the gap between causal-LM
# and autoencoder embeddings is clearest within minutes; causal LM and autoencoder train alike.
SIZES["demo"] = SIZES["small"] | dict(steps=2000, eval_every=250, mixer_kernel=8, decoder_feed="unroll")
# Presets whose intervals follow a run's length (`steps=` in a config argument); the others keep
# theirs and checkpoint at the end at the latest.
SCHEDULES = {"cpu": proportional}


def sized(preset: str, steps: int = 0) -> dict[str, Any]:
  """SIZES[preset] for a run of `steps` training steps (0: the preset's own)."""
  size = dict(SIZES[preset])
  steps = steps or size["steps"]
  if preset in SCHEDULES:
    return size | SCHEDULES[preset](steps)
  return size | dict(steps=steps, checkpoint_every=min(size["checkpoint_every"], steps))


def parse_arg(arg: str | None, presets: tuple[str, ...] = PRESETS, **defaults: Any) -> ml_collections.ConfigDict:
  """'small,family=mixer' -> {'preset': 'small', 'family': 'mixer', ...defaults}.

  An item without '=' after the first continues the previous value, so a curriculum can be given
  inline: 'tiny,stages=blank_copy:100,copy'.
  """
  values: dict[str, str] = {}
  key = "preset"
  for position, item in enumerate(filter(None, (arg or "").split(","))):
    name, has_value, value = item.partition("=")
    if has_value:
      key, values[name] = name, value
    elif position == 0:
      values["preset"] = item
    else:
      values[key] += "," + item
  parsed = ml_collections.ConfigDict({"preset": "small", **defaults})
  for name, value in values.items():
    if name not in parsed:
      raise ValueError(f"unknown config argument {name!r}; known: {sorted(parsed.keys())}")
    try:
      parsed[name] = type(parsed[name])(ast.literal_eval(value))
    except (ValueError, SyntaxError):
      parsed[name] = value
  if parsed.preset not in presets:
    raise ValueError(f"unknown preset {parsed.preset!r}; choose from {presets}")
  return parsed


def architecture(size: dict[str, Any], family: str = "transformer", **overrides: Any) -> ml_collections.ConfigDict:
  """One tower's architecture (the fields of memjax.models.config.StackConfig)."""
  kernel = size.get("mixer_kernel", 1) if family == "mixer" else 1
  return ml_collections.ConfigDict(dict(
      family=family, d_model=size["d_model"], n_layers=size["n_layers"], n_heads=size["n_heads"],
      n_kv_heads=0, mlp_dim=0, rope_theta=10_000.0, norm_eps=1e-6, mixer_kernel=kernel, mixer_heads=0,
      scan_layers=size.get("scan_layers", False), remat=size.get("remat", "none"),  # models/stack.py
      attention="auto") | overrides)  # xla | splash | cpu; auto: cpu on CPU, xla on GPU/TPU


def data(size: dict[str, Any], preset: str, **overrides: Any) -> ml_collections.ConfigDict:
  paper = preset == "paper"
  return ml_collections.ConfigDict(dict(
      source="hf:fineweb-edu" if paper else "stdlib",  # see memjax/data/sources.py
      text_field="text", hf_split="train", hf_streaming=True,
      max_documents=0,  # 0: every document of the source
      eval_documents=50_000 if paper else 40,  # the first N documents are held out
      tokenizer="",  # a tokenizer.json path; empty: train (and cache) a byte-level BPE
      vocab_size=size["vocab_size"], n_ctx=size["n_ctx"],
      # 'pack' (documents joined by end-of-text) or 'pad' (one document per example, truncated and
      # padded; the paper's, with left padding so that the last position is a token)
      mode="pad" if paper else "pack", pad_side="left" if paper else "right",
      eval_full_length=paper,  # 'pad' mode: evaluate only documents of at least n_ctx tokens
      cache_dir="") | overrides)


def train(size: dict[str, Any], **overrides: Any) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      steps=size["steps"], batch_size=size["batch_size"], lr=size["lr"],
      warmup_steps=size["warmup_steps"], schedule="linear",  # or 'cosine'; decays to 0
      weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0,
      compute_dtype="float32",  # or 'bfloat16' (parameters stay float32)
      microbatches=1,  # gradient accumulation: the batch in this many slices, one update
      log_every=size["log_every"], eval_every=size["eval_every"], eval_batches=size["eval_batches"],
      checkpoint_every=size["checkpoint_every"], keep_checkpoints=3, async_checkpoints=True,
      progress=True,
      init_from="") | overrides)  # a workdir whose trained parameters start this run (warm_start.py)


def objective(stages: str, **overrides: Any) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      # an objective, or a curriculum 'blank_copy:N,copy:M,combined'; user code as 'pkg.module:attr'
      stages=stages,
      clm_weight=1.0, copy_weight=1.0,  # the combined objective's term weights (reference: 1 : 0.5)
      combined_copy="copy",  # the combined objective's copy view: copy | blank_copy | 'pkg.module:view'
      # loss terms added to every stage's objective: 'pkg.module:term[:weight],...' (objectives/lookup.py)
      extra_terms="",
      # the retrieval objective (objectives/retrieval.py): the built-in objective trained beside its
      # InfoNCE term ('' none), and where a causal LM's embedding is read (other models: encoder.embed_index)
      retrieval_base="", retrieval_index=-1,
      restart_stages=False,  # each curriculum stage a fresh run: new AdamW state, own warmup and decay
      copy_delimiter_tokens=0, copy_delimiter_id=-1,  # -1: the tokenizer's separator token
      blank_id=-1) | overrides)  # -1: the tokenizer's blank token


def memory(**overrides: Any) -> ml_collections.ConfigDict:
  """A memory model's memories: how many, where they sit in the decoder, what they encode, and how
  they are stored."""
  return ml_collections.ConfigDict(dict(
      kind="parallel", chunks=4,
      slots="fixed",  # or 'variable'
      pad_value=1.0,  # the constant vector of unused slots (and of every slot without memory)
      encoding="text",
      # How memories are stored (none | bf16 | int8 | int4 | binary: memjax.models.quantize), and
      # whether training adds one quantisation step of uniform noise instead of rounding.
      quantize="none", quantize_noise=False) | overrides)


def mesh(**overrides: Any) -> ml_collections.ConfigDict:
  """Device mesh axis sizes; -1 takes every remaining device."""
  return ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1) | overrides)


def base(task: str, preset: str, stages: str, seed: int = 0, *, family: str = "",
         steps: int = 0) -> ml_collections.ConfigDict:
  """The sections every task has: data, train, objective, mesh. `family` picks its learning rate
  (FAMILY_LEARNING_RATES); `steps` (0: the preset's) its training length."""
  size = sized(preset, steps)
  cfg = ml_collections.ConfigDict()
  cfg.task = task
  cfg.seed = seed
  # 'memjax' or 'reference': how autoencoders' and memory models' own token embeddings and heads
  # are initialized (memjax/models/init.py); the paper presets use 'reference'.
  cfg.init = "memjax"
  cfg.data = data(size, preset)
  cfg.train = train(size, compute_dtype="bfloat16" if preset == "paper" else "float32",
                    lr=FAMILY_LEARNING_RATES.get(preset, {}).get(family, size["lr"]))
  # The paper's stages are chained runs (reference-code.md §3.3): each restarts AdamW and its schedule.
  cfg.objective = objective(stages, restart_stages=preset == "paper")
  cfg.mesh = mesh()
  return cfg


def encoder(size: dict[str, Any], family: str, **overrides: Any) -> ml_collections.ConfigDict:
  """An encoder tower: architecture plus where its single embedding is read and how it is reused."""
  # frozen_scope (when frozen): 'all' (embedding and blocks) or 'blocks' (a fresh trainable embedding
  # in front of frozen blocks, as the reference; memjax/training/encoders.py)
  reuse = dict(embed_index=-1, compression=1, checkpoint="", frozen=False, frozen_scope="all")
  return architecture(size, family, **reuse | overrides)


def decoder(size: dict[str, Any], family: str, feed: str = "", **overrides: Any) -> ml_collections.ConfigDict:
  """A decoder fed one embedding: `feed` unroll (a distinct window of it per position) or repeat;
  unless given, the preset's (`decoder_feed`), else unrolled for transformers, whose attention cannot
  tell identical inputs apart, and repeated for mixers (the paper's)."""
  feed = feed or size.get("decoder_feed") or ("unroll" if family == "transformer" else "repeat")
  return architecture(size, family, feed=feed, **overrides)


def pretrained(path: str) -> ml_collections.ConfigDict:
  """A converted model's architecture (`python -m memjax.convert hf-llama|bert SRC DIR`), vocabulary and
  tokenizer: {'architecture', 'tie_embeddings', 'vocab_size', 'tokenizer'}."""
  import json

  config = pathlib.Path(path) / "config.json"
  if not config.is_file():
    raise FileNotFoundError(f"{path} is not a converted model (no config.json); convert one with "
                            "python -m memjax.convert hf-llama SRC DIR (or bert SRC DIR)")
  run = json.loads(config.read_text())
  if run.get("task") != "clm":
    raise ValueError(f"{path} holds a {run.get('task')!r} run, not a causal LM")
  model = dict(run["model"])
  tie = model.pop("tie_embeddings", False)
  return ml_collections.ConfigDict(dict(
      architecture=model, tie_embeddings=tie, vocab_size=run["data"]["vocab_size"],
      tokenizer=str(pathlib.Path(path).absolute() / "tokenizer.json")))


def described(architecture: dict[str, Any], tie: bool, path: str) -> ml_collections.ConfigDict:
  """What `pretrained(path)` reads once the model with these architecture fields (StackConfig's,
  vocab_size and length included) is converted to `path`: for configs planned before it exists."""
  model = {k: v for k, v in architecture.items() if k not in ("vocab_size", "length")}
  return ml_collections.ConfigDict(dict(
      architecture=model, tie_embeddings=tie, vocab_size=architecture["vocab_size"],
      tokenizer=str(pathlib.Path(path).absolute() / "tokenizer.json")))


# The reference's LLM probes (llm_information.py, reference-code.md §4.3 and §5; paper §5.2): an
# unrolled decoder d=512, 16 layers, 4 heads; lr 2e-4, warmup 100, 40k steps of 32768 tokens.
LLM_PROBE_STEPS = 40_000
LLM_PROBE_TOKENS_PER_BATCH = 32_768


def probe_pretrained(cfg: ml_collections.ConfigDict, lm: ml_collections.ConfigDict, path: str, preset: str, *,
                     feed: str = "", frozen_scope: str = "") -> ml_collections.ConfigDict:
  """A probe config (configs/probe.py) reading the converted model `lm` (`pretrained(path)`) at
  `path` as its frozen encoder, whole by default, with its tokenizer and vocabulary; at the paper
  preset the reference's LLM probe decoder and schedule. Returns `cfg`, modified in place."""
  cfg.encoder.update(lm.architecture)
  cfg.encoder.update(checkpoint=path, frozen=True, frozen_scope=frozen_scope or "all",
                     scan_layers=True)  # no weight-slice copies
  cfg.data.update(vocab_size=lm.vocab_size, tokenizer=lm.tokenizer)
  cfg.decoder.feed = feed or "unroll"
  if preset == "paper":
    cfg.decoder.update(family="transformer", d_model=512, n_layers=16, n_heads=4)
    cfg.data.n_ctx = 64
    cfg.train.update(lr=2e-4, warmup_steps=100, batch_size=LLM_PROBE_TOKENS_PER_BATCH // cfg.data.n_ctx)
  return cfg


def load(path: str | pathlib.Path, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file, as `--config=path:arg` would give it."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(f"memjax_config_{path.stem}", path)
  if spec is None or not path.is_file():
    raise FileNotFoundError(f"config file {str(path)!r} does not exist")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
