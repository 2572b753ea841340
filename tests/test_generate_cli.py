"""`python -m memjax.generate` on a trained run, and bad input named without a traceback."""

import os
import subprocess
import sys

import numpy as np
import pytest

from memjax import generate as generate_cli
from memjax.generation import trained
from memjax.generation.generator import Generator
from memjax.generation.sampling import Sampling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory, data_cache):
  """A tiny parallel memory model (4 chunks of 32 tokens) trained for 3 steps: its workdir."""
  from conftest import train_tiny

  return train_tiny(tmp_path_factory, "memory.py:tiny", steps=3, checkpoint_every=3)[1]


def generate(*args):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "memjax.generate", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_generates_from_a_workdir_and_streams(memory_run):
  out = generate(f"--checkpoint={memory_run}", "--prompt=The quick brown fox", "--max_new_tokens=40",
                 "--stop_at_eos=False")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.startswith("The quick brown fox")
  run = trained.load(str(memory_run))
  prompt = run.tokenizer.encode("The quick brown fox").ids
  expected = Generator(run.model, run.context).generate([prompt], 40)["tokens"][0]
  assert out.stdout.rstrip("\n") == "The quick brown fox" + run.tokenizer.decode(list(expected))


def test_a_sampled_batch_is_reproducible(memory_run):
  run = trained.load(str(memory_run))
  generator = Generator(run.model, run.context, sampling=Sampling(0.9, top_k=20, top_p=0.95))
  prompts = [run.tokenizer.encode(text).ids for text in ("Hello", "A much longer prompt, with more words")]
  first = generator.generate(prompts, 12, seed=5)["tokens"]
  np.testing.assert_array_equal(first, generator.generate(prompts, 12, seed=5)["tokens"])
  assert first.shape == (2, 12)


def test_bad_requests_are_named(memory_run, tmp_path):
  with pytest.raises(ValueError, match="prompt 1 is empty"):
    generate_cli.read_prompts(["text", ""], [])
  with pytest.raises(ValueError, match="give a prompt"):
    generate_cli.read_prompts([], [])
  with pytest.raises(FileNotFoundError, match="cannot be read"):
    generate_cli.read_prompts([], [str(tmp_path / "missing.txt")])
  with pytest.raises(FileNotFoundError, match="not a memjax workdir"):
    trained.load(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    trained.load(str(tmp_path / "nowhere"))
  long_prompt = tmp_path / "long.txt"
  long_prompt.write_text("the cat sat on the mat. " * 100)
  out = generate(f"--checkpoint={memory_run}", f"--prompt_file={long_prompt}", "--max_new_tokens=4")
  assert out.returncode != 0 and "exceed what this model holds (128 tokens)" in out.stderr
  assert "Traceback" not in out.stderr
  out = generate(f"--checkpoint={tmp_path}", "--prompt=hi")
  assert out.returncode != 0 and "not a memjax workdir" in out.stderr
