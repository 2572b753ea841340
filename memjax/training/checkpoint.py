"""Orbax checkpoints: the training state and the Grain iterator position, saved together.

A checkpoint step holds two items: 'state' (step, params, opt_state, rng, frozen) and 'data' (the
training iterator). The workdir may be a local path or a gs:// bucket (see memjax/fs.py). Exported
encoders use the same layout with only 'state/params/encoder', plus `encoder.json` describing the
architecture (see memjax/training/encoders.py).

Checkpoints of earlier layouts are read as the current one (`RENAMED`): the renaming happens here, at
restore time, so no caller needs to know a checkpoint's age.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from memjax import fs
from memjax.training.sharding import path_name

STATE, DATA = "state", "data"

# Parameter groups renamed since checkpoints were first written: current name -> the earlier name.
# Causal LMs (clm runs, converted models, 'full' memory models) kept their decoder under 'encoder';
# every other model with an 'encoder' also has a 'decoder', so a step with an 'encoder' and no
# 'decoder', read by a reader wanting a 'decoder' and no 'encoder', is such a causal LM. (An exported
# encoder, also 'encoder' alone, is only ever read as an encoder.)
RENAMED: dict[str, str] = {"decoder": "encoder"}


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used: unreadable, or holding a different model."""


def absolute(directory: epath.PathLike) -> epath.Path:
  """The folder as an absolute path (Orbax requires one); bucket URLs such as gs:// stay as they are."""
  return fs.path(directory)


def manager(directory: epath.PathLike, *, every: int = 1, keep: int | None = None,
            async_save: bool = True, items: tuple[str, ...] = (STATE, DATA)) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep,
                                         enable_async_checkpointing=async_save, create=True)
  handlers = {STATE: ocp.PyTreeCheckpointHandler(), DATA: grain.checkpoint.CheckpointHandler()}
  return ocp.CheckpointManager(absolute(directory), options=options, item_names=items,
                               item_handlers={k: handlers[k] for k in items})


@contextlib.contextmanager
def latest(directory: epath.PathLike, missing: str) -> Iterator[tuple[ocp.CheckpointManager, int]]:
  """A manager of `directory` (closed on exit) and its latest step; none -> FileNotFoundError(missing)."""
  mngr = manager(directory)
  try:
    step = mngr.latest_step()
    if step is None:
      raise FileNotFoundError(missing)
    yield mngr, step
  finally:
    mngr.close()


def save(mngr: ocp.CheckpointManager, step: int, state: dict[str, Any], iterator: Any = None,
         *, force: bool = False) -> bool:
  """Saves (asynchronously) when the manager's interval says so, or always with `force`."""
  items = {STATE: ocp.args.PyTreeSave(state)}
  if iterator is not None:
    items[DATA] = grain.checkpoint.CheckpointSave(iterator)
  return mngr.save(step, args=ocp.args.Composite(**items), force=force)


def abstract(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying the target shardings (restores are then strict about shapes)."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), tree, shardings)


def _groups(names: Iterable[str]) -> set[str]:
  """Every key on the paths `names` ('/'-joined)."""
  return {key for name in names for key in name.split("/")}


def _keys(tree: Any) -> set[str]:
  """Every key on the paths of the leaves of `tree`."""
  return _groups(path_name(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree))


def renames(stored: Iterable[str], wanted: Iterable[str]) -> dict[str, str]:
  """{current name: stored name} of the groups a step of an earlier layout holds under their
  earlier name (RENAMED), for a reader looking for the groups `wanted`; empty for current layouts."""
  stored, wanted = _groups(stored), set(wanted)
  return {new: old for new, old in RENAMED.items()
          if new in wanted and old not in wanted and new not in stored and old in stored}


def _renamed_name(name: str, mapping: dict[str, str]) -> str:
  return "/".join(mapping.get(key, key) for key in name.split("/"))


def _renamed_tree(tree: Any, mapping: dict[str, str]) -> Any:
  """`tree` with the dict keys in `mapping` renamed, at any depth (optimizer states mirror the
  parameters), every container kept as it is."""
  if not mapping:
    return tree
  if isinstance(tree, dict):
    return type(tree)((mapping.get(k, k), _renamed_tree(v, mapping)) for k, v in tree.items())
  if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple (optax states)
    return type(tree)(*(_renamed_tree(v, mapping) for v in tree))
  if isinstance(tree, (list, tuple)):
    return type(tree)(_renamed_tree(v, mapping) for v in tree)
  return tree


def _raw_shapes(mngr: ocp.CheckpointManager, step: int) -> dict[str, tuple[int, ...]]:
  try:
    tree = mngr.item_metadata(step)[STATE]
  except Exception as error:  # orbax raises many types for unreadable metadata
    raise CheckpointError(f"checkpoint step {step} in {mngr.directory} cannot be read: {error}; "
                          "move it away to resume from an earlier one") from None
  tree = getattr(tree, "tree", tree)
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
  return {path_name(path): tuple(leaf.shape) for path, leaf in leaves if hasattr(leaf, "shape")}


def stored_shapes(mngr: ocp.CheckpointManager, step: int,
                  wanted: Iterable[str] = ()) -> dict[str, tuple[int, ...]]:
  """{'/'-joined path: shape} of every array in the step's 'state' item, named as the current
  layout names them for a reader looking for the parameter groups `wanted` (see RENAMED)."""
  stored = _raw_shapes(mngr, step)
  mapping = {old: new for new, old in renames(stored, wanted).items()}
  return {_renamed_name(name, mapping): shape for name, shape in stored.items()}


def check_shapes(target: Any, stored: dict[str, tuple[int, ...]], where: str) -> None:
  """Raises CheckpointError listing every leaf of `target` that is missing or shaped differently."""
  problems = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(target):
    name = path_name(path)
    if name not in stored:
      problems.append(f"{name}: missing")
    elif stored[name] != tuple(leaf.shape):
      problems.append(f"{name}: stored {stored[name]}, expected {tuple(leaf.shape)}")
  if problems:
    shown = "\n  ".join(problems[:12]) + ("\n  ..." if len(problems) > 12 else "")
    raise CheckpointError(f"{where} does not match this model ({len(problems)} arrays differ):\n  {shown}")


def restore(mngr: ocp.CheckpointManager, step: int, target: Any, iterator: Any = None) -> Any:
  """Restores the 'state' item into `target` (abstract, with shardings) and the iterator in place.

  With `iterator=None` only the state is read; a partial `target` reads only its subtrees. A step of
  an earlier layout is read into the current one (RENAMED).
  """
  stored = _raw_shapes(mngr, step)
  mapping = renames(stored, _keys(target))
  target = _renamed_tree(target, mapping)  # as the step names it
  check_shapes(target, stored, f"checkpoint step {step} in {mngr.directory}")
  items = {STATE: ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
      partial_restore=True)}
  if iterator is not None:
    items[DATA] = grain.checkpoint.CheckpointRestore(iterator)
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(**items))[STATE]
  except Exception as error:  # orbax raises many types for corrupt files
    raise CheckpointError(f"checkpoint step {step} in {mngr.directory} cannot be restored: {error}; "
                          "move it away to resume from an earlier one") from None
  return _renamed_tree(restored, {old: new for new, old in mapping.items()})


def restore_arrays(mngr: ocp.CheckpointManager, step: int, target: Any) -> Any:
  """`restore` (state only) one array at a time, for pretrained weights: Orbax reads all requested
  arrays concurrently, each with a staging buffer, so one at a time peaks at the weights, the
  largest array's staging buffer and the runtime (peak RSS of both ways: benchmarks/README.md,
  "Pretrained models")."""
  where = f"checkpoint step {step} in {mngr.directory}"
  check_shapes(target, stored_shapes(mngr, step, _keys(target)), where)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
  restored = []
  for path, leaf in leaves:
    keys = [getattr(key, "key", getattr(key, "name", key)) for key in path]
    nested: Any = leaf
    for key in reversed(keys):
      nested = {key: nested}
    value = restore(mngr, step, nested)
    for key in keys:
      value = value[key]
    restored.append(value)
  return jax.tree_util.tree_unflatten(treedef, restored)
