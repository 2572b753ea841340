"""Document sources, named by one string: where the text comes from.

  stdlib                      the embedded default corpus (Python's own docstrings), no download
  txt:PATH                    a .txt file (documents separated by blank lines) or a folder of them
  jsonl:PATH                  one JSON object per line, text under `text_field`
  parquet:PATH                a Parquet file or folder, text in column `text_field`
  hf:NAME[:CONFIG]            a Hugging Face dataset (extra `hf`); aliases fineweb-edu, finemath
  tfds:NAME                   a TensorFlow Datasets source (extra `tfds`)
  arrayrecord:PATH            ArrayRecord files of UTF-8 text or JSON records (extra `tfds`)

Every source yields documents in a fixed order, so the held-out split (the first N documents, as in
the paper) and the token cache are reproducible.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
from typing import Callable, Iterable, Iterator

from memjax.data import corpus

HF_ALIASES = {
    "fineweb-edu": ("HuggingFaceFW/fineweb-edu", "sample-10BT"),
    "finemath": ("HuggingFaceTB/finemath", "finemath-4plus"),
}
KINDS = ("stdlib", "txt", "jsonl", "parquet", "hf", "tfds", "arrayrecord")


@dataclasses.dataclass(frozen=True)
class Source:
  """A named, fingerprinted stream of documents."""

  name: str
  fingerprint: str
  read: Callable[[], Iterable[str]]

  def documents(self, limit: int = 0) -> Iterator[str]:
    """The non-empty documents (the first `limit` of them, if set); read lazily, on iteration."""
    docs = (doc for doc in _lazy(self.read) if doc)
    return itertools.islice(docs, limit) if limit else docs


def _lazy(read: Callable[[], Iterable[str]]) -> Iterator[str]:
  yield from read()


def _files(path: pathlib.Path, suffixes: tuple[str, ...]) -> list[pathlib.Path]:
  if not path.exists():
    raise FileNotFoundError(f"data file or folder {str(path)!r} does not exist")
  files = sorted(p for p in path.rglob("*") if p.suffix in suffixes) if path.is_dir() else [path]
  if not files:
    raise FileNotFoundError(f"no {'/'.join(suffixes)} files in folder {str(path)!r}")
  return files


def _files_fingerprint(kind: str, files: list[pathlib.Path], text_field: str) -> str:
  stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
  return f"{kind}-" + hashlib.sha1(json.dumps([stats, text_field]).encode()).hexdigest()[:16]


def _read_txt(files: list[pathlib.Path]) -> Iterator[str]:
  for file in files:
    for doc in file.read_text(encoding="utf-8").split("\n\n"):
      if doc.strip():
        yield doc.strip()


def _read_jsonl(files: list[pathlib.Path], text_field: str) -> Iterator[str]:
  for file in files:
    with file.open(encoding="utf-8") as lines:
      for number, line in enumerate(lines, 1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError as error:
          raise ValueError(f"{file}:{number} is not valid JSON: {error}") from None
        if text_field not in record:
          raise KeyError(f"{file}:{number} has no field {text_field!r} (set data.text_field)")
        yield record[text_field]


def _read_parquet(files: list[pathlib.Path], text_field: str) -> Iterator[str]:
  import pyarrow.parquet as pq

  for file in files:
    table = pq.ParquetFile(file)
    if text_field not in table.schema_arrow.names:
      raise KeyError(f"{file} has no column {text_field!r} (set data.text_field); "
                     f"columns: {table.schema_arrow.names}")
    for batch in table.iter_batches(columns=[text_field]):
      yield from batch.column(0).to_pylist()


def _read_hf(name: str, config: str | None, split: str, text_field: str, streaming: bool) -> Iterator[str]:
  try:
    import datasets
  except ImportError:
    raise ImportError("Hugging Face sources need the `hf` extra: pip install 'memjax[hf]'") from None
  dataset = datasets.load_dataset(name, config, split=split, streaming=streaming)
  for record in dataset:
    yield record[text_field]


def _read_tfds(name: str, split: str, text_field: str) -> Iterator[str]:
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise ImportError("TFDS sources need the `tfds` extra: pip install 'memjax[tfds]'") from None
  source = tfds.data_source(name, split=split)
  for index in range(len(source)):
    value = source[index][text_field]
    yield value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_arrayrecord(files: list[pathlib.Path], text_field: str) -> Iterator[str]:
  import grain

  source = grain.sources.ArrayRecordDataSource([str(f) for f in files])
  for index in range(len(source)):
    text = source[index].decode("utf-8")
    yield json.loads(text)[text_field] if text.lstrip().startswith("{") else text


def resolve(spec: str, *, text_field: str = "text", split: str = "train", streaming: bool = True) -> Source:
  """Parses a source string (see the module docstring) into a `Source`."""
  kind, _, rest = spec.partition(":")
  if kind not in KINDS:
    raise ValueError(f"unknown data source {spec!r}: the kind must be one of {KINDS}")
  if kind == "stdlib":
    return Source(spec, corpus.fingerprint(), corpus.stdlib_documents)
  if not rest:
    raise ValueError(f"data source {spec!r} needs a path or name after '{kind}:'")
  if kind in ("hf", "tfds"):
    if kind == "tfds":
      return Source(spec, f"tfds-{rest}-{split}-{text_field}", lambda: _read_tfds(rest, split, text_field))
    name, config = HF_ALIASES.get(rest, (rest.partition(":")[0], rest.partition(":")[2] or None))
    return Source(spec, f"hf-{name}-{config}-{split}-{text_field}".replace("/", "_"),
                  lambda: _read_hf(name, config, split, text_field, streaming))
  path = pathlib.Path(os.path.expanduser(rest))
  suffixes = {"txt": (".txt",), "jsonl": (".jsonl", ".json"), "parquet": (".parquet",),
              "arrayrecord": (".array_record", ".arrayrecord")}[kind]
  files = _files(path, suffixes)
  empty = [str(f) for f in files if f.stat().st_size == 0]
  if empty:
    raise ValueError(f"data file(s) {empty} are empty")
  readers = {"txt": lambda: _read_txt(files), "jsonl": lambda: _read_jsonl(files, text_field),
             "parquet": lambda: _read_parquet(files, text_field),
             "arrayrecord": lambda: _read_arrayrecord(files, text_field)}
  return Source(spec, _files_fingerprint(kind, files, text_field), readers[kind])
