"""A second corpus that every Python installation carries: the standard library's own source code.

The embedded corpus (memjax/data/corpus.py) is the English of the standard library's docstrings;
this one is its Python code, whole files as documents: text of the same origin in another
distribution, so that models trained on the first can be probed out of distribution without a
download. Files are ordered by a hash of their path, so "the first N documents" is an unbiased
sample of the library, and only the files read are read (the library holds ~160 MB of code).
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
import platform
import sys
import sysconfig
from typing import Iterator

# Installed packages are not the standard library; tests hold deliberately malformed files.
SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
FORMAT_VERSION = 1  # bump when the selection changes, to invalidate caches


def fingerprint() -> str:
  """Identifies the corpus text: the Python version and build that ship the standard library."""
  return f"stdlib-code-v{FORMAT_VERSION}-{platform.python_implementation()}-{sys.version.split()[0]}"


def root() -> pathlib.Path:
  return pathlib.Path(sysconfig.get_paths()["stdlib"])


@functools.cache
def paths() -> tuple[pathlib.Path, ...]:
  """The standard library's .py files (SKIPPED_DIRS left out), in a fixed pseudo-random order."""
  base = root()
  files = [path for path in base.rglob("*.py")
           if not SKIPPED_DIRS & set(path.relative_to(base).parts)]
  return tuple(sorted(files, key=lambda p: hashlib.sha1(p.relative_to(base).as_posix().encode()).hexdigest()))


def documents() -> Iterator[str]:
  """Each file's source text (files that are not UTF-8, or empty, skipped), lazily, in `paths` order."""
  for path in paths():
    try:
      text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
      continue
    if text.strip():
      yield text
