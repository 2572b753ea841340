import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memjax.data import sources


def test_txt_documents_are_separated_by_blank_lines(tmp_path):
  (tmp_path / "a.txt").write_text("first doc\nline two\n\n\nsecond doc\n")
  (tmp_path / "b.txt").write_text("third doc")
  source = sources.resolve(f"txt:{tmp_path}")
  assert list(source.documents()) == ["first doc\nline two", "second doc", "third doc"]
  assert list(source.documents(limit=2)) == ["first doc\nline two", "second doc"]


def test_jsonl_and_parquet(tmp_path):
  (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"body": f"doc {i}"}) for i in range(3)))
  assert list(sources.resolve(f"jsonl:{tmp_path}/d.jsonl", text_field="body").documents()) == [
      "doc 0", "doc 1", "doc 2"]
  pq.write_table(pa.table({"text": ["x", "y"]}), tmp_path / "d.parquet")
  assert list(sources.resolve(f"parquet:{tmp_path}/d.parquet").documents()) == ["x", "y"]


def test_fingerprint_changes_with_the_file(tmp_path):
  path = tmp_path / "a.txt"
  path.write_text("one")
  before = sources.resolve(f"txt:{path}").fingerprint
  path.write_text("one two")
  assert sources.resolve(f"txt:{path}").fingerprint != before


@pytest.mark.parametrize("spec, error, match", [
    ("txt:/nonexistent/file.txt", FileNotFoundError, "does not exist"),
    ("csv:data.csv", ValueError, "unknown data source"),
    ("jsonl:", ValueError, "needs a path"),
])
def test_bad_sources_are_named(spec, error, match):
  with pytest.raises(error, match=match):
    sources.resolve(spec)


def test_empty_file_and_bad_records(tmp_path):
  (tmp_path / "empty.txt").write_text("")
  with pytest.raises(ValueError, match="empty"):
    sources.resolve(f"txt:{tmp_path}/empty.txt")
  (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
  with pytest.raises(ValueError, match="bad.jsonl:2 is not valid JSON"):
    list(sources.resolve(f"jsonl:{tmp_path}/bad.jsonl").documents())
  (tmp_path / "field.jsonl").write_text('{"body": "ok"}\n')
  with pytest.raises(KeyError, match="no field 'text'"):
    list(sources.resolve(f"jsonl:{tmp_path}/field.jsonl").documents())


def test_hf_source_without_the_extra_says_how_to_install(monkeypatch):
  import builtins
  real_import = builtins.__import__

  def no_datasets(name, *args, **kwargs):
    if name == "datasets":
      raise ImportError(name)
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_datasets)
  source = sources.resolve("hf:fineweb-edu")
  assert "HuggingFaceFW_fineweb-edu-sample-10BT" in source.fingerprint
  with pytest.raises(ImportError, match=r"memjax\[hf\]"):
    next(source.documents())


def test_hf_source_streams_records_through_datasets(monkeypatch):
  import sys
  import types

  calls = []

  def load_dataset(name, config, split, streaming):
    calls.append((name, config, split, streaming))
    return iter([{"text": "first"}, {"text": ""}, {"text": "second"}])

  monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
  source = sources.resolve("hf:finemath", split="train", streaming=True)
  assert list(source.documents()) == ["first", "second"]
  assert calls == [("HuggingFaceTB/finemath", "finemath-4plus", "train", True)]
  named = sources.resolve("hf:org/corpus:subset", streaming=False)
  list(named.documents(limit=1))
  assert calls[-1] == ("org/corpus", "subset", "train", False)
