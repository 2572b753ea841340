"""User code named by import path, `package.module:attribute` (big_vision style), so that a config
and the command line can name objectives, views and model blocks that live outside memjax."""

from __future__ import annotations

import importlib
from typing import Any


def is_import_path(name: str) -> bool:
  return isinstance(name, str) and ":" in name


def load(path: str, what: str) -> Any:
  """The object at `path`; any failure is one ValueError naming the path and `what` it should be."""
  module_name, _, attribute = path.partition(":")
  if not module_name or not attribute or ":" in attribute:
    raise ValueError(f"{what} {path!r} is not an import path of the form 'package.module:attribute'")
  try:
    module = importlib.import_module(module_name)
  except Exception as error:  # ImportError, or whatever the user's module raised on import
    raise ValueError(f"{what} {path!r}: cannot import module {module_name!r} "
                     f"({type(error).__name__}: {error})") from error
  found = module
  for part in attribute.split("."):
    if not hasattr(found, part):
      raise ValueError(f"{what} {path!r}: module {module_name!r} has no attribute {attribute!r}")
    found = getattr(found, part)
  return found
