"""The embedded default corpus: real English text that every Python installation carries.

Documents are the docstrings of each standard-library source file (module, class and function
docstrings, in source order) plus every pydoc topic. They are read with `ast`, never imported, so
extraction has no side effects and is deterministic: the same Python version gives the same text.
Documents are ordered by a hash of their name, so "the first N documents" is an unbiased held-out set.
Near-copies are removed (`memjax.data.dedup`: some pydoc topics repeat others almost word for word),
so no held-out document is largely contained in the training documents, whatever the split.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import pathlib
import platform
import sys
import sysconfig
from typing import Iterator

from memjax.data import dedup

SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
DOCSTRING_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
FORMAT_VERSION = 2  # bump when the extraction changes, to invalidate caches


def fingerprint() -> str:
  """Identifies the corpus text: the Python version and build that ship the standard library."""
  return f"stdlib-v{FORMAT_VERSION}-{platform.python_implementation()}-{sys.version.split()[0]}"


def module_docstrings(source: bytes) -> str:
  """All docstrings of one source file, in source order, separated by blank lines ('' if none)."""
  tree = ast.parse(source)
  docs = [ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, DOCSTRING_NODES)]
  return "\n\n".join(doc for doc in docs if doc)


def _stdlib_documents() -> Iterator[tuple[str, str]]:
  root = pathlib.Path(sysconfig.get_paths()["stdlib"])
  for path in sorted(root.rglob("*.py")):
    relative = path.relative_to(root)
    if SKIPPED_DIRS & set(relative.parts):
      continue
    try:
      text = module_docstrings(path.read_bytes())
    except (SyntaxError, ValueError, UnicodeDecodeError):  # deliberately broken test inputs
      continue
    if text:
      yield relative.as_posix(), text


def _pydoc_topics() -> Iterator[tuple[str, str]]:
  from pydoc_data import topics

  for name, text in sorted(topics.topics.items()):
    yield f"pydoc-topic:{name}", text.strip()


def stdlib_documents() -> list[str]:
  """The corpus as a list of documents, near-copies removed, in a fixed pseudo-random order."""
  return [text for _, text in named_documents()]


@functools.cache
def named_documents() -> tuple[tuple[str, str], ...]:
  """(name, text) of every document, near-copies removed, in a fixed pseudo-random order."""
  named = [*_stdlib_documents(), *_pydoc_topics()]
  named.sort(key=lambda item: hashlib.sha1(item[0].encode()).hexdigest())
  dropped = dedup.near_duplicates([text for _, text in named])
  return tuple(item for index, item in enumerate(named) if index not in dropped)
