import pytest

from memjax.data import sources, tokenizer

TEXT = ["The quick brown fox jumps over the lazy dog.", "Return the sum of a and b."] * 50


def test_trained_bpe_has_the_exact_vocabulary_and_round_trips():
  tok = tokenizer.train_bpe(TEXT, 300)
  assert tok.get_vocab_size() == 300
  assert [tok.token_to_id(t) for t in tokenizer.SPECIAL_TOKENS] == [0, 1, 2, 3]
  ids = tok.encode("Return the lazy fox. ünïcödé", add_special_tokens=False).ids
  assert tok.decode(ids) == "Return the lazy fox. ünïcödé"


def test_too_large_a_vocabulary_is_refused():
  with pytest.raises(ValueError, match="smaller vocabulary"):
    tokenizer.train_bpe(["tiny corpus"], 5000)


def test_cached_and_loaded(tmp_path):
  (tmp_path / "corpus.txt").write_text("\n\n".join(TEXT))
  source = sources.resolve(f"txt:{tmp_path}/corpus.txt")
  tok, digest = tokenizer.get(source, 300, tmp_path / "cache")
  assert len(list((tmp_path / "cache" / "tokenizers").iterdir())) == 1
  again, again_digest = tokenizer.get(source, 300, tmp_path / "cache")
  assert again_digest == digest == tokenizer.digest(tok)
  tok.save(str(tmp_path / "tokenizer.json"))
  loaded, _ = tokenizer.get(source, 300, tmp_path / "other", path=str(tmp_path / "tokenizer.json"))
  assert tokenizer.digest(loaded) == digest


def test_vocabulary_mismatch_is_named(tmp_path):
  tokenizer.train_bpe(TEXT, 300).save(str(tmp_path / "tokenizer.json"))
  with pytest.raises(ValueError, match="vocabulary of 300 tokens but data.vocab_size is 512"):
    tokenizer.load(tmp_path / "tokenizer.json", 512)
  with pytest.raises(FileNotFoundError):
    tokenizer.load(tmp_path / "missing.json", 300)
  (tmp_path / "junk.json").write_text("{not json")
  with pytest.raises(ValueError, match="not a Hugging Face tokenizer.json"):
    tokenizer.load(tmp_path / "junk.json", 300)
