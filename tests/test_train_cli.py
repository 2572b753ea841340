"""The command line: a run, and bad input named without a traceback."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(*args, cwd=ROOT):
  env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  return subprocess.run([sys.executable, "-m", "memjax.train", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600)


def test_a_tiny_run_from_the_command_line_in_a_relative_workdir(tmp_path):
  out = train(f"--config={ROOT}/configs/clm.py:tiny", "--workdir=runs/tiny", "--config.train.steps=3",
              "--config.train.progress=False", "--config.mesh.fsdp=2", cwd=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "clm/accuracy" in out.stdout
  saved = json.loads((tmp_path / "runs" / "tiny" / "config.json").read_text())
  assert saved["train"]["steps"] == 3 and saved["mesh"]["fsdp"] == 2


@pytest.mark.parametrize("override, message", [
    ("--config.model.dmodel=64", "dmodel"),
    ("--config.data.source=txt:/no/such/file.txt", "does not exist"),
    ("--config.data.tokenizer=/no/such/tokenizer.json", "does not exist"),
    ("--config.train.lr=-0.001", "train.lr=-0.001 must be > 0"),
])
def test_bad_input_is_named(tmp_path, override, message):
  out = train("--config=configs/clm.py:tiny", f"--workdir={tmp_path}", override)
  assert out.returncode != 0
  assert message in out.stderr
  assert not (tmp_path / "config.json").exists()
