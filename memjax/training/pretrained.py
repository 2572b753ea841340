"""Pretrained causal LMs as memjax checkpoints: convert from / export to Hugging Face, and reuse.

A converted model is a workdir-like folder: `config.json` (a causal-LM run config whose `model`
section is the architecture), `tokenizer.json`, `pretrained.json` (where it came from, with the
source's HF config) and `checkpoints/0` (parameters `decoder` and, untied, `head`). Any config can
name it: as the frozen encoder of a probe (`encoder.checkpoint`, it is a causal-LM workdir), as the
decoder of a memory model (`decoder.checkpoint`), and `memjax.score` / `memjax.convert to-hf` read it
as they read a trained run. Parameters are restored straight into their sharded arrays (Orbax reads
one array at a time), after the freshly initialized ones they replace have been freed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from etils import epath
from tokenizers import Tokenizer

from memjax import config as mc
from memjax import models
from memjax.models import hf_bert, hf_llama, lora
from memjax.models.config import ADAPTER_FIELDS, ARCH_FIELDS, EXECUTION_FIELDS, StackConfig
from memjax.training import checkpoint, encoders, run_folder
from memjax.training.run_folder import CHECKPOINTS, CONFIG_JSON, TOKENIZER_JSON
from memjax.training.state import TrainState, merge_trees

PRETRAINED_JSON = "pretrained.json"
HF_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Fields that do not change a decoder's pretrained parameters (LoRA adds its own).
NOT_COMPARED = ("length", *EXECUTION_FIELDS, *ADAPTER_FIELDS)


# ------------------------------------------------------------------------------ the folder


def run_config(arch: StackConfig, tie: bool, tokenizer_path: str) -> ml_collections.ConfigDict:
  """The causal-LM run config that describes a converted model (what `config.json` holds)."""
  cfg = mc.base("clm", "paper", stages="clm")
  cfg.model = ml_collections.ConfigDict(
      {k: v for k, v in arch.to_dict().items() if k in ARCH_FIELDS} | {"tie_embeddings": tie})
  cfg.data.update(vocab_size=arch.vocab_size, n_ctx=arch.length, tokenizer=tokenizer_path)
  return cfg


def write(out: str, arch: StackConfig, tie: bool, params: dict[str, Any], tokenizer_json: str,
          source: dict[str, Any]) -> epath.Path:
  """Writes a converted model folder (see the module docstring); `params` = {'decoder', 'head'?}."""
  out_dir = encoders.new_folder(out)
  out_dir.mkdir(parents=True, exist_ok=True)
  tokenizer = out_dir / TOKENIZER_JSON
  tokenizer.write_text(tokenizer_json)
  cfg = run_config(arch, tie, str(checkpoint.absolute(tokenizer)))
  (out_dir / CONFIG_JSON).write_text(cfg.to_json_best_effort(indent=2))
  (out_dir / PRETRAINED_JSON).write_text(json.dumps(source, indent=2))
  mngr = checkpoint.manager(out_dir / CHECKPOINTS, items=(checkpoint.STATE,), async_save=False)
  # As host jax arrays (device_put of float32 numpy is zero-copy there): Orbax stages a host copy of
  # the arrays it saves, and of numpy arrays even more (peak host memory of both:
  # benchmarks/README.md, "Pretrained models").
  cpu = jax.devices("cpu")[0]
  checkpoint.save(mngr, 0, {"params": jax.tree.map(lambda x: jax.device_put(x, cpu), params)}, force=True)
  mngr.close()
  return out_dir


def _tokenizer_json(src: str, arch: StackConfig) -> str:
  tokenizer = epath.Path(src) / TOKENIZER_JSON
  if not tokenizer.exists():
    raise FileNotFoundError(f"{src} has no {TOKENIZER_JSON}")
  tokenizer_json = tokenizer.read_text()
  vocab = Tokenizer.from_str(tokenizer_json).get_vocab_size()
  if vocab != arch.vocab_size:
    raise ValueError(f"{src}/tokenizer.json has {vocab} tokens but config.json has vocab_size="
                     f"{arch.vocab_size}; memjax needs them equal (data.vocab_size is both)")
  return tokenizer_json


def convert_hf_llama(src: str, dst: str) -> epath.Path:
  """`python -m memjax.convert hf-llama SRC DST`: an HF Llama folder -> a converted model folder."""
  hf_config = hf_llama.read_hf_config(src)
  arch, tie = hf_llama.read_config(hf_config)  # refuses bad configs before anything is read
  tokenizer_json = _tokenizer_json(src, arch)
  encoders.new_folder(dst)
  params = hf_llama.read_params(hf_llama.open_weights(epath.Path(src)), arch, tie)
  return write(dst, arch, tie, params, tokenizer_json, {"source": str(src), "hf_config": hf_config})


def convert_hf_bert(src: str, dst: str) -> epath.Path:
  """`python -m memjax.convert bert SRC DST`: an HF BERT folder -> a converted folder whose trunk
  (parameter group 'decoder', no head: tied) is the bidirectional encoder; usable only as a frozen
  encoder (`pretrained=DST`), not as a causal LM."""
  hf_config = hf_llama.read_hf_config(src)
  arch = hf_bert.read_config(hf_config)
  tokenizer_json = _tokenizer_json(src, arch)
  encoders.new_folder(dst)
  params = hf_bert.read_params(hf_llama.open_weights(epath.Path(src)), arch)
  return write(dst, arch, True, params, tokenizer_json, {"source": str(src), "hf_config": hf_config})


# ------------------------------------------------------------------------------ reading a causal LM


@dataclasses.dataclass(frozen=True)
class LMSource:
  """A causal LM inside a converted folder or a trained run (clm, or a memory model's decoder)."""

  directory: epath.Path
  checkpoints: epath.Path
  step: int
  arch: StackConfig  # without LoRA: adapters are merged when the parameters are read
  tie: bool
  task: str  # 'clm' (a converted model or clm run) or 'memory' (a memory model's decoder)
  lora_scale: float  # alpha / rank of the run's adapters (0: none)
  tokenizer_digest: str
  hf_config: dict[str, Any]


def locate(path: str) -> LMSource:
  root = epath.Path(path)
  cfg = run_folder.read_config(root, "a memjax checkpoint folder; convert a Hugging Face model first: "
                            "python -m memjax.convert hf-llama SRC DST")
  spec = models.model_spec(cfg)
  if spec.trunk:
    arch, section = (spec.encoder, cfg.model) if spec.task == "clm" else (spec.decoder, cfg.decoder)
    tie = bool(section.get("tie_embeddings", False))
  else:
    raise ValueError(f"{path} holds a {cfg.task!r} run, which has no causal LM to read (a converted "
                     "model, a clm run or a parallel/none memory model's decoder)")
  if (root / PRETRAINED_JSON).exists():
    hf_config = json.loads((root / PRETRAINED_JSON).read_text()).get("hf_config", {})
  else:
    hf_config = {}
  if spec.task == "memory" and cfg.decoder.get("checkpoint"):
    source = epath.Path(cfg.decoder.checkpoint) / PRETRAINED_JSON
    if source.exists():
      hf_config = json.loads(source.read_text()).get("hf_config", {})
  scale = arch.lora_alpha / arch.lora_rank if arch.lora_rank else 0.0
  digest = run_folder.tokenizer_digest(root)
  checkpoints = root / CHECKPOINTS
  return LMSource(root, checkpoints, run_folder.latest_step(checkpoints), arch.replace(lora_rank=0),
                  tie, spec.task, scale, digest, hf_config)


def read(source: LMSource, sharding: jax.sharding.Sharding | None = None) -> dict[str, Any]:
  """The LM's parameters {'decoder', 'head'?} in float32, LoRA adapters merged: numpy arrays, or
  jax arrays restored straight onto `sharding` (one copy on the host, not a numpy one and a jax one)."""
  mngr = checkpoint.manager(source.checkpoints, items=(checkpoint.STATE,))
  try:
    shapes = checkpoint.stored_shapes(mngr, source.step, wanted=("decoder", "head"))
    wanted = [f"{where}/{part}/" for where in ("params", "frozen") for part in ("decoder", "head")]
    flat = {name: jax.ShapeDtypeStruct(shape, np.float32, sharding=sharding) for name, shape in shapes.items()
            if name.startswith(tuple(wanted))}
    restored = checkpoint.restore_arrays(mngr, source.step, encoders.unflatten(flat))
  finally:
    mngr.close()
  merged = merge_trees(restored.get("params", {}), restored.get("frozen", {}))
  if "decoder" not in merged:
    raise checkpoint.CheckpointError(f"{source.directory} holds no 'decoder' parameters")
  decoder = lora.merge(merged["decoder"], source.lora_scale) if source.lora_scale else merged["decoder"]
  params = {"decoder": decoder}
  if not source.tie:
    if "head" not in merged:
      raise checkpoint.CheckpointError(f"{source.directory} holds no 'head' (an untied LM head)")
    params["head"] = merged["head"]
  return params


def to_hf(src: str, dst: str) -> epath.Path:
  """`python -m memjax.convert to-hf SRC DST`: config.json, model.safetensors and tokenizer.json
  that `transformers.AutoModelForCausalLM.from_pretrained(DST)` loads."""
  from safetensors.numpy import save_file

  source = locate(src)
  if source.arch.family != "transformer":
    raise ValueError(f"{src} holds a {source.arch.family!r} model; only transformers export to Llama")
  out_dir = encoders.new_folder(dst)
  params = read(source)
  weights = hf_llama.hf_weights(params, source.arch, source.tie)
  del params
  out_dir.mkdir(parents=True, exist_ok=True)
  save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
  config = hf_llama.write_config(source.arch, source.tie, source.hf_config)
  (out_dir / "config.json").write_text(json.dumps(config, indent=2))
  (out_dir / TOKENIZER_JSON).write_text((source.directory / TOKENIZER_JSON).read_text())
  return out_dir


# ------------------------------------------------------------------------------ reuse in a run


def adapters_only(trainable: dict[str, Any], frozen: dict[str, Any], cfg: Any) -> tuple[dict, dict]:
  """With LoRA on the memory model's decoder, only its adapters stay trainable (with the encoder
  and bridge): the decoder's own weights and the LM head move to the frozen parameters."""
  if cfg.task != "memory" or not cfg.decoder.get("lora_rank", 0) or "decoder" not in trainable:
    return trainable, frozen
  adapters, base = lora.split_adapters(trainable["decoder"])
  moved = {"decoder": base} | ({"head": trainable["head"]} if "head" in trainable else {})
  kept = {k: v for k, v in trainable.items() if k not in moved} | {"decoder": adapters}
  return kept, merge_trees(frozen, moved)


def _check_decoder(source: LMSource, cfg: Any, where: str) -> StackConfig:
  configured = models.model_spec(cfg).decoder
  stored = {k: v for k, v in source.arch.to_dict().items() if k not in NOT_COMPARED}
  wanted = {k: v for k, v in configured.to_dict().items() if k not in NOT_COMPARED}
  differences = [f"{k}: checkpoint {stored[k]!r}, config {wanted[k]!r}" for k in sorted(stored)
                 if stored[k] != wanted[k]]
  tie = bool(cfg.decoder.get("tie_embeddings", False))
  if tie != source.tie:
    differences.append(f"tie_embeddings: checkpoint {source.tie}, config {tie}")
  if differences:
    raise ValueError(f"the pretrained decoder in {where} does not match the decoder section (build the "
                     "config with configs/memory.py:PRESET,decoder=DIR):\n  " + "\n  ".join(differences))
  return configured


def _decoder_target(source: LMSource, abstract: TrainState) -> dict[str, Any]:
  """The converted model's parameter tree {'decoder', 'head'?}, as abstract leaves of this run's
  decoder (wherever they sit: trainable, or frozen under LoRA)."""
  params = merge_trees(abstract.params, abstract.frozen)
  target = {"decoder": lora.split_adapters(params["decoder"])[1]}
  if not source.tie:
    target["head"] = params["head"]
  return target


def init_state(init: Callable[[], TrainState], abstract: TrainState, cfg: Any,
               tokenizer_digest: str) -> TrainState:
  """A fresh state with its shardings (`abstract` carries them) in which pretrained parts are
  restored from their checkpoints instead of initialized: the encoder at `encoder.checkpoint`, the
  memory model's decoder (and head) at `decoder.checkpoint`.

  The jitted initializer returns only the other leaves (XLA then never computes the rest), and the
  pretrained arrays are read one at a time into their shardings: the host holds one copy.
  """
  loaded: dict[str, Any] = {}  # path name in the state -> restored array
  if "encoder" in cfg and cfg.encoder.checkpoint:  # all of it, or only the blocks (a fresh embedding)
    frozen, group = encoders.frozen_parts(cfg), models.model_spec(cfg).encoder_group
    where = {part: "frozen" if part in frozen else "params" for part in encoders.loaded_parts(cfg)}
    target = {part: getattr(abstract, w)[group][part] for part, w in where.items()}
    encoder = encoders.load(cfg.encoder.checkpoint, models.encoder_config(cfg), tokenizer_digest, target)
    for part, w in where.items():
      loaded |= {f"{w}/{group}/{part}/{name}": x for name, x in _named_leaves(encoder[part]).items()}
  if cfg.task == "memory" and cfg.decoder.get("checkpoint"):
    source = locate(cfg.decoder.checkpoint)
    target = _decoder_target(source, abstract)
    where = {id(x): name for name, x in _named_leaves({"params": abstract.params,
                                                       "frozen": abstract.frozen}).items()}
    restored = _load_decoder(source, target, cfg, tokenizer_digest)
    for x, new in zip(jax.tree.leaves(target), jax.tree.leaves(restored)):
      loaded[where[id(x)]] = new  # the state's path of the decoder leaf `x`
  flat = _named_leaves(abstract)
  keep = [name not in loaded for name in flat]
  shardings = [x.sharding for x in flat.values()]

  def fresh_leaves():
    return [x for x, k in zip(jax.tree.leaves(init()), keep) if k]

  fresh = iter(jax.jit(fresh_leaves, out_shardings=[s for s, k in zip(shardings, keep) if k])())
  leaves = [loaded[name] if name in loaded else next(fresh) for name in flat]
  return jax.tree.unflatten(jax.tree.structure(abstract), leaves)


def _named_leaves(tree: Any) -> dict[str, Any]:
  from memjax.training.sharding import path_name

  return {path_name(path): x for path, x in jax.tree_util.tree_leaves_with_path(tree)}


def _load_decoder(source: LMSource, target: dict[str, Any], cfg: Any,
                  tokenizer_digest: str) -> dict[str, Any]:
  """The causal LM at `decoder.checkpoint`, checked, restored onto the decoder's shardings."""
  path = cfg.decoder.checkpoint
  if source.task != "clm":
    raise ValueError(f"decoder.checkpoint={path} must be a converted model or a clm run")
  _check_decoder(source, cfg, path)
  if source.tokenizer_digest != tokenizer_digest:
    raise ValueError(f"the decoder in {path} was trained with a different tokenizer than this run's; "
                     f"set data.tokenizer={path}/{TOKENIZER_JSON}")
  mngr = checkpoint.manager(source.checkpoints, items=(checkpoint.STATE,))
  try:
    return checkpoint.restore_arrays(mngr, source.step, {"params": target})["params"]
  finally:
    mngr.close()
