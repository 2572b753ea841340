"""The launch layer without a cloud: golden dry runs, a fake cloud behind the runner, scripts run for
real, and the launcher run for real against a stateful fake gcloud on PATH (FAKE_GCLOUD below).

Goldens (tests/goldens/launch/*.txt) hold the exact output of `python -m launch ... --dry-run`; after
an intended change, regenerate them with
    MEMJAX_UPDATE_GOLDENS=1 python -m pytest tests/test_launch.py -n 0
and review the diff. Expected facts (runtime versions, device files, flags) are also asserted
directly, from the Cloud TPU / SLURM / xpk documentation, not from the goldens.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from launch import __main__ as cli
from launch import gpu, tpu, xpk
from launch import job as jobs
from launch.runner import Cmd, CommandError, Result, Shell

ROOT = pathlib.Path(__file__).parent.parent
# One xdist worker for the whole file: runs of the same slice name in one process share the launcher's
# staging folder (launch.job.staging_root), and one test's cleanup removed it under another's launch.
pytestmark = pytest.mark.xdist_group("launch")
GOLDENS = pathlib.Path(__file__).parent / "goldens" / "launch"
SHA = "0123456789abcdef0123456789abcdef01234567"
TRAIN = ["--", "--config=configs/clm.py:paper", "--workdir=gs://my-bucket/runs/clm"]
SLICE = ["--name=memjax-1", "--zone=us-central2-b"]

CASES = {
    "tpu_create_v4": ["tpu", "create", *SLICE, "--accelerator=v4-32"],
    "tpu_create_v5e_spot": ["tpu", "create", "--name=memjax-1", "--zone=us-west4-a", "--accelerator=v5e-16", "--spot"],
    "tpu_create_v6e_reserved": ["tpu", "create", "--name=memjax-1", "--zone=us-east5-b", "--project=my-project",
                                "--accelerator=v6e-8", "--reserved"],
    "tpu_run_v4": ["tpu", "run", *SLICE, "--accelerator=v4-32", "--retries=3", f"--commit={SHA}", *TRAIN],
    "tpu_run_v5e_spot": ["tpu", "run", "--name=memjax-1", "--zone=us-west4-a", "--accelerator=v5litepod-16", "--spot",
                         "--retries=10", f"--commit={SHA}", "--env=TFDS_DATA_DIR=gs://my-bucket/tfds", *TRAIN],
    "tpu_run_v6e": ["tpu", "run", "--name=memjax-1", "--zone=us-east5-b", "--accelerator=v6e-8",
                    "--jax-version=0.10.2", f"--commit={SHA}", "--detach", *TRAIN],
    "tpu_logs": ["tpu", "logs", *SLICE],
    "tpu_logs_worker_follow": ["tpu", "logs", *SLICE, "--worker=0", "--follow", "--lines=20"],
    "tpu_logs_out": ["tpu", "logs", *SLICE, "--out=logs/memjax-1"],
    "tpu_stop": ["tpu", "stop", *SLICE],
    "tpu_stop_force": ["tpu", "stop", *SLICE, "--force"],
    "tpu_delete": ["tpu", "delete", *SLICE],
    "xpk_run_v5e": ["xpk", "run", "--cluster=my-cluster", "--workload=clm-1", "--tpu=v5litepod-16", "--max-restarts=5",
                    "--project=my-project", "--zone=us-west4-a", f"--commit={SHA}", *TRAIN],
    "xpk_run_v6e": ["xpk", "run", "--cluster=my-cluster", "--workload=clm-2", "--tpu=v6e-32", "--num-slices=2",
                    "--max-restarts=3", f"--commit={SHA}", *TRAIN],
    "xpk_delete": ["xpk", "delete", "--cluster=my-cluster", "--workload=clm-1"],
    "gpu_node": ["gpu", "node", "--gpus=0,1,2,3", "--retries=2", "--env=XLA_PYTHON_CLIENT_MEM_FRACTION=.9", "--",
                 "--config=configs/clm.py:small", "--workdir=runs/clm"],
    "tpu_create_v5e_2slices": ["tpu", "create", "--name=memjax-1", "--zone=us-west4-a", "--accelerator=v5e-16",
                               "--num_slices=2", "--spot", "--", "--config=configs/clm.py:paper"],
    "tpu_run_v5e_2slices": ["tpu", "run", "--name=memjax-1", "--zone=us-west4-a", "--accelerator=v5e-16",
                            "--num_slices=2", "--spot", "--retries=5", f"--commit={SHA}", *TRAIN,
                            "--config.train.steps=1000"],
    "tpu_create_options": ["tpu", "create", *SLICE, "--accelerator=v4-8", "--internal-ip",
                           "--service-account=trainer@my-project.iam.gserviceaccount.com",
                           "--scopes=https://www.googleapis.com/auth/cloud-platform", "--network=tpu-net",
                           "--subnetwork=tpu-subnet", "--valid-until-duration=6h", "--skip_preflight"],
    "tpu_status": ["tpu", "status", *SLICE, "--workdir=gs://my-bucket/runs/clm"],
    "tpu_logs_2slices": ["tpu", "logs", *SLICE, "--num_slices=2", "--out=logs/memjax-1"],
    "xpk_run_docker": ["xpk", "run", "--cluster=my-cluster", "--workload=clm-3", "--tpu=v6e-16",
                       "--docker-image=us-docker.pkg.dev/my-project/memjax/memjax:0123456", "--max-restarts=5",
                       f"--commit={SHA}", *TRAIN],
    "gpu_slurm_options": ["gpu", "slurm", "--nodes=1", "--gpus-per-node=4", "--cpus-per-task=16", "--mem=0",
                          "--exclusive", "--qos=high", "--constraint=a100", "--run-dir=/shared/memjax/clm",
                          f"--commit={SHA}", "--", "--config=configs/clm.py:small", "--workdir=/shared/memjax/w"],
    "gpu_slurm": ["gpu", "slurm", "--nodes=2", "--gpus-per-node=8", "--partition=gpu", "--account=my-account",
                  "--time=04:00:00", "--retries=3", "--run-dir=/shared/memjax/clm", f"--commit={SHA}", "--",
                  "--config=configs/clm.py:paper", "--workdir=/shared/memjax/clm/workdir"],
}


def with_dry_run(argv) -> list[str]:
  """argv with --dry-run before the `--` that starts memjax.train's arguments."""
  split = argv.index("--") if "--" in argv else len(argv)
  return [*argv[:split], "--dry-run", *argv[split:]]


@pytest.fixture(autouse=True)
def head_is_sha(monkeypatch):
  """`gpu node` records this checkout's HEAD; the goldens need a fixed one (others pass --commit)."""
  resolve = jobs.resolve_commit
  monkeypatch.setattr(jobs, "resolve_commit",
                      lambda commit, say, shipped=True: SHA if commit == "HEAD" and not shipped else resolve(commit, say))


def dry_run(argv, capsys) -> str:
  assert cli.main(with_dry_run(argv)) == 0
  out = capsys.readouterr().out.replace(jobs.staging_root(), "/tmp/memjax-launch-PID")  # stable goldens
  return f"# python -m launch {shlex.join(with_dry_run(argv))}\n{out}"


def bash_n(text: str) -> None:
  done = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_dry_run_matches_golden_and_is_bash(name, capsys):
  out = dry_run(CASES[name], capsys)
  path = GOLDENS / f"{name}.txt"
  if os.environ.get("MEMJAX_UPDATE_GOLDENS") == "1":
    path.write_text(out)
  assert path.exists(), f"no golden {path}: run with MEMJAX_UPDATE_GOLDENS=1"
  assert out == path.read_text()
  bash_n(out)  # the dry run is itself a bash script (commands, heredoc'd files, # comments)


def test_goldens_say_what_the_docs_say(capsys):
  """Facts from the Cloud TPU, xpk and SLURM docs, checked in the dry runs."""
  runtimes = {"tpu_create_v4": "--runtime-version=tpu-ubuntu2204-base",
              "tpu_create_v5e_spot": "--runtime-version=v2-alpha-tpuv5-lite",
              "tpu_create_v6e_reserved": "--runtime-version=v2-alpha-tpuv6e"}
  for name, flag in runtimes.items():
    assert flag in dry_run(CASES[name], capsys)
  assert "--accelerator-type=v5litepod-16 " in dry_run(CASES["tpu_create_v5e_spot"], capsys)
  assert " --spot" in dry_run(CASES["tpu_create_v5e_spot"], capsys)
  assert " --reserved" in dry_run(CASES["tpu_create_v6e_reserved"], capsys)
  v4, v5e = dry_run(CASES["tpu_run_v4"], capsys), dry_run(CASES["tpu_run_v5e_spot"], capsys)
  assert "lsof -t /dev/accel*" in v4 and "/dev/vfio" not in v4
  assert "lsof -t /dev/vfio/*" in v5e and "/dev/accel" not in v5e
  for out in (v4, v5e):
    assert "rm -f /tmp/libtpu_lockfile" in out and f"git archive --format=tar.gz -o /tmp/memjax-launch-PID/memjax-memjax-1/code.tar.gz {SHA}" in out
    assert "--worker=all '--command=bash memjax-memjax-1/start.sh'" in out
    assert '"jax[tpu]==0.10.2"' in out and "export MEMJAX_DISTRIBUTED=1" in out
  assert "export TFDS_DATA_DIR=gs://my-bucket/tfds" in v5e
  slurm = dry_run(CASES["gpu_slurm"], capsys)
  for line in ("#SBATCH --signal=TERM@120", "#SBATCH --requeue", "#SBATCH --ntasks-per-node=8",
               "#SBATCH --gpus-per-node=8", "--output=/shared/memjax/clm/logs/%j-%t.out"):
    assert line in slurm
  assert "--max-restarts=5" in dry_run(CASES["xpk_run_v5e"], capsys)


@pytest.mark.parametrize("accelerator", ["v4-8", "v5litepod-16", "v5p-16", "v6e-8"])
def test_every_worker_script_is_bash(accelerator):
  s = tpu.Slice("memjax-1", "z", accelerator)
  job = jobs.Job(("--config=configs/clm.py:paper", "--workdir=gs://b/r", "--config.train.steps=10"), SHA,
                 (("NOTE", "it's quoted"),))
  scripts = tpu.worker_scripts(s, job, "0.10.2")
  assert set(scripts) == {"setup.sh", "versions.sh", "free_tpu.sh", "run.sh", "start.sh", "status.sh", "stop.sh",
                          "news.sh"}
  for text in scripts.values():
    bash_n(text)
  bash_n(gpu.sbatch_script(gpu.Slurm("/shared/r", 2, 4), job))


def test_accelerator_table():
  expected = {"v4-8": ("v4-8", 1), "v4-32": ("v4-32", 4), "v5e-8": ("v5litepod-8", 1),
              "v5litepod-16": ("v5litepod-16", 4), "v6e-8": ("v6e-8", 1), "v6e-64": ("v6e-64", 16)}
  for name, (gcloud_name, workers) in expected.items():
    s = tpu.Slice("a", "z", name)
    assert (s.accelerator, s.expected_workers) == (gcloud_name, workers)
  for bad in ("v3-8", "v5e", "tpu-8", "v6e-0"):
    with pytest.raises(ValueError, match="accelerator"):
      tpu.Slice("a", "z", bad)


# --- a fake cloud behind the runner ------------------------------------------------------------------

class FakeCloud:
  """Plays gcloud for one queued resource: `states` are what successive describes see while it
  exists (FAILED / SUSPENDED stay until it is deleted); `runs` scripts each started run's worker states."""

  def __init__(self, states, runs, workers=2, versions=None):
    self.states, self.runs, self.workers = list(states), list(runs), workers
    self.versions = versions or ["jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30"] * workers
    self.exists, self.log, self.said, self.current = True, [], [], None

  def run(self, command: Cmd) -> Result:
    argv = command.argv
    text = " ".join(argv)
    self.log.append(text)
    if "queued-resources describe" in text:
      if not self.exists:
        return Result(1, "")
      sticky = self.states[0] in tpu.RECREATE or len(self.states) == 1  # until deleted / the last one
      return Result(0, self.states[0] if sticky else self.states.pop(0))
    if "queued-resources delete" in text:
      self.exists = False
      if self.states[0] in tpu.RECREATE:
        self.states.pop(0)
    elif "queued-resources create" in text:
      self.exists = True
    elif "tpu-vm describe" in text:
      return Result(0, "".join(f"10.0.0.{i}\n" for i in range(self.workers)))
    elif "versions.sh" in text:
      return Result(0, "".join(f"MEMJAX_VERSIONS {v} host{i}\n" for i, v in enumerate(self.versions)))
    elif "start.sh" in text:
      self.current = list(self.runs.pop(0))
    elif "status.sh" in text:
      if self.current is None:  # nothing started yet
        return Result(0, "".join(f"MEMJAX_STATUS host{i} lost\n" for i in range(self.workers)))
      answer = self.current.pop(0) if len(self.current) > 1 else self.current[0]
      if answer == "unreachable":
        return Result(255, "")
      return Result(0, "".join(f"MEMJAX_STATUS host{i} {s}\n" for i, s in enumerate(answer)))
    return Result(0, "")

  def write(self, path, text):
    self.log.append(f"write {path}")

  def sleep(self, seconds):
    pass

  def say(self, message):
    self.said.append(message)

  def count(self, fragment):
    return sum(fragment in line for line in self.log)

  def ran(self, script):
    """How often `script` ran on the workers (writes of the file don't count)."""
    return self.count(f"--command=bash memjax-memjax-1/{script}")


JOB = jobs.Job(("--config=configs/clm.py:paper", "--workdir=gs://b/run"), SHA)
S = tpu.Slice("memjax-1", "us-central2-b", "v4-16", capacity="spot")


def test_suspended_slice_is_recreated_then_waited_for():
  cloud = FakeCloud(["SUSPENDED", "WAITING_FOR_RESOURCES", "PROVISIONING", "ACTIVE"], runs=[])
  tpu.wait_active(S, cloud, poll_s=1, create_missing=True)
  kinds = [line.split()[3:5] for line in cloud.log]
  assert kinds == [["queued-resources", "describe"], ["queued-resources", "delete"], ["queued-resources", "create"],
                   ["queued-resources", "describe"], ["queued-resources", "describe"], ["queued-resources", "describe"]]
  assert "--spot" in cloud.log[2] and "--force" in cloud.log[1]


def test_create_waits_until_active_and_a_failed_one_is_recreated():
  cloud = FakeCloud(["WAITING_FOR_RESOURCES", "FAILED", "ACTIVE"], runs=[])
  cloud.exists = False
  tpu.create(S, cloud, poll_s=1)
  assert cloud.count("queued-resources create") == 2 and cloud.count("queued-resources delete") == 1


def test_preempted_run_is_relaunched_on_a_recreated_slice():
  """Spot preemption: workers unreachable, slice SUSPENDED -> recreate -> reinstall -> same command -> 0."""
  cloud = FakeCloud(["ACTIVE", "ACTIVE", "SUSPENDED", "PROVISIONING", "ACTIVE"],
                    runs=[[("running", "running"), "unreachable"], [("running", "running"), ("0", "0")]])
  assert tpu.run(S, JOB, cloud, retries=2, poll_s=1) == 0
  assert cloud.ran("start.sh") == 2 and cloud.ran("setup.sh") == 2
  assert cloud.count("queued-resources delete") == 1 and cloud.count("queued-resources create") == 1
  assert [line for line in cloud.log if "run.sh" in line] == [f"write {S.staging}/run.sh"] * 2
  assert any("relaunching (1/2)" in message and "gs://b/run" in message for message in cloud.said)


def test_exit_42_relaunches_without_recreating_and_retries_run_out():
  cloud = FakeCloud(["ACTIVE"], runs=[[("42", "42")], [("running", "42"), ("42", "42")]])
  assert tpu.run(S, JOB, cloud, retries=1, poll_s=1) == 42
  assert cloud.ran("start.sh") == 2 and cloud.count("queued-resources create") == 0
  assert cloud.ran("stop.sh --force") == 1


def test_a_stopped_run_is_not_relaunched():
  cloud = FakeCloud(["ACTIVE"], runs=[[("running", "running"), ("stopped", "stopped")]])
  assert tpu.run(S, JOB, cloud, retries=3, poll_s=1) == 42
  assert cloud.ran("start.sh") == 1 and any("not relaunched" in message for message in cloud.said)


def test_a_running_job_is_attached_to_and_a_partial_one_replaced():
  """Running `tpu run` again while the job runs waits for it; a job alive on some workers only is killed."""
  cloud = FakeCloud(["ACTIVE"], runs=[])
  cloud.current = [("running", "running"), ("running", "running"), ("0", "0")]
  assert tpu.run(S, JOB, cloud, poll_s=1) == 0
  assert cloud.ran("start.sh") == 0 and cloud.ran("setup.sh") == 0
  cloud = FakeCloud(["ACTIVE"], runs=[[("running", "running"), ("0", "0")]])
  cloud.current = [("running", "lost")]
  assert tpu.run(S, JOB, cloud, poll_s=1) == 0
  assert cloud.ran("stop.sh --force") == 1 and cloud.ran("start.sh") == 1
  assert cloud.log.index(next(l for l in cloud.log if "stop.sh --force" in l)) < cloud.log.index(
      next(l for l in cloud.log if "start.sh" in l and "--command" in l))


def test_a_real_error_is_not_retried_and_stops_the_other_workers():
  cloud = FakeCloud(["ACTIVE"], runs=[[("running", "running"), ("1", "running")]])
  assert tpu.run(S, JOB, cloud, retries=5, poll_s=1) == 1
  assert cloud.ran("start.sh") == 1 and cloud.ran("stop.sh --force") == 1


def test_version_skew_is_refused_before_starting():
  cloud = FakeCloud(["ACTIVE"], runs=[], versions=["jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30",
                                                   "jax=0.10.1 jaxlib=0.10.1 libtpu=0.0.30"])
  with pytest.raises(RuntimeError, match=r"disagree.*jax=0.10.1 .* on host1.*jax=0.10.2 .* on host0"):
    tpu.run(S, JOB, cloud, poll_s=1)
  assert cloud.ran("start.sh") == 0
  with pytest.raises(RuntimeError, match="1 of 2 workers answered"):
    tpu.check_versions("MEMJAX_VERSIONS jax=1 jaxlib=1 libtpu=1 host0\n", 2)


def test_outcome():
  assert tpu.outcome(["running", "running"]) is None
  assert tpu.outcome(["0", "running"]) is None  # process 0 may still write results
  assert tpu.outcome(["0", "0"]) == 0
  assert tpu.outcome(["42", "running"]) == 42
  assert tpu.outcome(["42", "1"]) == 1  # an error wins over a preemption
  assert tpu.outcome(["lost", "0"]) == 255 and tpu.outcome(["", "0"]) == 255
  assert tpu.outcome(["stopped", "stopped"]) == 42
  assert [jobs.retryable(c) for c in (0, 1, 2, 42, 127, 137, 143, 255)] == [False, False, False, True, False, True, True, True]


def test_gpu_node_reruns_after_preemption_only():
  class Codes:
    def __init__(self, codes):
      self.codes, self.commands = list(codes), []
    def run(self, command):
      self.commands.append(command)
      return Result(self.codes.pop(0))
    def say(self, message):
      pass
  job = jobs.Job(("--config=c", "--workdir=runs/x"), SHA)
  runner = Codes([42, 143, 0])
  assert gpu.run_node(job, runner, retries=2) == 0 and len(runner.commands) == 3
  assert len({c.argv for c in runner.commands}) == 1
  runner = Codes([1])
  assert gpu.run_node(job, runner, retries=2) == 1 and len(runner.commands) == 1
  runner = Codes([42, 42])
  assert gpu.run_node(job, runner, retries=1) == 42


# --- the generated scripts, run for real with stand-ins for python / srun -----------------------------

def _executable(path: pathlib.Path, text: str) -> None:
  path.write_text(text)
  path.chmod(0o755)


def test_worker_run_stop_status_scripts(tmp_path):
  """run.sh records the exit code; stop.sh's SIGTERM reaches memjax.train (a stand-in exiting 42 on TERM)."""
  home = tmp_path / "memjax-x"
  (home / "code").mkdir(parents=True)
  (home / "venv" / "bin").mkdir(parents=True)
  _executable(home / "venv" / "bin" / "python",
              '#!/bin/bash\necho "args: $* distributed=$MEMJAX_DISTRIBUTED"\n'
              'trap "echo got TERM; exit 42" TERM\nsleep 20 & wait\nexit 3\n')
  for name, text in tpu.worker_scripts(tpu.Slice("x", "z", "v4-8"), JOB, "0.10.2").items():
    (home / name).write_text(text)
  run = subprocess.Popen(["bash", str(home / "run.sh")], stdout=open(home / "run.log", "w"), stderr=subprocess.STDOUT)
  status = lambda: subprocess.run(["bash", str(home / "status.sh")], capture_output=True, text=True).stdout.split()
  for _ in range(100):
    if (home / "train.pid").exists() and status()[-1] == "running":
      break
    subprocess.run(["sleep", "0.05"])
  assert status()[-1] == "running"
  stop = subprocess.run(["bash", str(home / "stop.sh")], capture_output=True, text=True)
  assert "sent SIGTERM" in stop.stdout
  assert run.wait(timeout=20) == 0
  assert status()[-1] == "stopped" and (home / "exit_code").read_text().strip() == "42"
  log = (home / "run.log").read_text()
  assert "args: -m memjax.train --config=configs/clm.py:paper --workdir=gs://b/run distributed=1" in log
  assert "got TERM" in log and "exit 42" in log


def run_sbatch_script(tmp_path, srun_exit: int, restarts: int):
  """The sbatch script of a 2-node job run by bash, its srun exiting `srun_exit` after `restarts`
  requeues: (the script's exit code, the srun and scontrol calls it made, the Slurm config)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _executable(bin_dir / "srun", f'#!/bin/bash\necho "srun $*" >> {tmp_path}/calls\nexit {srun_exit}\n')
  _executable(bin_dir / "scontrol", f'#!/bin/bash\necho "scontrol $*" >> {tmp_path}/calls\n')
  cfg = gpu.Slurm(str(tmp_path / "run"), nodes=2, gpus_per_node=4, retries=3)
  job = jobs.Job(("--config=configs/clm.py:paper", f"--workdir={tmp_path}/work"), SHA)
  os.makedirs(gpu.code_dir(cfg, SHA))
  script = tmp_path / "job.sbatch"
  script.write_text(gpu.sbatch_script(cfg, job))
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="77", SLURM_RESTART_COUNT=str(restarts))
  done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
  return done.returncode, (tmp_path / "calls").read_text().splitlines(), cfg


@pytest.mark.parametrize("restarts, requeued", [(0, True), (2, True), (3, False)])
def test_sbatch_script_requeues_after_preemption(tmp_path, restarts, requeued):
  code, calls, cfg = run_sbatch_script(tmp_path, 42, restarts)
  assert code == 42
  assert calls[0].startswith(
      f"srun --kill-on-bad-exit=1 --open-mode=append --output={cfg.run_dir}/logs/%j-%t.out python3 -m memjax.train")
  assert ("scontrol requeue 77" in calls) == requeued


# --- the command line -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["tpu", "run", *SLICE, "--accelerator=v4-8", f"--commit={SHA}", "--", "--config=c"], "needs --workdir"),
    (["tpu", "run", *SLICE, "--accelerator=v4-8", f"--commit={SHA}", "--", "--config=c", "--workdir=runs/x"],
     "needs a gs:// workdir"),
    (["tpu", "create", *SLICE, "--accelerator=v3-8"], "accelerator 'v3-8'"),
    (["tpu", "create", "--name=Bad_Name", "--zone=z", "--accelerator=v4-8"], "--name 'Bad_Name'"),
    (["tpu", "logs", *SLICE, "--", "--workdir=x"], "takes no memjax.train arguments"),
    (["gpu", "slurm", "--run-dir=/r", f"--commit={SHA}", "--", "--config=c", "--workdir=rel/x"], "absolute path"),
    (["tpu", "run", *SLICE, "--accelerator=v4-8", "--commit=no-such-ref", *TRAIN], "not a commit"),
    (["gpu", "node", "--env=1X=2", "--", "--config=c", "--workdir=w"], "not a variable name"),
    (["tpu", "run", *SLICE, "--accelerator=v4-8", f"--commit={SHA}", "--extras=hf;x", *TRAIN], "--extras 'hf;x'"),
    (["xpk", "run", "--cluster=c", "--workload=w", "--tpu=v4-8", f"--commit={SHA}", "--jax-version=1;x", *TRAIN],
     "--jax-version '1;x'"),
])
def test_bad_input_is_refused_with_its_name(argv, message, capsys):
  assert cli.main(with_dry_run(argv)) == 2
  err = capsys.readouterr().err
  assert message in err, err


def test_a_dry_run_flag_after_the_separator_runs_nothing(capsys):
  class Refuse:
    def run(self, command):
      raise AssertionError(f"ran {command}")
  assert cli.main(["tpu", "delete", *SLICE, "--", "--dry-run"], runner=Refuse()) == 2
  assert cli.main(["tpu", "run", *SLICE, "--accelerator=v4-8", *TRAIN, "--dry-run"], runner=Refuse()) == 2
  assert "--dry-run goes before `--`" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["tpu", "run", *SLICE, "--accelerator=v4-8", "--retries=-1"], "--retries: -1 is below 0"),
    (["tpu", "logs", *SLICE, "--worker=x"], "--worker: 'x'"),
    (["gpu", "slurm", "--nodes=0"], "--nodes: 0 is below 1"),
    (["tpu", "create", *SLICE, "--accelerator=v4-8", "--spot", "--reserved"], "not allowed with"),
])
def test_bad_flags_are_refused_by_the_parser(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(with_dry_run(argv))
  assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_launch_runs_without_jax():
  """The launcher runs on a laptop with only gcloud: it never imports jax (or memjax)."""
  code = "import sys, launch.__main__; print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'memjax')))"
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
  assert out.strip() == "['memjax', 'memjax.accelerators']"  # the chip table, standard library only
  help_text = subprocess.run([sys.executable, "-m", "launch", "tpu", "run", "--help"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
  assert "--retries" in help_text and "--dry-run" in help_text


# --- the whole TPU path through the real Shell runner, against a fake gcloud on this machine ---------

FAKE_GCLOUD = '''#!PYTHON -S
# gcloud stand-in that keeps state in FAKE_TPU_ROOT/cloud.json: one queued resource whose describes
# walk through `plans` (one list of states per create, the last state sticks; "FAILED:why" carries
# gcloud's reason), nodes whose workers are folders FAKE_TPU_ROOT/NODE/wI (a fresh copy of
# FAKE_TPU_ROOT/image at each create: new VMs), `zones` the accelerator types each zone offers
# (None: every type everywhere), `fail` counts of scp/ssh calls that exit 255 (a
# dropped connection), `preempt_after` status polls after which the spot slice is SUSPENDED and its
# nodes deleted, and a bucket FAKE_TPU_ROOT/gcs for `gcloud storage`.
import json, os, shutil, subprocess, sys
args, root = sys.argv[1:], os.environ["FAKE_TPU_ROOT"]
path = os.path.join(root, "cloud.json")
st = json.load(open(path))
with open(os.path.join(root, "gcloud.log"), "a") as log:
  log.write(" ".join(args) + "\\n")
value = lambda name: next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)
def save():
  json.dump(st, open(path, "w"))
def local(url):  # gs://b/x -> FAKE_TPU_ROOT/gcs/b/x
  return os.path.join(root, "gcs", url[len("gs://"):])
def nodes():
  if st["qr"] is None or st["qr"]["deleted_nodes"]:
    return []
  count = st["qr"]["nodes"]
  return [st["qr"]["name"]] if count == 1 else [f"{st['qr']['name']}-{i}" for i in range(count)]
def homes(node):
  return [os.path.join(root, node, f"w{i}") for i in range(st["workers"])]
def fail(kind):
  if st["fail"].get(kind, 0) > 0:
    st["fail"][kind] -= 1
    save()
    sys.exit(255)
def drop_nodes():  # the VMs go away with whatever runs on them
  for node in nodes():
    for home in homes(node):
      try:
        os.killpg(os.getpgid(int(open(os.path.join(home, f"memjax-{st['qr']['name']}", "train.pid")).read())), 9)
      except (OSError, ValueError):
        pass
    shutil.rmtree(os.path.join(root, node), ignore_errors=True)
  st["qr"]["deleted_nodes"] = True
if args[:2] == ["storage", "cp"]:
  src, dst = [a for a in args[2:] if not a.startswith("-")]
  os.makedirs(os.path.dirname(local(dst)), exist_ok=True)
  shutil.copyfile(src, local(dst))
elif args[:2] == ["storage", "ls"]:
  folder = local(args[2])
  if not os.path.isdir(folder):
    sys.exit(1)
  print("\\n".join(args[2] + name + "/" for name in sorted(os.listdir(folder))))
elif args[2:5] == ["tpu-vm", "accelerator-types", "describe"]:
  offered = [args[5]] if st["zones"] is None else st["zones"].get(value("zone"), [])
  if args[5] not in offered:
    sys.exit(f"ERROR: (gcloud.compute.tpus.tpu-vm.accelerator-types.describe) NOT_FOUND: {args[5]} in {value('zone')}")
  print(args[5])
elif args[2:4] == ["queued-resources", "describe"]:
  if st["qr"] is None:
    sys.exit(1)
  states = st["qr"]["states"]
  now = states.pop(0) if len(states) > 1 else states[0]
  save()
  print(now.replace(":", "\\t", 1))
elif args[2:4] == ["queued-resources", "create"]:
  st["creates"] += 1
  if st["creates"] > 20:
    sys.exit("ERROR: (gcloud) quota exceeded: too many queued resources created")
  st["qr"] = {"name": args[4], "states": st["plans"].pop(0) if st["plans"] else ["ACTIVE"],
              "nodes": int(value("node-count") or 1), "deleted_nodes": False}
  for node in nodes():
    for home in homes(node):
      shutil.rmtree(home, ignore_errors=True)
      shutil.copytree(os.path.join(root, "image"), home, symlinks=True)
  save()
elif args[2:4] == ["queued-resources", "delete"]:
  drop_nodes()
  st["qr"] = None
  save()
elif args[2:4] == ["tpu-vm", "describe"]:
  if args[4] not in nodes():
    print(f"ERROR: node {args[4]} not found", file=sys.stderr)
    sys.exit(1)
  if value("format") == "value(state,health)":
    print("READY\\tHEALTHY")
  else:
    print("\\n".join(f"10.0.{nodes().index(args[4])}.{i}" for i in range(st["workers"])))
elif args[2:4] == ["tpu-vm", "scp"]:
  fail("scp")
  paths = [a for a in args[4:] if not a.startswith("-")]
  node, remote = next(p.split(":", 1) for p in paths if ":" in p)
  if node not in nodes():
    sys.exit(255)
  if "--recurse" in args:  # local folder -> every worker's home
    for home in homes(node):
      shutil.copytree(paths[0], os.path.join(home, os.path.basename(paths[0])), dirs_exist_ok=True)
  else:  # one worker's file -> here
    shutil.copyfile(os.path.join(homes(node)[int(value("worker"))], remote), paths[1])
elif args[2:4] == ["tpu-vm", "ssh"]:
  node, worker, command, code = args[4], value("worker"), value("command"), 0
  if "--output-directory" in " ".join(args):
    sys.exit("ERROR: gcloud crashed: open None/0.log")  # what the flag does in the SDK the README names
  fail("ssh")
  if "status.sh" in command and st.get("preempt_after") is not None:
    st["preempt_after"] -= 1
    if st["preempt_after"] < 0:
      st["preempt_after"] = None
      drop_nodes()
      st["qr"]["states"] = ["SUSPENDED"]
    save()
  if node not in nodes():
    sys.exit(255)
  picked = range(st["workers"]) if worker == "all" else [int(i) for i in worker.split(",")]
  for i in picked:
    done = subprocess.run(["bash", "-c", command], cwd=homes(node)[i], capture_output=True, text=True,
                          env=dict(os.environ, HOME=homes(node)[i], HOSTNAME=f"{node}-w{i}"))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    code = max(code, done.returncode)
  sys.exit(code)
'''

FAKE_PYTHON = '''#!/bin/bash
# venv/bin/python stand-in: versions.sh gets the versions; memjax.train is preempted (42) on its first start.
if [ "$1" = "-" ]; then echo "MEMJAX_VERSIONS jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30 $HOSTNAME"; exit 0; fi
n=$(cat ../attempts 2>/dev/null || echo 0); echo $((n + 1)) > ../attempts
echo "train $* distributed=$MEMJAX_DISTRIBUTED commit=$MEMJAX_COMMIT attempt=$((n + 1))"
[ "$n" -gt 0 ]  || exit 42
'''

FINISHING_TRAIN = '''#!/bin/bash
# venv/bin/python stand-in: memjax.train finishes at once.
if [ "$1" = "-" ]; then echo "MEMJAX_VERSIONS jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30 $HOSTNAME"; exit 0; fi
echo "train $*"
'''

FAKE_UV = '''#!/bin/bash
# uv stand-in: records each install command (the worker's whole set-up), installs nothing.
echo "uv $*" >> "$HOME/installs"
'''


class FakeGcloud:
  """The stateful fake gcloud on PATH, a `hostname` that names the fake worker, and the image every
  new worker VM starts from (the fake venv python `train`, a fake uv)."""

  def __init__(self, tmp_path, monkeypatch, train=FAKE_PYTHON, workers=2, plans=(), fail=None, preempt_after=None,
               exists=True, name="it", zones=None):
    self.root, self.name = tmp_path / "cloud", name
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    self.root.mkdir()
    _executable(bin_dir / "gcloud", FAKE_GCLOUD.replace("PYTHON", sys.executable))
    _executable(bin_dir / "sudo", '#!/bin/bash\nexec "$@"\n')
    _executable(bin_dir / "hostname", '#!/bin/bash\necho "$HOSTNAME"\n')
    image = self.root / "image"
    (image / f"memjax-{name}" / "venv" / "bin").mkdir(parents=True)
    _executable(image / f"memjax-{name}" / "venv" / "bin" / "python", train.replace("PYTHON", sys.executable))
    (image / ".local" / "bin").mkdir(parents=True)
    _executable(image / ".local" / "bin" / "uv", FAKE_UV)
    self.save({"workers": workers, "plans": [list(p) for p in plans], "fail": dict(fail or {}),
               "preempt_after": preempt_after, "creates": 0, "qr": None, "zones": zones})
    if exists:  # an ACTIVE slice, made by a create that is not logged
      subprocess.run([str(bin_dir / "gcloud"), "compute", "tpus", "queued-resources", "create", name],
                     env=dict(os.environ, FAKE_TPU_ROOT=str(self.root)), check=True)
      state = self.state()
      state["creates"] = 0
      self.save(state)
      (self.root / "gcloud.log").unlink()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TPU_ROOT", str(self.root))

  def state(self) -> dict:
    return json.loads((self.root / "cloud.json").read_text())

  def save(self, state) -> None:
    (self.root / "cloud.json").write_text(json.dumps(state))

  def calls(self) -> list[str]:
    path = self.root / "gcloud.log"
    return path.read_text().splitlines() if path.exists() else []

  def home(self, worker: int, node: str | None = None) -> pathlib.Path:
    return self.root / (node or self.name) / f"w{worker}" / f"memjax-{self.name}"

  def close(self) -> None:
    """Kills every run still going on a fake worker (a failed test leaves none behind)."""
    for pid_file in self.root.glob("*/w*/memjax-*/train.pid"):
      try:
        os.killpg(os.getpgid(int(pid_file.read_text())), signal.SIGKILL)
      except (OSError, ValueError):
        pass


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch):
  """Makes the FakeGcloud (one per test), killing its workers' runs at the end."""
  made = []
  def make(**kwargs) -> FakeGcloud:
    made.append(FakeGcloud(tmp_path, monkeypatch, **kwargs))
    return made[-1]
  yield make
  for cloud in made:
    cloud.close()


class FastShell(Shell):
  """The real runner, with every wait cut to a few milliseconds (polls, back-offs, grace periods)."""

  def __init__(self):
    super().__init__(err=io.StringIO())
    self.slept = []

  def sleep(self, seconds):
    self.slept.append(seconds)
    time.sleep(0.01)

  @property
  def said(self) -> str:
    return self.err.getvalue()


def test_tpu_run_end_to_end_with_a_fake_gcloud(tmp_path, monkeypatch, fake_gcloud):
  """Real runner, real git archive and worker scripts on 2 fake workers: preempted (42), relaunched, done."""
  monkeypatch.chdir(ROOT)
  commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
  cloud = fake_gcloud(name=f"it-{os.getpid()}")
  s = tpu.Slice(cloud.name, "fake-zone", "v4-16")
  job = jobs.Job(("--config=configs/clm.py:paper", "--workdir=gs://b/run"), commit)
  try:
    assert tpu.run(s, job, Shell(), retries=1, poll_s=0.2) == 0
    tpu.logs(s, Shell(), out=str(tmp_path / "logs"))
  finally:
    subprocess.run(["rm", "-rf", s.staging])
  for i in range(2):
    home = cloud.home(i)
    assert (home / "code" / "COMMIT").read_text().strip() == commit
    assert (home / "code" / "memjax" / "train.py").exists()  # the archive of the commit, extracted
    assert (home / "attempts").read_text().strip() == "2" and (home / "exit_code").read_text().strip() == "0"
    log = (tmp_path / "logs" / f"{i}.log").read_text()
    assert f"train -m memjax.train --config=configs/clm.py:paper --workdir=gs://b/run distributed=1 commit={commit}" in log
    assert "attempt=1" in log and "exit 42" in log and "attempt=2" in log and "exit 0" in log
  calls = "\n".join(cloud.calls())
  assert calls.count("start.sh") == 2 and calls.count("queued-resources create") == 0


# --- issue 18: each defect, against the stateful fake gcloud (or the fake runner) -------------------

def launch(argv) -> tuple[int, FastShell]:
  """`python -m launch ARGV` for real (no dry run), through the real runner with short waits."""
  runner = FastShell()
  return cli.main(argv, runner=runner), runner


E2E = ["--name=it", "--zone=us-central2-b", "--accelerator=v4-16", "--skip_preflight"]


def train_args(workdir="gs://b/run"):
  return ["--", "--config=configs/clm.py:paper", f"--workdir={workdir}"]


@pytest.fixture
def in_repo(monkeypatch):
  """`git archive HEAD` needs the repository; staging folders are removed afterwards."""
  monkeypatch.chdir(ROOT)
  yield
  shutil.rmtree(jobs.staging_root(), ignore_errors=True)


def test_1_a_gs_workdir_installs_gcsfs_in_the_dry_runs(capsys):
  """Defect 1: every gs:// path needs gcsfs (the gcs extra): a default TPU or GKE run installs it."""
  assert '"./code[hf,gcs,tpu]"' in dry_run(CASES["tpu_run_v5e_spot"], capsys)
  assert '".[hf,gcs,tpu]"' in dry_run(CASES["xpk_run_v5e"], capsys)
  job = jobs.Job(("--config=c", "--workdir=/shared/x"), SHA)
  assert job.extras("hf", tpu=False) == "hf"  # no bucket, no gcsfs
  assert job.extras("", tpu=True, jax_version="0.9.0") == ""  # another jax: its own pin, not the extra's


def test_1_the_workers_run_the_install_with_gcs_and_tpu(fake_gcloud, in_repo):
  """The install command setup.sh runs on each worker (a stand-in uv records it), once per worker."""
  cloud = fake_gcloud(train=FINISHING_TRAIN)
  code, runner = launch(["tpu", "run", *E2E, *train_args()])
  assert code == 0, runner.said
  for i in range(2):
    assert (cloud.home(i).parent / "installs").read_text().splitlines() == [
        f"uv pip install --python venv/bin/python jax[tpu]=={jobs.JAX_VERSION} -f {tpu.LIBTPU_RELEASES} "
        "./code[hf,gcs,tpu]"]


def test_2_logs_out_copies_each_workers_log_with_scp(fake_gcloud, tmp_path):
  """Defect 2: gcloud's ssh --output-directory is broken; each worker's log comes back by scp."""
  cloud = fake_gcloud(workers=3)
  for i in range(3):
    cloud.home(i).mkdir(parents=True, exist_ok=True)
    (cloud.home(i) / "run.log").write_text(f"log of worker {i}\n")
  code, runner = launch(["tpu", "logs", "--name=it", "--zone=us-central2-b", f"--out={tmp_path}/logs"])
  assert code == 0, runner.said
  assert [(tmp_path / "logs" / f"{i}.log").read_text() for i in range(3)] == [f"log of worker {i}\n" for i in range(3)]
  assert sum("tpu-vm scp" in call and "--worker=" in call for call in cloud.calls()) == 3
  code, _ = launch(["tpu", "logs", "--name=it", "--zone=us-central2-b", "--worker=0,2", f"--out={tmp_path}/two"])
  assert code == 0 and sorted(os.listdir(tmp_path / "two")) == ["0.log", "2.log"]


def test_3_a_failing_queued_resource_is_recreated_a_bounded_number_of_times_with_its_reason(fake_gcloud, capsys):
  """Defect 3: FAILED forever -> at most --max-recreates re-creations, growing back-off, reason each time."""
  cloud = fake_gcloud(exists=False, plans=[["WAITING_FOR_RESOURCES", "FAILED:no v4 capacity in us-central2-b"]] * 30)
  code, runner = launch(["tpu", "create", *E2E, "--max-recreates=3", "--poll-seconds=10"])
  assert code == 2 and cloud.state()["creates"] == 4  # the create, then 3 re-creations
  assert runner.said.count("no v4 capacity in us-central2-b") == 3  # at each re-creation
  err = capsys.readouterr().err
  assert "no v4 capacity in us-central2-b" in err and "giving up" in err and "--max-recreates=3" in err
  backoffs = [seconds for seconds in runner.slept if seconds > 10]
  assert backoffs == [20, 40]  # 10 (the poll interval) before the first, then doubling
  assert sum("queued-resources delete" in call for call in cloud.calls()) == 3


class AlwaysFailing(FakeCloud):
  """A queued resource that FAILS after every create, with a reason; more than 20 creates (or 200
  describes) fails the test instead of hanging it."""

  def __init__(self):
    super().__init__(["FAILED"], runs=[])
    self.creates, self.slept = 0, []

  def run(self, command):
    text = " ".join(command.argv)
    if "queued-resources describe" in text:
      self.log.append(text)
      assert self.count("queued-resources describe") <= 200, "polled without end"
      reason = "\tThere is no more capacity in the zone us-central2-b" * ("failedData" in text)  # if asked for
      return Result(0, "FAILED" + reason)
    if "queued-resources create" in text:
      self.creates += 1
      assert self.creates <= 20, "re-created without limit"
    if "queued-resources" in text:
      self.log.append(text)
      return Result(0)
    return super().run(command)

  def sleep(self, seconds):
    self.slept.append(seconds)


def test_3_re_creation_is_bounded_backs_off_and_shows_the_reason():
  cloud = AlwaysFailing()
  with pytest.raises(RuntimeError, match="no more capacity in the zone us-central2-b.*giving up"):
    tpu.create(S, cloud, poll_s=1)
  assert cloud.creates == 1 + 5  # the create, then 5 re-creations (the default --max-recreates)
  assert sum("no more capacity" in message for message in cloud.said) == 5
  assert [seconds for seconds in cloud.slept if seconds > 1] == [2, 4, 8, 16]  # 1, 2, 4, ...: doubling


def test_4_a_dropped_scp_or_ssh_connection_is_retried_within_retries(fake_gcloud, in_repo):
  """Defect 4: scp exits 255 once (a spot VM preempted mid-copy): retried after a back-off, not fatal."""
  cloud = fake_gcloud(fail={"scp": 1}, train=FINISHING_TRAIN)
  code, runner = launch(["tpu", "run", *E2E, "--retries=2", *train_args()])
  assert code == 0, runner.said
  assert sum("tpu-vm scp" in call for call in cloud.calls()) == 2  # dropped, then shipped
  assert "connection to the workers was lost" in runner.said


class Dropping(FakeCloud):
  """The fake runner's cloud, where the first `drops` ssh commands running `script` exit 255."""

  def __init__(self, script, drops, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.script, self.drops = script, drops

  def run(self, command):
    if f"--command=bash memjax-memjax-1/{self.script}" in " ".join(command.argv) and self.drops:
      self.drops -= 1
      self.log.append(" ".join(command.argv))
      raise CommandError(command, 255)
    return super().run(command)


@pytest.mark.parametrize("script", ["setup.sh", "versions.sh", "start.sh"])
def test_4_ssh_lost_during_setup_version_check_or_start_is_retried(script):
  cloud = Dropping(script, 1, ["ACTIVE"], runs=[[("0", "0")]])
  assert tpu.run(S, JOB, cloud, retries=1, poll_s=1) == 0
  assert cloud.ran(script) == 2 and any("trying again" in message for message in cloud.said)
  cloud = Dropping(script, 1, ["ACTIVE"], runs=[[("0", "0")]])
  with pytest.raises(CommandError, match="exit code 255"):
    tpu.run(S, JOB, cloud, retries=0, poll_s=1)  # no retries left: the error, naming the command


def test_4_a_real_setup_error_is_not_retried():
  class Broken(FakeCloud):
    def run(self, command):
      if "--command=bash memjax-memjax-1/setup.sh" in " ".join(command.argv):
        raise CommandError(command, 1)  # pip could not install: retrying would fail the same way
      return super().run(command)
  cloud = Broken(["ACTIVE"], runs=[])
  with pytest.raises(CommandError, match="exit code 1"):
    tpu.run(S, JOB, cloud, retries=3, poll_s=1)
  assert cloud.ran("start.sh") == 0


def test_5_the_other_workers_finish_their_checkpoint_before_a_relaunch():
  """Defect 5: worker 0 exits 42 while worker 1 still checkpoints: no SIGKILL, wait, then relaunch."""
  cloud = FakeCloud(["ACTIVE"], runs=[[("running", "running"), ("42", "running"), ("42", "running"), ("42", "42")],
                                      [("0", "0")]])
  assert tpu.run(S, JOB, cloud, retries=1, poll_s=1, grace_s=10) == 0
  assert cloud.ran("stop.sh --force") == 0 and cloud.ran("start.sh") == 2
  assert any("finish their checkpoint" in message for message in cloud.said)
  # one that never finishes is stopped once the grace period is over
  cloud = FakeCloud(["ACTIVE"], runs=[[("42", "running")], [("0", "0")]])
  assert tpu.run(S, JOB, cloud, retries=1, poll_s=1, grace_s=3) == 0
  assert cloud.ran("stop.sh --force") == 1
  assert cloud.ran("status.sh") == 1 + 4 + 1 + 1  # attach check, 4 polls (3 s of grace), relaunch check, poll


GRACEFUL_TRAIN = """#!/bin/bash
if [ "$1" = "-" ]; then echo "MEMJAX_VERSIONS jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30 $HOSTNAME"; exit 0; fi
n=$(cat ../attempts 2>/dev/null || echo 0); echo $((n + 1)) > ../attempts
echo "train attempt $((n + 1)) on $HOSTNAME"
[ "$n" -gt 0 ] && exit 0
case "$HOSTNAME" in *w0) exit 42;; esac
sleep 1; echo saved > ../checkpoint_saved; exit 42
"""


def test_5_grace_with_real_workers(fake_gcloud, in_repo):
  """Worker 0 is preempted at once; worker 1 takes a second to save its checkpoint, then exits 42 too."""
  cloud = fake_gcloud(train=GRACEFUL_TRAIN)
  code, runner = launch(["tpu", "run", *E2E, "--retries=1", *train_args()])
  assert code == 0, runner.said
  assert (cloud.home(1) / "checkpoint_saved").exists()  # not killed mid-checkpoint
  assert not any("stop.sh --force" in call for call in cloud.calls())


def test_6_followed_logs_are_line_buffered(capsys):
  """Defect 6: `sed` without -u holds lines back in its buffer; with -u they arrive as written."""
  out = dry_run(["tpu", "logs", *SLICE, "--follow"], capsys)
  assert "tail -n 100 -F memjax-memjax-1/run.log | sed -u " in out
  assert "sed -u" in dry_run(["tpu", "logs", *SLICE, "--worker=1-3", "--follow"], capsys)


@pytest.mark.parametrize("code, requeued", [(42, True), (137, True), (143, True), (255, True), (1, False), (0, False)])
def test_7_sbatch_requeues_after_preemption_or_a_signal(tmp_path, code, requeued):
  """Defect 7: srun returns 128+signal for a task killed by a signal (preempted, OOM): requeued too."""
  exit_code, calls, _ = run_sbatch_script(tmp_path, code, restarts=0)
  assert exit_code == code
  assert calls[0].startswith("srun --kill-on-bad-exit=1 ")
  assert ("scontrol requeue 77" in calls) == requeued


class Refuse:
  """A runner that fails the test if anything runs, is written, or is waited for."""

  def run(self, command):
    raise AssertionError(f"ran {command}")

  def write(self, path, text):
    raise AssertionError(f"wrote {path}")

  def sleep(self, seconds):
    raise AssertionError("waited")

  def say(self, message):
    pass


@pytest.mark.parametrize("argv, message", [
    (["gpu", "slurm", "--run-dir=/r", f"--commit={SHA}", "--", "--config=c", "--workdir=rel/x"], "absolute path"),
    (["gpu", "slurm", "--run-dir=/r", "--mem=lots", f"--commit={SHA}", "--", "--config=c", "--workdir=/w"], "--mem"),
    (["tpu", "run", *SLICE, "--accelerator=v4-8", f"--commit={SHA}", "--", "--config=c", "--workdir=runs/x"],
     "gs:// workdir"),
    (["xpk", "run", "--cluster=c", "--workload=w", "--tpu=v4-8", f"--commit={SHA}", "--", "--config=c",
      "--workdir=runs/x"], "gs:// workdir"),
])
def test_8_bad_arguments_are_refused_before_anything_runs_or_is_written(argv, message, capsys):
  """Defect 8: `gpu slurm` ran mkdir, git archive and tar before it looked at the workdir."""
  assert cli.main(argv, runner=Refuse()) == 2
  assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, tool, hint", [
    (["tpu", "delete", *SLICE], "gcloud", "cloud.google.com/sdk"),
    (["xpk", "delete", "--cluster=c", "--workload=w"], "xpk", "pip install xpk"),
    (["tpu", "run", *SLICE, "--accelerator=v4-8", "--skip_preflight", *TRAIN], "git", "install git"),
])
def test_9_a_missing_tool_is_named_with_how_to_get_it(argv, tool, hint, tmp_path, monkeypatch, capsys):
  """Defect 9: gcloud / xpk / sbatch not on PATH: not "exit code 127", but what is missing and how to get it."""
  monkeypatch.setenv("PATH", str(tmp_path))
  assert cli.main(argv) == 127
  err = capsys.readouterr().err
  assert f"{tool} is not installed" in err and hint in err, err


def test_9_sbatch_missing(tmp_path, monkeypatch, capsys, in_repo):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for tool in ("git", "mkdir", "tar", "gzip"):
    (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
  monkeypatch.setenv("PATH", str(bin_dir))
  argv = ["gpu", "slurm", f"--run-dir={tmp_path}/run", "--", "--config=c", f"--workdir={tmp_path}/w"]
  assert cli.main(argv) == 127
  err = capsys.readouterr().err
  assert "sbatch is not installed" in err and "SLURM login node" in err, err


@pytest.mark.parametrize("argv, message", [
    (["tpu", "create", *SLICE, "--accelerator=v6e-3"], "'v6e-3' does not exist"),
    (["tpu", "create", *SLICE, "--accelerator=v5p-7"], "'v5p-7' does not exist"),
    (["tpu", "create", "--name=a", "--zone=uscentral2b", "--accelerator=v4-8"], "'uscentral2b' is not a zone"),
    (["tpu", "create", "--name=a", "--zone=us-central2", "--accelerator=v4-8"], "'us-central2' is not a zone"),
    (["xpk", "run", "--cluster=c", "--workload=Clm_1", "--tpu=v4-8", f"--commit={SHA}", *TRAIN], "--workload 'Clm_1'"),
    (["xpk", "run", "--cluster=c", "--workload=" + "a" * 41, "--tpu=v4-8", f"--commit={SHA}", *TRAIN], "at most 40"),
    (["xpk", "run", "--cluster=c", "--workload=clm-", "--tpu=v4-8", f"--commit={SHA}", *TRAIN], "--workload 'clm-'"),
    (["xpk", "run", "--cluster=c", "--workload=w", "--tpu=v6e-3", f"--commit={SHA}", *TRAIN], "does not exist"),
])
def test_10_accelerators_zones_and_workload_names_are_checked(argv, message, capsys):
  assert cli.main(with_dry_run(argv)) == 2
  assert message in capsys.readouterr().err


def test_10_a_zone_that_does_not_offer_the_type_is_refused_before_anything_is_requested(fake_gcloud):
  """Whether a zone exists and offers a type is gcloud's to say (a table here would go stale)."""
  cloud = fake_gcloud(exists=False, zones={"us-central2-b": ["v4-8", "v4-16"], "us-east5-b": ["v6e-8"]})
  for zone, accelerator in (("us-central9-z", "v4-8"), ("us-east5-b", "v4-8")):
    code, runner = launch(["tpu", "create", "--name=it", f"--zone={zone}", f"--accelerator={accelerator}",
                           "--skip_preflight"])
    assert code == 2 and cloud.state()["creates"] == 0
  code, runner = launch(["tpu", "create", "--name=it", "--zone=us-east5-b", "--accelerator=v6e-8", "--skip_preflight"])
  assert code == 0 and cloud.state()["creates"] == 1


def test_10_worker_lists_and_ranges_pass_through(capsys):
  assert "--worker=1,3 " in dry_run(["tpu", "logs", *SLICE, "--worker=1,3"], capsys)
  assert "--worker=0-2,5 " in dry_run(["tpu", "logs", *SLICE, "--worker=0-2,5"], capsys)
  assert tpu.worker_indices("0-2,5", 8) == [0, 1, 2, 5] and tpu.worker_indices("all", 2) == [0, 1]
  assert "xpk workload create" in dry_run(["xpk", "run", "--cluster=c", "--workload=" + "a" * 40, "--tpu=v4-8",
                                           f"--commit={SHA}", *TRAIN], capsys)


# --- issue 18: preflight, logs in the bucket, multislice, status, images, SLURM options ---------------

FAKE_AOT = """#!/bin/bash
# python3 stand-in for the preflight: records `-m memjax.aot ...`; like memjax.aot, its table goes to
# stdout and its verdict to stderr; it exits FAKE_AOT_EXIT.
echo "$*" >> "$(dirname "$0")/aot-calls"
if [ "${FAKE_AOT_EXIT:-0}" = 0 ]; then echo "per device: 9.1 GiB of 32 GiB HBM"; exit 0; fi
echo "per device: 41.3 GiB of 32 GiB HBM"
echo "memjax.aot: does not fit: needs 41.3 GiB of HBM per chip, v4 has 32 GiB; largest buffers: opt_state/mu 12 GiB" >&2
echo "knobs: --config.train.remat=block, --config.train.microbatches=4" >&2
exit 1
"""


@pytest.fixture
def fake_aot(tmp_path):
  folder = tmp_path / "aot"
  folder.mkdir()
  _executable(folder / "python3", FAKE_AOT)
  return folder


def test_preflight_refuses_a_run_that_does_not_fit_before_renting(fake_gcloud, fake_aot, in_repo, monkeypatch,
                                                                  capsys):
  cloud = fake_gcloud(exists=False)
  monkeypatch.setenv("FAKE_AOT_EXIT", "1")
  preflight = [f"--preflight-python={fake_aot}/python3"]
  overrides = ["--config.train.steps=10", "--config.model.d_model", "512"]
  code, runner = launch(["tpu", "run", "--name=it", "--zone=us-central2-b", "--accelerator=v4-16", *preflight,
                         *train_args(), *overrides])
  err = capsys.readouterr().err
  assert code == 2 and "41.3 GiB of 32 GiB HBM" in err and "needs 41.3 GiB of HBM per chip" in err, err
  assert "--config.train.remat=block" in err and "--skip_preflight" in err
  assert "nothing was rented" in err and cloud.calls() == []  # not even a describe
  assert (fake_aot / "aot-calls").read_text().splitlines() == [
      "-m memjax.aot --config=configs/clm.py:paper --config.train.steps=10 --config.model.d_model 512 "
      "--accelerator=v4-16"]
  code, _ = launch(["tpu", "create", "--name=it", "--zone=us-central2-b", "--accelerator=v4-16", *preflight,
                    "--", "--config=configs/clm.py:paper"])
  assert code == 2 and [call.split()[2:5] for call in cloud.calls()] == [["tpu-vm", "accelerator-types", "describe"]]
  # --skip_preflight: no compile, the slice is created
  code, runner = launch(["tpu", "create", "--name=it", "--zone=us-central2-b", "--accelerator=v4-16", *preflight,
                         "--skip_preflight", "--", "--config=configs/clm.py:paper"])
  assert code == 0 and cloud.state()["creates"] == 1
  assert len((fake_aot / "aot-calls").read_text().splitlines()) == 2
  # a run that fits goes on, its table shown
  monkeypatch.setenv("FAKE_AOT_EXIT", "0")
  cloud.save(cloud.state() | {"qr": None})
  code, runner = launch(["tpu", "create", "--name=it", "--zone=us-central2-b", "--accelerator=v4-16", *preflight,
                         "--", "--config=configs/clm.py:paper"])
  assert code == 0 and cloud.state()["creates"] == 2
  assert "preflight passed" in runner.said and "9.1 GiB of 32 GiB" in runner.said


def test_preflight_before_xpk_and_in_the_dry_run(tmp_path, fake_aot, monkeypatch, capsys):
  monkeypatch.setenv("PATH", f"{tmp_path}/bin:{os.environ['PATH']}")
  (tmp_path / "bin").mkdir()
  _executable(tmp_path / "bin" / "xpk", f'#!/bin/bash\necho "xpk $*" >> {tmp_path}/xpk-calls\n')
  monkeypatch.setenv("FAKE_AOT_EXIT", "1")
  argv = ["xpk", "run", "--cluster=c", "--workload=clm", "--tpu=v5e-16", "--num-slices=2",
          f"--preflight-python={fake_aot}/python3", f"--commit={SHA}", *TRAIN]
  assert cli.main(argv, runner=FastShell()) == 2
  assert not (tmp_path / "xpk-calls").exists()
  assert "--accelerator=v5litepod-16 --num_slices=2" in (fake_aot / "aot-calls").read_text()
  out = dry_run(CASES["tpu_run_v5e_2slices"], capsys)
  assert out.index("python3 -m memjax.aot --config=configs/clm.py:paper --config.train.steps=1000 "
                   "--accelerator=v5litepod-16 --num_slices=2") < out.index("queued-resources")


def test_logs_reach_the_bucket_worker_0_is_shown_live_and_status_reports(fake_gcloud, in_repo, capfd):
  cloud = fake_gcloud()
  for step in ("100", "250", "50"):
    (cloud.root / "gcs" / "b" / "run" / "checkpoints" / step).mkdir(parents=True)
  code, runner = launch(["tpu", "run", *E2E, "--retries=1", *train_args()])
  assert code == 0, runner.said
  for i in range(2):
    log = (cloud.root / "gcs" / "b" / "run" / "logs" / f"it-w{i}.log").read_text()
    assert "attempt=1" in log and "exit 42" in log and "attempt=2" in log and "exit 0" in log
  shown = capfd.readouterr().out  # news.sh's output, straight from worker 0
  assert "attempt=1" in shown and "it-w0 exit 42" in shown and "it-w0 exit 0" in shown and "it-w1 exit" not in shown
  code, runner = launch(["tpu", "status", "--name=it", "--zone=us-central2-b", "--workdir=gs://b/run"])
  assert code == 0
  for text in ("queued resource it: ACTIVE", "node it: READY HEALTHY", "job: ended with exit code 0; workers: 0 0",
               "last checkpoint in gs://b/run: step 250"):
    assert text in runner.said, runner.said
  assert tpu.last_step("gs://b/r/checkpoints/\ngs://b/r/checkpoints/7/\n") == 7 and tpu.last_step("") is None


def test_a_spot_node_deleted_mid_run_is_recreated_and_the_run_resumes(fake_gcloud, in_repo):
  """Preempted: the nodes vanish (ssh 255), the queued resource is SUSPENDED; the log survives in the bucket."""
  train = """#!/bin/bash
if [ "$1" = "-" ]; then echo "MEMJAX_VERSIONS jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30 $HOSTNAME"; exit 0; fi
n=$(cat "$FAKE_TPU_ROOT/attempts-$HOSTNAME" 2>/dev/null || echo 0); echo $((n + 1)) > "$FAKE_TPU_ROOT/attempts-$HOSTNAME"
echo "train attempt $((n + 1))"
[ "$n" -gt 0 ] || sleep 30
"""
  cloud = fake_gcloud(train=train, preempt_after=3)  # the attach check, two polls, then preempted
  code, runner = launch(["tpu", "run", *E2E, "--spot", "--retries=2", "--log-upload-seconds=1", *train_args()])
  assert code == 0, runner.said
  assert cloud.state()["creates"] == 1 and "SUSPENDED" in runner.said and "preempted" in runner.said, runner.said
  assert (cloud.root / "attempts-it-w0").read_text().strip() == "2"
  log = (cloud.root / "gcs" / "b" / "run" / "logs" / "it-w0.log").read_text()
  assert "train attempt 2" in log and "exit 0" in log


MULTISLICE_TRAIN = """#!/bin/bash
if [ "$1" = "-" ]; then echo "MEMJAX_VERSIONS jax=0.10.2 jaxlib=0.10.2 libtpu=0.0.30 $HOSTNAME"; exit 0; fi
echo "slice=$MEGASCALE_SLICE_ID of $MEGASCALE_NUM_SLICES coordinator=$MEGASCALE_COORDINATOR_ADDRESS"
"""


def test_multislice_runs_on_every_worker_of_every_node(fake_gcloud, in_repo, tmp_path):
  cloud = fake_gcloud(train=MULTISLICE_TRAIN, exists=False)
  code, runner = launch(["tpu", "run", *E2E, "--num_slices=2", *train_args()])
  assert code == 0, runner.said
  assert any("--node-count=2 --node-prefix=it" in call for call in cloud.calls())
  for node in range(2):
    for worker in range(2):
      log = (cloud.home(worker, f"it-{node}") / "run.log").read_text()
      assert f"slice={node} of 2 coordinator=10.0.0.0:8080" in log
  code, _ = launch(["tpu", "logs", "--name=it", "--zone=us-central2-b", "--num_slices=2", f"--out={tmp_path}/l"])
  assert code == 0 and sorted(os.listdir(tmp_path / "l")) == ["it-0-0.log", "it-0-1.log", "it-1-0.log", "it-1-1.log"]
  assert tpu.megascale_env(tpu.Slice("x", "z", "v4-8"), [["10.0.0.2"]], 0) == ""  # one slice: nothing to join


def test_gcloud_options_and_multislice_in_the_dry_runs(capsys):
  create = dry_run(CASES["tpu_create_options"], capsys)
  for flag in ("--internal-ips", "--service-account=trainer@", "--scopes=https://", "--network=tpu-net",
               "--subnetwork=tpu-subnet", "--valid-until-duration=6h"):
    assert flag in create
  s = tpu.Slice("a", "z", "v4-8", internal_ip=True)
  assert "--internal-ip" in tpu.ssh_command(s, "a", "true").argv and "--internal-ip" in tpu.scp_command(s, "a").argv
  assert "--node-count=2 --node-prefix=memjax-1" in dry_run(CASES["tpu_create_v5e_2slices"], capsys)
  run = dry_run(CASES["tpu_run_v5e_2slices"], capsys)
  assert ("'--command=MEGASCALE_COORDINATOR_ADDRESS=10.0.0.2:8080 MEGASCALE_NUM_SLICES=2 MEGASCALE_SLICE_ID=1 "
          "MEGASCALE_PORT=8080 bash memjax-memjax-1/start.sh'") in run
  with pytest.raises(ValueError, match="--valid-until-duration 'soon'"):
    tpu.Slice("a", "z", "v4-8", valid_until="soon")


def test_xpk_with_a_prepared_image_installs_nothing(capsys):
  out = dry_run(CASES["xpk_run_docker"], capsys)
  assert "--docker-image=us-docker.pkg.dev/my-project/memjax/memjax:0123456" in out
  assert "pip install" not in out and "--script-dir" not in out and "git archive" not in out
  assert "'--command=cd /memjax && python3 -m memjax.train" in out
  dockerfile = (ROOT / "launch" / "Dockerfile").read_text()
  assert f"ARG JAX_VERSION={jobs.JAX_VERSION}" in dockerfile and "ARG EXTRAS=hf,gcs,tpu" in dockerfile
  assert f"WORKDIR {xpk.IMAGE_HOME}" in dockerfile and "jax[tpu]==${JAX_VERSION}" in dockerfile
  with pytest.raises(SystemExit):
    cli.main(["xpk", "run", "--cluster=c", "--workload=w", "--tpu=v4-8", "--docker-image=i",
              "--base-docker-image=python:3.12", *TRAIN])


def test_slurm_options_pass_through_and_a_task_gets_several_cores(capsys):
  out = dry_run(CASES["gpu_slurm_options"], capsys)
  for line in ("#SBATCH --cpus-per-task=16", "#SBATCH --mem=0", "#SBATCH --exclusive", "#SBATCH --qos=high",
               "#SBATCH --constraint=a100"):
    assert line in out
  assert "#SBATCH --cpus-per-task=8" in dry_run(CASES["gpu_slurm"], capsys)  # the default: not one core


def test_the_readme_shows_what_a_dry_run_prints(capsys):
  """README.md's "Run on Cloud TPU" quotes a dry run of `tpu create`: it stays what the launcher prints."""
  readme = (ROOT / "README.md").read_text()
  quoted = readme.split("for `create` it prints\n\n```\n", 1)[1].split("```", 1)[0]
  argv = ["tpu", "create", "--name=clm-v6e", "--zone=us-east5-b", "--accelerator=v6e-8", "--spot", "--dry-run", "--",
          "--config=configs/clm.py:paper"]
  assert cli.main(argv) == 0
  assert capsys.readouterr().out == quoted


FAKE_SBATCH = """#!/bin/bash
# sbatch stand-in for one job (id 77): runs the script at once, and again after each `scontrol requeue`
# (SLURM_RESTART_COUNT counting), as SLURM does with a requeued job.
echo "sbatch $*" >> "$FAKE_SLURM/calls"
echo "Submitted batch job 77"
restarts=0
while true; do
  rm -f "$FAKE_SLURM/requeued"
  SLURM_JOB_ID=77 SLURM_RESTART_COUNT=$restarts bash "$1"
  [ -f "$FAKE_SLURM/requeued" ] || break
  restarts=$((restarts + 1))
done
"""
FAKE_SRUN = """#!/bin/bash
# srun stand-in: exits with the next code of $FAKE_SLURM/codes (137: a task killed by SIGKILL).
echo "srun $*" >> "$FAKE_SLURM/calls"
code=$(head -n 1 "$FAKE_SLURM/codes"); sed -i 1d "$FAKE_SLURM/codes"
exit "$code"
"""
FAKE_SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$FAKE_SLURM/calls"
touch "$FAKE_SLURM/requeued"
"""


def test_7_a_slurm_job_killed_by_a_signal_is_requeued_until_it_finishes(tmp_path, monkeypatch, in_repo):
  """`gpu slurm` for real against fake sbatch/srun/scontrol: OOM-killed (137), preempted (42), then done."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
    _executable(bin_dir / name, text)
  (tmp_path / "codes").write_text("137\n42\n0\n")
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  monkeypatch.setenv("FAKE_SLURM", str(tmp_path))
  argv = ["gpu", "slurm", "--nodes=2", "--gpus-per-node=4", "--retries=3", f"--run-dir={tmp_path}/run", "--",
          "--config=configs/clm.py:small", f"--workdir={tmp_path}/work"]
  assert cli.main(argv, runner=FastShell()) == 0
  calls = (tmp_path / "calls").read_text().splitlines()
  assert [call.split()[0] for call in calls] == ["sbatch", "srun", "scontrol", "srun", "scontrol", "srun"]
  assert all(call.startswith("srun --kill-on-bad-exit=1 ") for call in calls if call.startswith("srun"))
  assert (tmp_path / "run" / "memjax.sbatch").exists() and list((tmp_path / "run").glob("code-*/memjax/train.py"))
