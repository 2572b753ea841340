"""The job every target runs: `python -m memjax.train ARGS` at one recorded commit, and when to rerun it.

memjax.train exits with PREEMPTED (42) after it saved a checkpoint on SIGTERM (spot/preemptible TPU
VMs and SLURM `--signal=TERM@120` send one); running the same command again resumes from that
checkpoint. xpk restarts on 42 and on 128-255 by default; the launchers here follow the same rule.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import tempfile

from launch.runner import Cmd, MissingTool, Runner, cmd

PREEMPTED = 42
JAX_VERSION = "0.10.2"  # the jax memjax's tests ran with; pinned on every worker (--jax-version)
EXTRAS = "hf"  # memjax extras installed with it: the paper presets read hf:fineweb-edu (--extras)
SSH_LOST = 255  # what ssh and scp exit with when the connection drops (a spot VM preempted mid-command)


def staging_root() -> str:
  """This process's folder for what it ships: two launches of one name on one machine (two users, two test
  runs) must not write into, or delete, each other's staging folder."""
  return os.path.join(tempfile.gettempdir(), f"memjax-launch-{os.getpid()}")


def retryable(code: int) -> bool:
  """Preempted after a checkpoint (42), killed by a signal (128+), or the ssh link lost (255)."""
  return code == PREEMPTED or code >= 128


def backoff(attempt: int, base_s: float, cap_s: float = 600) -> float:
  """Seconds to wait before try `attempt` (1, 2, ...): base, 2 base, 4 base, ..., at most `cap_s`."""
  return min(base_s * 2 ** (attempt - 1), cap_s)


@dataclasses.dataclass(frozen=True)
class Job:
  """`train_args` go to memjax.train unchanged; `env` is exported on every process."""
  train_args: tuple[str, ...]
  commit: str
  env: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    flags = flag_values(self.train_args)
    for name in ("config", "workdir"):
      if name not in flags:
        raise ValueError(f"memjax.train needs --{name}=...; pass it after `--`, e.g. "
                         "-- --config=configs/clm.py:paper --workdir=gs://BUCKET/run")
    for key, _ in self.env:
      if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(f"--env: {key!r} is not a variable name (use --env NAME=VALUE)")

  @property
  def workdir(self) -> str:
    return flag_values(self.train_args)["workdir"]

  def exports(self, distributed: bool) -> list[tuple[str, str]]:
    """MEMJAX_DISTRIBUTED says which it is (memjax.train would otherwise guess from the environment)."""
    return [("MEMJAX_DISTRIBUTED", "1" if distributed else "0"), ("MEMJAX_COMMIT", self.commit), *self.env]

  def command(self, python: str) -> list[str]:
    return [python, "-m", "memjax.train", *self.train_args]

  def extras(self, extras: str, tpu: bool, jax_version: str = JAX_VERSION) -> str:
    """`extras` plus what the run itself needs: `gcs` (gcsfs) for a gs:// workdir, `tpu` on TPU
    workers. The `tpu` extra pins jax[tpu] at memjax's version; another --jax-version is installed
    by its own pin instead, so the two do not conflict."""
    names = [name for name in extras.split(",") if name]
    names += ["gcs"] * self.workdir.startswith("gs://") + ["tpu"] * (tpu and jax_version == JAX_VERSION)
    return ",".join(dict.fromkeys(names))


def flag_values(args) -> dict[str, str]:
  """--name=value and --name value pairs of an absl command line."""
  values, args = {}, list(args)
  for i, arg in enumerate(args):
    if arg.startswith("--") and "=" in arg:
      name, value = arg[2:].split("=", 1)
      values[name] = value
    elif arg.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
      values[arg[2:]] = args[i + 1]
  return values


def config_args(train_args) -> list[str]:
  """The `--config=SPEC` and `--config.KEY=VALUE` arguments of a memjax.train command line (both
  absl forms, `--flag=value` and `--flag value`): what decides the compiled train step."""
  out, args = [], list(train_args)
  for i, arg in enumerate(args):
    name = arg.split("=", 1)[0]
    if name == "--config" or name.startswith("--config."):
      out.append(arg)
      if "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--"):
        out.append(args[i + 1])
  return out


def preflight_command(train_args, accelerator: str, num_slices: int = 1, python: str = "python3") -> Cmd | None:
  """`python -m memjax.aot`: compiles the run's train step for the slice on this machine; it exits
  non-zero, saying what does not fit, when the run would not fit in HBM. None without --config."""
  config = config_args(train_args)
  if not any(arg.split("=", 1)[0] == "--config" for arg in config):
    return None
  slices = [f"--num_slices={num_slices}"] * (num_slices > 1)
  return cmd(python, "-m", "memjax.aot", *config, f"--accelerator={accelerator}", *slices, capture=True, check=False,
             with_stderr=True)


def preflight(command: Cmd | None, runner: Runner) -> None:
  """Runs the preflight compile; refuses the run, with the compile's message, when it does not fit."""
  if command is None:
    runner.say("no --config after `--`: nothing to compile, no preflight")
    return
  result = runner.run(command)
  report = result.stdout.rstrip()
  if result.returncode:
    raise RuntimeError(f"preflight: the run does not fit or does not compile (`{command}` exited "
                       f"{result.returncode}); nothing was rented. Its report:\n"
                       f"{report or '(no output)'}\n"
                       "Fix the config, pick a larger --accelerator, or skip this check with --skip_preflight")
  runner.say(f"preflight passed: the train step compiles and fits\n{report}" if report else
             "preflight passed: the train step compiles and fits")


def parse_env(pairs) -> tuple[tuple[str, str], ...]:
  out = []
  for pair in pairs or ():
    if "=" not in pair:
      raise ValueError(f"--env {pair!r}: expected NAME=VALUE")
    out.append(tuple(pair.split("=", 1)))
  return tuple(out)


def export_lines(exports) -> str:
  return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in exports)


def resolve_commit(commit: str, say=print, shipped: bool = True) -> str:
  """A full sha is taken as given; anything else (default HEAD) is resolved in this checkout.
  `shipped`: the job runs `git archive` of it; otherwise it runs this checkout as it is."""
  if re.fullmatch(r"[0-9a-f]{40}", commit):
    return commit
  rev_parse = cmd("git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
  try:
    done = subprocess.run(rev_parse.argv, capture_output=True, text=True)
  except FileNotFoundError as error:
    raise MissingTool(rev_parse) from error
  if done.returncode:
    raise ValueError(f"--commit {commit!r} is not a commit of this repository (git rev-parse failed)")
  status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
  if status.stdout.strip():
    say(f"uncommitted changes are not shipped: the job runs commit {done.stdout.strip()[:12]}" if shipped else
        f"this checkout has uncommitted changes: MEMJAX_COMMIT={done.stdout.strip()[:12]} names its last commit")
  return done.stdout.strip()


def jax_tpu(version: str) -> str:
  """The pinned requirement every TPU worker installs."""
  if not re.fullmatch(r"[0-9]+(\.[0-9]+)*([a-z0-9.]*)", version):
    raise ValueError(f"--jax-version {version!r}: a version such as {JAX_VERSION}")
  return f"jax[tpu]=={version}"


def package(path: str, extras: str) -> str:
  """pip's spec for memjax at `path` with `extras` (comma-separated; empty for none)."""
  if not re.fullmatch(r"[a-z0-9_-]*(,[a-z0-9_-]+)*", extras):
    raise ValueError(f"--extras {extras!r}: comma-separated extra names such as hf,tfds")
  return f"{path}[{extras}]" if extras else path


def archive(commit: str, path: str) -> Cmd:
  """The code that runs: `git archive` of the recorded commit (never the working tree)."""
  return cmd("git", "archive", "--format=tar.gz", "-o", path, commit)
