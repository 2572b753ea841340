"""gs:// workdirs against a local GCS emulator (gcp-storage-emulator, started here on 127.0.0.1).

What runs against the emulator: a training run in gs://bucket/run, interrupted at step 3 (lines past
that checkpoint left in metrics.jsonl, as a kill leaves them) and resumed to step 6: config.json,
tokenizer.json, metrics.jsonl, TensorBoard events and results.json through memjax.fs and gcsfs;
Orbax checkpoints with asynchronous saves (metadata through gcsfs, arrays through tensorstore's gcs
driver) and the Grain iterator state; then `python -m memjax.export` from that workdir to
gs://bucket/encoder, and loading that export. The run must equal the same run made locally.

What stays untested: GCS authentication (gcsfs runs anonymously and tensorstore with
GOOGLE_AUTH_TOKEN_FOR_TESTING, so credentials are never looked up); conditional writes (the emulator
ignores ifGenerationMatch, which tensorstore's OCDBT uses against concurrent writers; one writer
never needs it); several processes writing one gs:// checkpoint (multi-host); TensorBoard's timed
flushes (only the flush at close is seen). The emulator is patched where it differs from GCS in
ways tensorstore notices (tests/gcs_emulator.py): generation headers and listing offsets.
"""

import json
import os
import struct
import subprocess
import sys

import jax
import numpy as np
import pytest
from etils import epath

from memjax import fs, models
from memjax.data import tokenizer as tokenizers
from memjax.training import checkpoint, encoders, loop
from memjax.training import run_folder
from memjax.training.writers import read_metrics

import gcs_emulator
from conftest import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
  """The emulator's environment, set in this process (one emulator per process: tensorstore reads
  TENSORSTORE_GCS_HTTP_URL once)."""
  import fsspec.config

  log = tmp_path_factory.mktemp("gcs") / "emulator.log"
  with gcs_emulator.running("bucket", str(log)) as env, pytest.MonkeyPatch.context() as patch:
    for name, value in env.items():
      patch.setenv(name, value)
    patch.setitem(fsspec.config.conf, "gcs", {"token": "anon"})  # fsspec read FSSPEC_* at import
    yield env


def final_state(workdir):
  mngr = checkpoint.manager(workdir / run_folder.CHECKPOINTS, items=(checkpoint.STATE,))
  step = mngr.latest_step()
  restored = mngr.restore(step, args=checkpoint.ocp.args.Composite(state=checkpoint.ocp.args.PyTreeRestore()))
  mngr.close()
  return step, restored["state"]


def scalars(event_file: epath.Path) -> dict[tuple[str, int], float]:
  """{(tag, step): value} of a TensorBoard event file (TFRecord framing, Event protos)."""
  from tensorboardX.proto import event_pb2

  data, offset, values = event_file.read_bytes(), 0, {}
  while offset < len(data):
    (length,) = struct.unpack("<Q", data[offset:offset + 8])
    event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
    offset += 12 + length + 4
    for value in event.summary.value:
      values[(value.tag, event.step)] = value.simple_value
  return values


def test_append_and_whole_file_writes_in_a_bucket(gcs):
  target = fs.path("gs://bucket/files/log.jsonl")
  first = fs.AppendFile(target)
  first.write("one\n")
  assert target.read_text() == "one\n"  # visible after each write, before close
  first.write("two\n")
  first.close()
  again = fs.AppendFile(target)  # reopening keeps what is there, as a local append does
  again.write("three\n")
  again.close()
  assert target.read_text() == "one\ntwo\nthree\n"
  fs.write_text("gs://bucket/files/config.json", '{"a": 1}')
  assert json.loads(fs.path("gs://bucket/files/config.json").read_text()) == {"a": 1}
  bpe = tokenizers.train_bpe(["some words to learn a tokenizer from"] * 4, 270)
  fs.write_text("gs://bucket/files/tokenizer.json", bpe.to_str())
  assert tokenizers.load("gs://bucket/files/tokenizer.json", 270).to_str() == bpe.to_str()


def test_local_files_and_a_missing_gcsfs(tmp_path, monkeypatch):
  log = fs.AppendFile(tmp_path / "new" / "log.jsonl")  # creates its folder, as the workdir's files need
  log.write("one\n")
  assert (tmp_path / "new" / "log.jsonl").read_text() == "one\n"
  log.close()
  fs.write_text(tmp_path / "config.json", "{}")
  assert sorted(os.listdir(tmp_path)) == ["config.json", "new"]  # no partial file left behind
  assert str(fs.path("relative/run")) == os.path.join(os.getcwd(), "relative/run")
  import importlib.util
  find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name: None if name == "gcsfs" else find_spec(name))
  with pytest.raises(ImportError, match=r"memjax\[gcs\]"):
    fs.path("gs://bucket/run")


def test_a_run_resumes_and_exports_in_a_bucket(gcs, trained_autoencoder, tmp_path, monkeypatch):
  reference_cfg, reference = trained_autoencoder  # the same run, straight to step 6, in a local folder
  monkeypatch.chdir(tmp_path)  # nothing may land in the current folder (e.g. a folder named 'gs:')
  cfg = load_config("autoencoder.py:tiny")
  cfg.train.update(progress=False, steps=reference_cfg.train.steps, checkpoint_every=3, log_every=1)
  workdir = "gs://bucket/run"
  interrupted = loop.Run(cfg, workdir)
  interrupted.train(until=3)
  interrupted.close()
  torn = fs.AppendFile(f"{workdir}/metrics.jsonl")  # as if killed after step 4, past the checkpoint
  torn.write('{"step": 4, "split": "train", "loss": 0.0}\n{"step": 5, "spl')
  torn.close()
  results = loop.run(cfg, workdir)

  remote = fs.path(workdir)
  reference_results = json.loads((reference / run_folder.RESULTS_JSON).read_text())
  assert results["step"] == 6 and results["eval"] == reference_results["eval"]
  assert json.loads((remote / run_folder.RESULTS_JSON).read_text())["eval"] == results["eval"]
  assert (remote / run_folder.TOKENIZER_JSON).read_text() == (reference / run_folder.TOKENIZER_JSON).read_text()
  step, state = final_state(remote)
  reference_step, reference_state = final_state(epath.Path(reference))
  assert step == reference_step == 6
  jax.tree.map(np.testing.assert_array_equal, state["params"], reference_state["params"])

  train = read_metrics(remote, "train")
  assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]  # both parts, each step once, no torn line
  reference_losses = {r["step"]: r["loss"] for r in read_metrics(reference, "train")}
  assert reference_losses and all(r["loss"] == reference_losses[r["step"]]
                                  for r in train if r["step"] in reference_losses)
  events = sorted((remote / "tensorboard").iterdir())
  assert len(events) == 2  # one event file per process, as locally
  logged = {}
  for event_file in events:
    logged |= scalars(event_file)
  assert {step: value for (tag, step), value in logged.items() if tag == "train/loss"} == pytest.approx(
      {r["step"]: r["loss"] for r in train}, rel=1e-6)

  env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  out = subprocess.run([sys.executable, "-m", "memjax.export", f"--workdir={workdir}",
                        "--out=gs://bucket/encoder"], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  encoder = state["params"]["encoder"]
  target = checkpoint.abstract(encoder, jax.tree.map(lambda _: sharding, encoder))
  digest = encoders.locate(str(reference)).tokenizer_digest
  exported = encoders.load("gs://bucket/encoder", models.encoder_config(cfg), digest, target)
  jax.tree.map(np.testing.assert_array_equal, exported, reference_state["params"]["encoder"])
  assert list(tmp_path.iterdir()) == []
