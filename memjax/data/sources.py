"""Document sources, named by one string: where the text comes from.

  stdlib                      the embedded default corpus (Python's own docstrings), no download
  stdlib_code                 the standard library's Python source code, whole files (memjax/data/
                              code.py): out-of-distribution text for stdlib-trained runs, no download
  txt:PATH                    a .txt file (documents separated by blank lines) or a folder of them
  jsonl:PATH                  one JSON object per line, text under `text_field`
  parquet:PATH                a Parquet file or folder, text in column `text_field`
  hf:NAME[:CONFIG]            a Hugging Face dataset (extra `hf`); aliases fineweb-edu, finemath
  tfds:NAME                   a TensorFlow Datasets dataset (name[/config][:version]) in TFDS's
                              data dir ($TFDS_DATA_DIR or ~/tensorflow_datasets), extra `tfds`
  tfds:PATH                   a prepared TFDS dataset folder (the one holding dataset_info.json)
  arrayrecord:PATH            an ArrayRecord file or a folder of them (sharded names such as
                              docs.array_record-00000-of-00004 included): UTF-8 text records, or
                              JSON objects with the text under `text_field` (extra `tfds`)
  random:DOCUMENTS:SOURCE     uniform random token ids over the vocabulary of SOURCE's tokenizer
                              (memjax/data/random_tokens.py; tokens, not text: data.prepare reads it)

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
import re
from typing import Callable, Iterable, Iterator

from memjax.data import code, corpus

HF_ALIASES = {
    "fineweb-edu": ("HuggingFaceFW/fineweb-edu", "sample-10BT"),
    "finemath": ("HuggingFaceTB/finemath", "finemath-4plus"),
}
KINDS = ("stdlib", "stdlib_code", "txt", "jsonl", "parquet", "hf", "tfds", "arrayrecord")
READ_CHUNK = 1024  # records fetched per call from TFDS and ArrayRecord sources


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


def _has_suffix(file: pathlib.Path, suffixes: tuple[str, ...]) -> bool:
  """`x.txt`, or a shard of one: `x.array_record-00001-of-00004`."""
  return file.suffix in suffixes or any(re.fullmatch(rf".+{re.escape(suffix)}-\d+-of-\d+", file.name)
                                        for suffix in suffixes)


def _files(path: pathlib.Path, suffixes: tuple[str, ...]) -> list[pathlib.Path]:
  if not path.exists():
    raise FileNotFoundError(f"data file or folder {str(path)!r} does not exist")
  files = ([path] if not path.is_dir() else
           sorted(p for p in path.rglob("*") if p.is_file() and _has_suffix(p, suffixes)))
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


def _tfds_source(name_or_path: str, split: str):
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise ImportError("TFDS sources need the `tfds` extra: pip install 'memjax[tfds]'") from None
  if _is_tfds_folder(name_or_path):
    builder = tfds.builder_from_directory(os.path.expanduser(name_or_path))
    if split not in builder.info.splits:
      raise ValueError(f"TFDS dataset {name_or_path} has no split {split!r} (set data.hf_split); "
                       f"splits: {sorted(builder.info.splits)}")
    return builder.as_data_source(split=split)
  # TFDS reads $TFDS_DATA_DIR once, at import; read it here so that it is in force when used.
  return tfds.data_source(name_or_path, split=split, data_dir=os.environ.get("TFDS_DATA_DIR") or None)


def _is_tfds_folder(name_or_path: str) -> bool:
  info = os.path.join(os.path.expanduser(name_or_path), "dataset_info.json")
  return "://" in name_or_path or os.path.isfile(info)


def _read_tfds(name_or_path: str, split: str, text_field: str) -> Iterator[str]:
  source = _tfds_source(name_or_path, split)
  for start in range(0, len(source), READ_CHUNK):
    records = source.__getitems__(range(start, min(start + READ_CHUNK, len(source))))
    for number, record in enumerate(records, start):
      if text_field not in record:
        raise KeyError(f"record {number} of TFDS dataset {name_or_path} has no feature {text_field!r} "
                       f"(set data.text_field); features: {sorted(record)}")
      value = record[text_field]
      yield value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _tfds_fingerprint(name_or_path: str, split: str, text_field: str) -> str:
  """A folder's fingerprint follows its dataset_info.json (rewritten whenever it is prepared)."""
  identity = [name_or_path, split, text_field]
  if _is_tfds_folder(name_or_path) and "://" not in name_or_path:
    info = pathlib.Path(os.path.expanduser(name_or_path), "dataset_info.json")
    identity += [str(info.resolve()), info.read_text()]
  return "tfds-" + hashlib.sha1(json.dumps(identity).encode()).hexdigest()[:16]


def _read_arrayrecord(files: list[pathlib.Path], text_field: str) -> Iterator[str]:
  """Each record is UTF-8 text, or a JSON object (one starting with '{') holding `text_field`."""
  import grain

  for file in files:
    source = grain.sources.ArrayRecordDataSource([str(file)])
    for start in range(0, len(source), READ_CHUNK):
      records = source.__getitems__(range(start, min(start + READ_CHUNK, len(source))))
      for number, record in enumerate(records, start):
        yield _arrayrecord_text(record, f"{file} record {number}", text_field)


def _arrayrecord_text(record: bytes, where: str, text_field: str) -> str:
  try:
    text = record.decode("utf-8")
  except UnicodeDecodeError:
    raise ValueError(f"{where} is not UTF-8 text or JSON (a TFDS folder's files hold serialized "
                     "examples: name the folder with tfds:PATH instead)") from None
  if not text.lstrip().startswith("{"):
    return text
  try:
    obj = json.loads(text)
  except json.JSONDecodeError:
    return text  # text that happens to start with a brace
  if not isinstance(obj, dict):
    return text
  if text_field not in obj:
    raise KeyError(f"{where} is a JSON record without field {text_field!r} (set data.text_field)")
  return obj[text_field]


def resolve(spec: str, *, text_field: str = "text", split: str = "train", streaming: bool = True) -> Source:
  """Parses a source string (see the module docstring) into a `Source`."""
  kind, _, rest = spec.partition(":")
  if kind == "random":
    raise ValueError(f"data source {spec!r} is random tokens, not text: memjax.data.prepare reads it")
  if kind not in KINDS:
    raise ValueError(f"unknown data source {spec!r}: the kind must be one of {KINDS}")
  if kind == "stdlib":
    return Source(spec, corpus.fingerprint(), corpus.stdlib_documents)
  if kind == "stdlib_code":
    return Source(spec, code.fingerprint(), code.documents)
  if not rest:
    raise ValueError(f"data source {spec!r} needs a path or name after '{kind}:'")
  if kind in ("hf", "tfds"):
    if kind == "tfds":
      return Source(spec, _tfds_fingerprint(rest, split, text_field), lambda: _read_tfds(rest, split, text_field))
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
