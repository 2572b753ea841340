from memjax.data import corpus


def test_corpus_is_real_text_and_deterministic():
  docs = corpus.stdlib_documents()
  assert len(docs) > 300
  assert sum(map(len, docs)) > 1_000_000  # over a megabyte of English
  assert docs == corpus.stdlib_documents()
  assert any("Return" in doc for doc in docs[:50])


def test_module_docstrings_in_source_order():
  source = b'"""Module."""\nclass A:\n  """Class."""\n  def f(self):\n    """Method."""\n'
  assert corpus.module_docstrings(source) == "Module.\n\nClass.\n\nMethod."


def test_fingerprint_names_the_python_version():
  import sys
  assert sys.version.split()[0] in corpus.fingerprint()
