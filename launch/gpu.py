"""GPU: one node with all its GPUs in one process, or a SLURM job with one process per GPU.

One node: a single process sees every local GPU (no coordinator, no ports; the mesh spans all of
them), the same command memjax runs anywhere; `--retries` reruns it after a preemption exit (42).
SLURM: `srun` starts one task per GPU; with MEMJAX_DISTRIBUTED=1, `jax.distributed.initialize()`
reads SLURM's variables (coordinator on the first node, process id SLURM_PROCID, local GPU
SLURM_LOCALID), so every GPU stays visible to every task. `--signal=TERM@120` gives memjax two
minutes to checkpoint before the time limit; the script then requeues itself (same job id, same
workdir: it resumes), at most `retries` times, when srun ends with 42 or 128 and above (srun's code
for a task killed by a signal: preempted, OOM-killed). `srun --kill-on-bad-exit=1` ends every task
as soon as one fails, instead of leaving the others waiting on it in a collective.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex

from launch import job as jobs
from launch.runner import Cmd, Runner, cmd


def node_command(job: jobs.Job, python: str = "python3", gpus: str | None = None) -> Cmd:
  if gpus is not None and not re.fullmatch(r"\d+(,\d+)*", gpus):
    raise ValueError(f"--gpus {gpus!r}: expected a list of GPU indices such as 0,1,2,3")
  env = [f"CUDA_VISIBLE_DEVICES={gpus}"] * (gpus is not None)
  env += [f"{key}={value}" for key, value in job.exports(distributed=False)]
  return cmd("env", *env, *job.command(python), check=False)


def run_node(job: jobs.Job, runner: Runner, python: str = "python3", gpus: str | None = None,
             retries: int = 0) -> int:
  runner.say(f"commit {job.commit} (this checkout runs as it is, in place)")
  command = node_command(job, python, gpus)
  for attempt in range(retries + 1):
    code = runner.run(command).returncode
    if code == 0 or not jobs.retryable(code):
      break
    if attempt < retries:
      runner.say(f"exit code {code}: relaunching ({attempt + 1}/{retries}) on the same workdir {job.workdir}")
  if code:
    runner.say(f"run failed with exit code {code}")
  return code


@dataclasses.dataclass(frozen=True)
class Slurm:
  run_dir: str
  nodes: int = 1
  gpus_per_node: int = 8
  job_name: str = "memjax"
  partition: str | None = None
  account: str | None = None
  time: str | None = None
  python: str = "python3"
  retries: int = 0
  signal_s: int = 120
  cpus_per_task: int = 8  # SLURM's default is one core per task: the input pipeline would crawl
  mem: str | None = None
  exclusive: bool = False
  qos: str | None = None
  constraint: str | None = None

  def __post_init__(self):
    if self.nodes < 1 or self.gpus_per_node < 1:
      raise ValueError("--nodes and --gpus-per-node must be >= 1")
    if not os.path.isabs(self.run_dir):
      raise ValueError(f"--run-dir {self.run_dir!r} must be absolute (the job reads it from every node)")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", self.job_name):
      raise ValueError(f"--job-name {self.job_name!r}: letters, digits, '.', '_' and '-' only")
    if self.cpus_per_task < 1:
      raise ValueError("--cpus-per-task must be >= 1")
    if self.mem is not None and not re.fullmatch(r"[0-9]+[KMGT]?", self.mem):
      raise ValueError(f"--mem {self.mem!r}: a size such as 200G, or 0 for all of the node's memory")
    for flag, value in (("qos", self.qos), ("constraint", self.constraint)):
      if value is not None and not re.fullmatch(r"[A-Za-z0-9._,&|:\[\]*()-]+", value):
        raise ValueError(f"--{flag} {value!r}: not a SLURM {flag}")


def code_dir(cfg: Slurm, commit: str) -> str:
  return f"{cfg.run_dir}/code-{commit[:12]}"


def sbatch_script(cfg: Slurm, job: jobs.Job) -> str:
  if not (job.workdir.startswith("gs://") or os.path.isabs(job.workdir)):
    raise ValueError(f"--workdir={job.workdir}: give an absolute path on the shared filesystem (or gs://); "
                     "the job runs from its code snapshot, not from here")
  logs = f"{cfg.run_dir}/logs"
  options = [f"--job-name={cfg.job_name}", f"--nodes={cfg.nodes}", f"--ntasks-per-node={cfg.gpus_per_node}",
             f"--gpus-per-node={cfg.gpus_per_node}", f"--cpus-per-task={cfg.cpus_per_task}"]
  options += [f"--{key}={value}" for key, value in
              (("partition", cfg.partition), ("account", cfg.account), ("time", cfg.time), ("mem", cfg.mem),
               ("qos", cfg.qos), ("constraint", cfg.constraint)) if value]
  options += ["--exclusive"] * cfg.exclusive
  options += [f"--signal=TERM@{cfg.signal_s}", "--requeue", "--open-mode=append", f"--output={logs}/%x-%j.out"]
  srun = ["srun", "--kill-on-bad-exit=1", "--open-mode=append", f"--output={logs}/%j-%t.out", *job.command(cfg.python)]
  return (
      "#!/bin/bash\n" + "".join(f"#SBATCH {option}\n" for option in options) +
      f"# memjax on SLURM (python -m launch gpu slurm): one process per GPU, logs {logs}/JOBID-TASK.out.\n"
      "set -uo pipefail\n"
      f"cd {shlex.quote(code_dir(cfg, job.commit))}\n"
      f"{jobs.export_lines(job.exports(distributed=True))}"
      f"{shlex.join(srun)}\n"
      "code=$?\n"
      'echo "memjax: srun exited $code (restart ${SLURM_RESTART_COUNT:-0})"\n'
      f'if {{ [ "$code" -eq {jobs.PREEMPTED} ] || [ "$code" -ge 128 ]; }} && '
      f'[ "${{SLURM_RESTART_COUNT:-0}}" -lt {cfg.retries} ]; then\n'
      '  scontrol requeue "$SLURM_JOB_ID"\n'
      "fi\n"
      'exit "$code"\n')


def submit(cfg: Slurm, job: jobs.Job, runner: Runner) -> None:
  """Snapshot the commit into the run folder (a requeued job runs the same code), write and submit."""
  script_text = sbatch_script(cfg, job)  # refuses bad input before anything runs or is written
  code = code_dir(cfg, job.commit)
  runner.say(f"commit {job.commit}")
  runner.run(cmd("mkdir", "-p", f"{cfg.run_dir}/logs", code))
  runner.run(jobs.archive(job.commit, f"{code}.tar.gz"))
  runner.run(cmd("tar", "-xzf", f"{code}.tar.gz", "-C", code))
  script = f"{cfg.run_dir}/{cfg.job_name}.sbatch"
  runner.write(script, script_text)
  runner.run(cmd("sbatch", script))
