"""Runs compiled for a TPU slice by the real TPU compiler (libtpu's topology, no TPU needed).

Each model family and task compiles its train step for a v5e 2x2 slice (`v5e-4`) and fits its HBM;
a run that cannot fit exits non-zero with the figures and the knobs. Skipped, with the reason, where
libtpu cannot load (it is in the `tpu` extra that `make test` installs).
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import CONFIGS, load_config, no_persistent_cache
from memjax import accelerators
from memjax.training import tpu_compile

pytestmark = pytest.mark.xdist_group("libtpu")  # one process loads libtpu (its lockfile)


@pytest.fixture(scope="module")
def libtpu():
  try:
    tpu_compile.topology_devices(accelerators.parse("v5e-4"))
  except tpu_compile.LibTpuUnavailable as error:
    pytest.skip(str(error))
  with no_persistent_cache():  # nothing this module compiles could be read back
    yield


RUNS = {
    "clm": "clm.py:{preset},family={family}",
    "autoencoder": "autoencoder.py:{preset},family={family}",
    "memory": "memory.py:{preset},family={family}",
    "frozen_encoder_memory": "memory.py:{preset},family={family}",
    "oracle": "memory.py:{preset},family={family},kind=oracle",
}


def run_config(run, preset, family):
  cfg = load_config(RUNS[run].format(preset=preset, family=family))
  if run == "frozen_encoder_memory":  # an untrained frozen encoder: the same program as a loaded one
    cfg.encoder.frozen = True
  return cfg


@pytest.mark.parametrize("family", ["transformer", "mixer"])
@pytest.mark.parametrize("run", sorted(RUNS))
def test_tiny_runs_compile_for_a_tpu_slice_and_fit(run, family, libtpu):
  cfg = run_config(run, "tiny", family)
  steps = tpu_compile.compile_run(cfg, "v5e-4")
  assert [s.objective for s in steps] == ["clm" if run != "autoencoder" else "autoencode"]
  step = steps[0]
  assert step.fits and step.error == "" and step.devices == 4
  assert 0 < step.hbm_bytes_per_chip < 2**30 and step.headroom_fraction > 0.9
  # The compiled program is the per-device share: at least the model's own FLOPs, not 4x them.
  assert 0.5 * step.model_flops < step.step_flops < 20 * step.model_flops
  assert tpu_compile.verdict(cfg, step, min_headroom=0.1) == ""


@pytest.mark.parametrize("spec", ["clm.py:small,family=transformer", "memory.py:small,family=mixer"])
def test_small_presets_compile_for_a_tpu_slice(spec, libtpu):
  steps = tpu_compile.compile_run(load_config(spec), "v5e-4")
  assert all(s.fits for s in steps)


def test_every_curriculum_objective_is_compiled(libtpu):
  cfg = load_config("memory.py:tiny,family=mixer,stages=blank_copy:5,copy:5,combined")
  assert [s.objective for s in tpu_compile.compile_run(cfg, "v5e-4")] == ["blank_copy", "copy", "combined"]


def test_a_run_that_cannot_fit_exits_with_its_figures_and_knobs(tmp_path, libtpu):
  out = tmp_path / "aot.json"
  command = [sys.executable, "-m", "memjax.aot", f"--config={CONFIGS / 'clm.py'}:small,family=mixer",
             "--accelerator=v5e-4", "--config.train.batch_size=8192", "--config.data.n_ctx=1024",
             "--config.data.vocab_size=32000", f"--out={out}"]
  result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=os.environ | {"JAX_PLATFORMS": "cpu"})
  assert result.returncode == 1, result.stderr[-2000:]
  assert "does not fit" in result.stderr and "GiB HBM" in result.stderr
  assert "--config.model.remat=full" in result.stderr and "--config.train.microbatches=2" in result.stderr
  [step] = json.loads(out.read_text())
  assert not step["fits"] and step["hbm_bytes_per_chip"] > 16 * 2**30
  for field in ("accelerator", "objective", "hbm_bytes_per_device", "headroom_fraction", "step_flops",
                "roofline_step_seconds", "roofline_mfu", "compile_seconds"):
    assert field in step


def test_multislice_mesh_joins_slices_over_the_batch_axis(libtpu):
  from memjax.training import sharding

  devices = tpu_compile.topology_devices(accelerators.parse("v5e-4"), num_slices=2)
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1}, devices)
  # the data axis runs across slices: its first half on slice 0, its second half on slice 1
  slices = [d.slice_index for d in mesh.devices[:, 0, 0]]
  assert slices == [0] * 4 + [1] * 4


def test_fsdp_keeps_activations_split_over_the_batch(libtpu):
  """Under fsdp, every block's output is constrained to the batch's split: without that, XLA
  replicated the mixer memory model's activations (measured on v5e-8: 176 MiB per chip, 7.5 GFLOP
  of compiled work against 27 MiB and 4.8 GFLOP with it)."""
  cfg = load_config("memory.py:small,family=mixer")
  cfg.mesh.update(data=1, fsdp=-1)
  [step] = tpu_compile.compile_run(cfg, "v5e-8", loop_costs=False)
  assert step.step_flops < 1.3 * step.model_flops, (step.step_flops, step.model_flops)
