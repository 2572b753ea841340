"""One filesystem layer for workdirs and exports: local folders and gs:// buckets alike.

Paths are `etils.epath.Path`s: local paths use the os module, gs:// URLs use fsspec's gcsfs (the
`gcs` extra). Orbax checkpoints in a gs:// workdir go through the same epath paths for their
metadata and through tensorstore's own gcs driver for array data. A GCS object cannot be appended
to, so `AppendFile` (metrics.jsonl, and TensorBoard event files through `register_tensorboard`)
keeps the file's content and rewrites the whole object at each flush.

For a local GCS emulator, set STORAGE_EMULATOR_HOST (gcsfs), TENSORSTORE_GCS_HTTP_URL (tensorstore,
with GOOGLE_AUTH_TOKEN_FOR_TESTING) to its URL; see tests/test_gcs.py.
"""

from __future__ import annotations

import importlib.util
import os
from typing import IO

from etils import epath

PathLike = epath.PathLike


def is_remote(path: PathLike) -> bool:
  """True for a bucket URL (gs://, s3://, ...), False for a local path."""
  return "://" in os.fspath(path)


def path(location: PathLike) -> epath.Path:
  """`location` as an epath.Path: local paths absolute and ~-expanded, bucket URLs as they are."""
  text = os.fspath(location)
  if text.startswith("gs://") and importlib.util.find_spec("gcsfs") is None:
    raise ImportError(f"{text} is a gs:// path, which needs gcsfs: pip install 'memjax[gcs]'")
  if is_remote(text):
    return epath.Path(text)
  return epath.Path(os.path.abspath(os.path.expanduser(text)))


def write_text(location: PathLike, text: str) -> None:
  """Writes a whole file: a local file is replaced atomically, a GCS object by one upload."""
  target = path(location)
  if is_remote(target):
    target.write_text(text)
    return
  partial = target.with_name(target.name + ".tmp")
  partial.write_text(text)
  os.replace(partial, target)


class AppendFile:
  """A file opened for appending, flushed after each `write`; `binary` for bytes.

  Locally a plain file in append mode. A remote file is read once, kept in memory, and written
  whole at each flush (GCS objects are immutable), so a reader sees every flushed line.
  """

  def __init__(self, location: PathLike, *, binary: bool = False, flush_each_write: bool = True):
    self.path = path(location)
    self._binary, self._flush_each_write = binary, flush_each_write
    self._remote = is_remote(self.path)
    self._file: IO | None = None
    if self._remote:
      empty = b"" if binary else ""
      exists = self.path.exists()
      self._content = (self.path.read_bytes() if binary else self.path.read_text()) if exists else empty
      self._dirty = not exists  # create the object even if nothing is written
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._file = open(self.path, "ab" if binary else "a")

  def write(self, data: str | bytes) -> None:
    if self._remote:
      self._content += data
      self._dirty = True
    else:
      self._file.write(data)
    if self._flush_each_write:
      self.flush()

  def flush(self) -> None:
    if self._remote:
      if self._dirty:
        (self.path.write_bytes if self._binary else self.path.write_text)(self._content)
        self._dirty = False
    elif self._file is not None:
      self._file.flush()

  def close(self) -> None:
    self.flush()
    if self._file is not None:
      self._file.close()
      self._file = None


class _TensorboardFactory:
  """tensorboardX's record-writer factory for gs://: event files as `AppendFile`s."""

  def open(self, location: str) -> AppendFile:
    return AppendFile(location, binary=True, flush_each_write=False)

  def directory_check(self, location: str) -> None:
    del location  # buckets have no folders to create


def register_tensorboard() -> None:
  """Routes tensorboardX's gs:// event files through this layer (instead of its own GCS client)."""
  from tensorboardX import record_writer

  record_writer.register_writer_factory("gs", _TensorboardFactory())
