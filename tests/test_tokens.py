import numpy as np
import pytest

from memjax.data import tokenizer, tokens

DOCS = ["alpha beta", "gamma", "delta epsilon zeta", "héllo"]


@pytest.fixture
def corpus(tmp_path):
  tok = tokenizer.train_bpe(DOCS * 20, 280)
  return tok, tokens.get(tmp_path, "key", tok, iter(DOCS), eos_id=1)


def test_documents_are_flat_and_end_with_eos(corpus):
  tok, tc = corpus
  assert len(tc.offsets) == len(DOCS) + 1
  first = tc.tokens[tc.offsets[0]:tc.offsets[1]]
  assert first[-1] == 1 and tok.decode(first[:-1].tolist()) == "alpha beta"
  assert tc.doc_bytes.tolist() == [len(d.encode()) for d in DOCS]


def test_first_documents_are_held_out(corpus):
  tok, tc = corpus
  train, held_out = tc.split(1)
  assert held_out.n_documents == 1 and train.n_documents == 3
  assert tok.decode(train.document(0)[:-1].tolist()) == "gamma"
  assert held_out.bytes_per_token == pytest.approx(10 / held_out.n_tokens)
  with pytest.raises(ValueError, match="eval_documents"):
    tc.split(4)


def test_cache_is_reused(tmp_path, corpus):
  tok, tc = corpus
  again = tokens.get(tmp_path, "key", tok, iter(["different text"]), eos_id=1)  # not re-tokenized
  np.testing.assert_array_equal(again.tokens, tc.tokens)


def test_no_documents_is_an_error(tmp_path, corpus):
  tok, _ = corpus
  with pytest.raises(ValueError, match="no documents"):
    tokens.get(tmp_path, "empty", tok, iter([]), eos_id=1)
  assert not (tmp_path / "tokens" / "empty").exists()
