"""The `arrayrecord:` and `tfds:` sources on small datasets built here (no download, no tensorflow).

ArrayRecord files are written with array_record's writer; the TFDS dataset is a tiny builder
prepared into a temporary data dir in TFDS's ArrayRecord format. Both are read through Grain
(ArrayRecordDataSource, TFDS data sources) into the token cache and the Grain batch pipeline, and a
two-step training run reads the TFDS folder in a fresh process (which knows no builder code).
"""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from array_record.python.array_record_module import ArrayRecordWriter

from memjax import data as data_lib
from memjax.data import corpus, sources

from conftest import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = [doc[:400] for doc in itertools.islice(corpus.stdlib_documents(), 160)]


class MemjaxTinyText(tfds.core.GeneratorBasedBuilder):
  """DOCUMENTS as a TFDS dataset: a 'train' split with a 'body' text feature and an 'id'."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"body": tfds.features.Text(), "id": tfds.features.Scalar(np.int64)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for number, doc in enumerate(DOCUMENTS):
      yield number, {"body": doc, "id": number}


def write_arrayrecord(path, records):
  writer = ArrayRecordWriter(str(path), "group_size:1")
  for record in records:
    writer.write(record)
  writer.close()


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  builder = MemjaxTinyText(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return data_dir, builder.data_dir  # the data dir, and the prepared folder (…/memjax_tiny_text/1.0.0)


def data_config(source, **overrides):
  cfg = load_config("clm.py:tiny").data
  cfg.update(source=source, text_field="body", eval_documents=20, mode="pad", **overrides)
  return cfg


def assert_examples_hold(batch, documents, prepared, n_ctx):
  """Each padded example's tokens, from the tokenizer directly: the document, end-of-text, cut."""
  for tokens, mask, document in zip(batch["tokens"], batch["mask"], documents, strict=True):
    expected = prepared.tokenizer.encode(document, add_special_tokens=False).ids + [prepared.special.eos]
    assert tokens[mask == 1].tolist() == expected[:n_ctx]


def test_sharded_arrayrecord_json_and_text_records(tmp_path):
  folder = tmp_path / "docs"
  folder.mkdir()
  half = len(DOCUMENTS) // 2
  for shard, docs in enumerate([DOCUMENTS[:half], DOCUMENTS[half:]]):
    write_arrayrecord(folder / f"docs.array_record-{shard:05d}-of-00002",
                      [json.dumps({"body": doc, "n": i}).encode() for i, doc in enumerate(docs)])
  (folder / "notes.md").write_text("not data")
  assert list(sources.resolve(f"arrayrecord:{folder}", text_field="body").documents()) == DOCUMENTS
  write_arrayrecord(tmp_path / "plain.arrayrecord", [b"{not json, text", "caf\u00e9".encode()])
  assert list(sources.resolve(f"arrayrecord:{tmp_path}/plain.arrayrecord").documents()) == [
      "{not json, text", "caf\u00e9"]


def test_arrayrecord_through_the_grain_pipeline(tmp_path):
  write_arrayrecord(tmp_path / "docs.array_record", [doc.encode() for doc in DOCUMENTS])
  cfg = data_config(f"arrayrecord:{tmp_path}/docs.array_record")
  prepared = data_lib.prepare(cfg)
  assert prepared.train.n_documents == len(DOCUMENTS) - 20 and prepared.eval.n_documents == 20
  batch = next(iter(data_lib.batches(prepared, cfg, split="eval", batch_size=8)))
  assert_examples_hold(batch, DOCUMENTS[:8], prepared, cfg.n_ctx)  # eval: the first documents, in order


def test_bad_arrayrecord_records_are_named(tmp_path):
  write_arrayrecord(tmp_path / "binary.array_record", [b"\xff\xfe\x00"])
  with pytest.raises(ValueError, match=r"binary.array_record record 0 is not UTF-8.*tfds:PATH"):
    list(sources.resolve(f"arrayrecord:{tmp_path}/binary.array_record").documents())
  write_arrayrecord(tmp_path / "field.array_record", [b'{"text": "a"}'])
  with pytest.raises(KeyError, match=r"field.array_record record 0 .* without field 'body'"):
    list(sources.resolve(f"arrayrecord:{tmp_path}/field.array_record", text_field="body").documents())
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no .array_record"):
    sources.resolve(f"arrayrecord:{tmp_path}/empty")


def test_tfds_by_folder_and_by_name(tfds_dir, monkeypatch):
  data_dir, folder = tfds_dir
  by_folder = sources.resolve(f"tfds:{folder}", text_field="body")
  documents = list(by_folder.documents())
  assert sorted(documents) == sorted(DOCUMENTS)  # TFDS stores examples in its own (fixed) order
  assert list(by_folder.documents()) == documents
  monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
  def prepare_again(*args, **kwargs):
    raise AssertionError("the dataset was not found where it is, and TFDS began preparing it anew")
  monkeypatch.setattr(MemjaxTinyText, "_download_and_prepare", prepare_again)
  by_name = sources.resolve("tfds:memjax_tiny_text", text_field="body")
  assert list(by_name.documents()) == documents
  assert by_name.fingerprint != by_folder.fingerprint and "/" not in by_folder.fingerprint
  with pytest.raises(ValueError, match="has no split 'validation'"):
    list(sources.resolve(f"tfds:{folder}", split="validation").documents())
  with pytest.raises(KeyError, match="no feature 'text'.*features: \\['body', 'id'\\]"):
    list(sources.resolve(f"tfds:{folder}").documents())


def test_a_training_run_on_a_tfds_folder(tfds_dir, tmp_path):
  _, folder = tfds_dir
  cfg = data_config(f"tfds:{folder}")
  prepared = data_lib.prepare(cfg)  # also fills the tokenizer and token cache the run below reuses
  eval_docs = list(itertools.islice(sources.resolve(f"tfds:{folder}", text_field="body").documents(), 8))
  batch = next(iter(data_lib.batches(prepared, cfg, split="eval", batch_size=8)))
  assert_examples_hold(batch, eval_docs, prepared, cfg.n_ctx)

  env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  flags = [f"--config.data.{key}={value}" for key, value in cfg.items()
           if key in ("source", "text_field", "eval_documents", "mode")]
  command = [sys.executable, "-m", "memjax.train", f"--config={ROOT}/configs/clm.py:tiny",
             f"--workdir={tmp_path}/run", "--config.train.steps=2", "--config.train.warmup_steps=1",
             "--config.train.progress=False", *flags]
  out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "tokenizing" not in out.stderr  # the cache above was reused: same source, same fingerprint
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["step"] == 2 and np.isfinite(results["eval"]["clm/loss"])
