"""Reusable encoders: export the encoder of a trained run, and load one (frozen) into a new model.

`encoder.checkpoint=DIR` names either an exported encoder (a folder with `encoder.json`) or the
workdir of a trained run (a folder with `config.json`; its latest checkpoint's encoder is taken,
wherever the run kept it: trained, or itself frozen; a causal LM's is its decoder). A Hugging Face Llama is the latter once
converted (`python -m memjax.convert hf-llama` writes a causal-LM workdir; its trunk is the
encoder). Both are checked against the new model's encoder (architecture, parameter shapes,
tokenizer) before anything is restored.

`encoder.frozen=True` freezes the encoder; `encoder.frozen_scope` says how much of it:
  all     the whole `Tower` (token embedding and blocks) is loaded and frozen;
  blocks  the blocks (and final norm) are loaded and frozen behind a fresh, trainable token
          embedding: the reference's frozen encoders and information probes (its `self.wte`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
from etils import epath

from memjax import fs, models
from memjax.models.config import EXECUTION_FIELDS, StackConfig
from memjax.training import checkpoint, run_folder
from memjax.training.run_folder import CHECKPOINTS, CONFIG_JSON, TOKENIZER_JSON

ENCODER_JSON = "encoder.json"
FROZEN_SCOPES = ("all", "blocks")
PARTS = ("embed", "stack")  # the subtrees of a Tower's parameters


@dataclasses.dataclass(frozen=True)
class EncoderSource:
  checkpoints: epath.Path  # an orbax CheckpointManager folder
  step: int
  architecture: dict[str, Any]  # StackConfig fields
  frozen_parts: tuple[str, ...]  # the encoder's parts kept under 'frozen' (the rest: 'params')
  tokenizer_digest: str
  group: str = "encoder"  # the encoder tower's parameter group: a causal LM's is 'decoder'

  def subtree(self, part: str) -> str:
    """'params' or 'frozen': where `part` of the encoder sits in the checkpoint's state."""
    return "frozen" if part in self.frozen_parts else "params"


def frozen_scope(cfg: Any) -> str:
  """`encoder.frozen_scope` of a run config ('all' for configs written before the key existed)."""
  scope = cfg.encoder.get("frozen_scope", "all")
  if scope not in FROZEN_SCOPES:
    raise ValueError(f"encoder.frozen_scope must be one of {FROZEN_SCOPES}, got {scope!r}")
  return scope


def frozen_parts(cfg: Any) -> tuple[str, ...]:
  """The parts of the run's encoder that are frozen: none, the blocks, or all of it."""
  if cfg.task == "clm":
    return ()
  scope = frozen_scope(cfg)
  if not cfg.encoder.frozen:
    return ()
  return PARTS if scope == "all" else ("stack",)


def loaded_parts(cfg: Any) -> tuple[str, ...]:
  """The parts read from `encoder.checkpoint`: all, or only the blocks (a fresh embedding)."""
  return ("stack",) if cfg.encoder.frozen and frozen_scope(cfg) == "blocks" else PARTS


def locate(path: str) -> EncoderSource:
  """Finds the encoder in an export folder or a run's workdir."""
  root = fs.path(path)
  if (root / ENCODER_JSON).exists():
    meta = json.loads((root / ENCODER_JSON).read_text())
    architecture, frozen, checkpoints, group = meta["architecture"], (), root, "encoder"
  elif (root / CONFIG_JSON).exists():
    cfg = run_folder.read_config(root)
    spec = models.model_spec(cfg)
    if not spec.has_encoder:
      raise ValueError(f"the run in {path} is a memory model of kind {spec.kind!r}, which has no encoder")
    architecture, group = spec.encoder.to_dict(), spec.encoder_group
    frozen, checkpoints = frozen_parts(cfg), root / CHECKPOINTS
  else:
    raise FileNotFoundError(f"encoder checkpoint {path!r} is neither an exported encoder (no "
                            f"{ENCODER_JSON}) nor a memjax workdir (no {CONFIG_JSON})")
  digest = run_folder.tokenizer_digest(root)  # first: without a tokenizer the weights are unusable
  return EncoderSource(checkpoints, run_folder.latest_step(checkpoints), architecture, frozen, digest,
                       group)


def check_architecture(source: EncoderSource, expected: StackConfig, where: str) -> None:
  # Fields added to StackConfig after the checkpoint was written take their defaults.
  defaults = {f.name: f.default for f in dataclasses.fields(StackConfig)
              if f.default is not dataclasses.MISSING}
  stored = {k: v for k, v in (defaults | source.architecture).items() if k not in EXECUTION_FIELDS}
  wanted = {k: v for k, v in expected.to_dict().items() if k not in EXECUTION_FIELDS}
  if expected.family in ("transformer", "bert"):  # attention reads any length; only mixers fix it
    stored.pop("length", None), wanted.pop("length", None)
  differences = [f"{k}: checkpoint {stored.get(k)!r}, config {wanted.get(k)!r}"
                 for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k)]
  if differences:
    raise ValueError(f"the encoder in {where} does not match the configured encoder "
                     "(set the encoder section to the checkpoint's architecture):\n  "
                     + "\n  ".join(differences))


def load(path: str, expected: StackConfig, tokenizer_digest: str, target: dict[str, Any]) -> dict[str, Any]:
  """The encoder parameters at `path`, restored into `target` (abstract arrays with shardings,
  keyed by part: both, or only 'stack')."""
  source = locate(path)
  check_architecture(source, expected, path)
  if source.tokenizer_digest != tokenizer_digest:
    raise ValueError(f"the encoder in {path} was trained with a different tokenizer than this run's; "
                     f"set data.tokenizer={path}/{TOKENIZER_JSON}, or retrain that encoder (a run "
                     "trained before its corpus or tokenizer settings changed: delete its folder)")
  request: dict[str, Any] = {}
  for part, leaves in target.items():
    request.setdefault(source.subtree(part), {source.group: {}})[source.group][part] = leaves
  mngr = checkpoint.manager(source.checkpoints)
  try:
    restored = checkpoint.restore_arrays(mngr, source.step, request)  # one array at a time
  finally:
    mngr.close()
  return {part: restored[source.subtree(part)][source.group][part] for part in target}


def new_folder(out: str) -> epath.Path:
  out_dir = fs.path(out)
  if out_dir.exists() and any(out_dir.iterdir()):
    raise FileExistsError(f"export folder {out} is not empty; choose a new folder")
  return out_dir


def write(out_dir: epath.Path, params: Any, architecture: dict[str, Any], tokenizer_json: str,
          source: str, step: int = 0) -> epath.Path:
  """Writes an encoder export: its parameters as an Orbax checkpoint, encoder.json, tokenizer.json."""
  out_dir.mkdir(parents=True, exist_ok=True)
  writer = checkpoint.manager(out_dir, items=(checkpoint.STATE,), async_save=False)
  checkpoint.save(writer, step, {"params": {"encoder": params}}, force=True)
  writer.close()
  (out_dir / ENCODER_JSON).write_text(json.dumps({"architecture": architecture, "source": source,
                                                  "step": step}, indent=2))
  (out_dir / TOKENIZER_JSON).write_text(tokenizer_json)
  return out_dir


def export(workdir: str, out: str) -> epath.Path:
  """Writes the encoder of the run in `workdir` (latest checkpoint) as its own checkpoint in `out`."""
  out_dir = new_folder(out)
  source = locate(workdir)
  mngr = checkpoint.manager(source.checkpoints)
  try:
    shapes = checkpoint.stored_shapes(mngr, source.step, wanted=(source.group,))
    flat = {}
    for name, shape in shapes.items():
      subtree, _, rest = name.partition(f"/{source.group}/")
      if rest and subtree == source.subtree(rest.partition("/")[0]):
        flat[name] = jax.ShapeDtypeStruct(shape, "float32")
    restored = checkpoint.restore(mngr, source.step, unflatten(flat))
  finally:
    mngr.close()
  encoder = {part: tree[source.group][part] for tree in restored.values() for part in tree[source.group]}
  tokenizer_json = (fs.path(workdir) / TOKENIZER_JSON).read_text()
  return write(out_dir, encoder, source.architecture, tokenizer_json, str(workdir), source.step)


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for name, leaf in flat.items():
    *parents, last = name.split("/")
    node = tree
    for key in parents:
      node = node.setdefault(key, {})
    node[last] = leaf
  return tree
