"""docs/api.md cannot drift from the code: every snippet in it runs, in order, as a user would."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
DOC = ROOT / "docs" / "api.md"


def snippets(language):
  return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_snippet_of_the_api_guide_runs(tmp_path, monkeypatch):
  for name in ("configs", "docs", "memjax"):  # a user's folder: the repository's files, its own runs/
    (tmp_path / name).symlink_to(ROOT / name)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", list(sys.path))
  python, bash = snippets("python"), snippets("bash")
  assert len(python) >= 7 and len(bash) == 1
  namespace = {"__name__": "api_guide"}
  for block in python:
    if "ngram_retrieval:retrieval" in block:  # the Python twin of the command line: run that first
      env = dict(os.environ, PYTHONPATH="")
      done = subprocess.run(["bash", "-c", bash[0].replace("python -m", f"{sys.executable} -m")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
      assert done.returncode == 0, done.stderr
    exec(compile(block, str(DOC), "exec"), namespace)
  assert namespace["results"]["eval"]["reconstruction/tokens"] > 0
  assert (tmp_path / "runs" / "retrieval" / "results.json").exists()
