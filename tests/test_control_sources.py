"""The control experiment's data: the standard library's code (data/code.py) and uniform-random
tokens (data/random_tokens.py), each through memjax.data.prepare as a run reads them."""

import ast
import hashlib
import math
import pathlib
import sysconfig

import numpy as np
import pytest

from memjax import config as mc
from memjax import data as data_lib
from memjax.data import code, random_tokens, sources


def test_code_documents_are_the_stdlib_files_in_hashed_path_order():
  stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
  paths = code.paths()
  assert stdlib / "os.py" in paths and len(paths) > 500
  assert not any(part in ("site-packages", "test", "__pycache__") for p in paths
                 for part in p.relative_to(stdlib).parts)
  keys = [hashlib.sha1(p.relative_to(stdlib).as_posix().encode()).hexdigest() for p in paths[:50]]
  assert keys == sorted(keys)
  first = next(iter(sources.resolve("stdlib_code").documents(1)))
  readable = next(p for p in paths if p.read_bytes().strip())  # the first non-empty file
  assert first == readable.read_text(encoding="utf-8")
  ast.parse(first)  # Python code, not the docstrings' English
  assert sources.resolve("stdlib_code").fingerprint != sources.resolve("stdlib").fingerprint


def test_random_tokens_are_uniform_fixed_and_sized_by_token_bytes():
  vocab, docs = 64, 40
  token_bytes = np.arange(vocab) % 3 + 1
  corpus = random_tokens.corpus(docs, vocab, token_bytes)
  ids = np.asarray(corpus.tokens)
  assert ids.shape == (docs * random_tokens.DOCUMENT_TOKENS,) and ids.min() == 0 and ids.max() == vocab - 1
  counts = np.bincount(ids, minlength=vocab)
  # Pearson chi-square over 63 degrees of freedom: mean 63, sd ~11; a non-uniform draw is far above
  expected = len(ids) / vocab
  assert ((counts - expected) ** 2 / expected).sum() < 63 + 6 * math.sqrt(2 * 63)
  frequencies = counts / counts.sum()
  assert -(frequencies * np.log(frequencies)).sum() == pytest.approx(math.log(vocab), abs=0.01)
  first = ids[:random_tokens.DOCUMENT_TOKENS]
  assert corpus.doc_bytes[0] == sum(int(token_bytes[i]) for i in first)  # by hand, token by token
  assert np.array_equal(random_tokens.corpus(docs, vocab).tokens, ids)  # one fixed corpus


@pytest.mark.parametrize("spec", ["random:x:stdlib", "random:10", "random:1:stdlib"])
def test_bad_random_sources_are_named(spec):
  with pytest.raises(ValueError, match="random:DOCUMENTS:SOURCE"):
    random_tokens.parse(spec)


def test_random_source_is_not_text():
  with pytest.raises(ValueError, match="not text"):
    sources.resolve("random:10:stdlib")


def test_prepare_reads_random_tokens_with_the_text_sources_tokenizer(data_cache):
  cfg = mc.data(mc.SIZES["smoke"], "smoke")
  text = data_lib.prepare(cfg)
  cfg.source = "random:64:stdlib"
  random = data_lib.prepare(cfg)
  assert random.tokenizer_digest == text.tokenizer_digest and random.special == text.special
  assert random.eval.n_documents == cfg.eval_documents and random.train.n_documents == 64 - cfg.eval_documents
  assert random.train.n_tokens == (64 - cfg.eval_documents) * random_tokens.DOCUMENT_TOKENS
  assert np.asarray(random.train.tokens).max() < cfg.vocab_size
