"""GKE: the same job as a JobSet through xpk, which restarts it on exit 42 (and 128-255).

Two ways to get the code into the container. Default: xpk builds an image from
`--base-docker-image` plus a script folder, here the `git archive` of the recorded commit, and the
container installs pinned jax[tpu] and memjax before training (again at each restart: about a
minute). With `--docker-image` (built from launch/Dockerfile, memjax and jax[tpu] installed), the
container only trains, so a restart starts at once.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from launch import job as jobs
from launch.runner import Cmd, Runner, cmd
from launch.tpu import LIBTPU_RELEASES, accelerator_type

IMAGE_HOME = "/memjax"  # where launch/Dockerfile puts the code (configs/ are read relative to it)
NAME = r"[a-z]([-a-z0-9]*[a-z0-9])?"  # xpk's workload name pattern, at most MAX_NAME characters
MAX_NAME = 40


@dataclasses.dataclass(frozen=True)
class Workload:
  cluster: str
  name: str
  tpu: str
  num_slices: int = 1
  max_restarts: int = 0
  project: str | None = None
  zone: str | None = None
  base_image: str = "python:3.12"
  docker_image: str | None = None
  grace_s: int = 120  # SIGTERM to SIGKILL: time for memjax's preemption checkpoint

  def __post_init__(self):
    if not re.fullmatch(NAME, self.name) or len(self.name) > MAX_NAME:
      raise ValueError(f"--workload {self.name!r}: xpk takes lowercase letters, digits and hyphens, starting with "
                       f"a letter and not ending with a hyphen, at most {MAX_NAME} characters")
    object.__setattr__(self, "tpu", accelerator_type(self.tpu))
    if self.num_slices < 1 or self.max_restarts < 0:
      raise ValueError("--num-slices must be >= 1 and --max-restarts >= 0")

  @property
  def staging(self) -> str:
    return f"{jobs.staging_root()}/xpk-{self.name}"


def _where(w: Workload) -> list[str]:
  return [f"--project={w.project}"] * bool(w.project) + [f"--zone={w.zone}"] * bool(w.zone)


def container_command(w: Workload, job: jobs.Job, jax_version: str, extras: str = jobs.EXTRAS) -> str:
  """What the container runs: the install (none in a prepared --docker-image), then training."""
  train = shlex.join(job.command("python3"))
  if w.docker_image:
    return f"cd {IMAGE_HOME} && {train}"
  package = jobs.package(".", job.extras(extras, tpu=True, jax_version=jax_version))
  install = f'python3 -m pip install "{jobs.jax_tpu(jax_version)}" -f {LIBTPU_RELEASES} "{package}"'
  return f"{install} && {train}"


def create_commands(w: Workload, job: jobs.Job, jax_version: str = jobs.JAX_VERSION,
                    extras: str = jobs.EXTRAS) -> list[Cmd]:
  if not job.workdir.startswith("gs://"):
    raise ValueError(f"--workdir={job.workdir}: a GKE run needs a gs:// workdir that outlives its pods")
  env = [f"--env={key}={value}" for key, value in job.exports(distributed=True)]
  image = ([f"--docker-image={w.docker_image}"] if w.docker_image else
           [f"--base-docker-image={w.base_image}", f"--script-dir={w.staging}"])
  create = cmd("xpk", "workload", "create", f"--cluster={w.cluster}", f"--workload={w.name}",
               f"--tpu-type={w.tpu}", f"--num-slices={w.num_slices}", f"--max-restarts={w.max_restarts}",
               f"--termination-grace-period-seconds={w.grace_s}", *image, *env,
               f"--command={container_command(w, job, jax_version, extras)}", *_where(w))
  if w.docker_image:
    return [create]
  return [cmd("rm", "-rf", w.staging), cmd("mkdir", "-p", w.staging),
          jobs.archive(job.commit, f"{w.staging}.tar.gz"), cmd("tar", "-xzf", f"{w.staging}.tar.gz", "-C", w.staging),
          create]


def delete_command(w: Workload) -> Cmd:
  return cmd("xpk", "workload", "delete", f"--cluster={w.cluster}", f"--workload={w.name}", *_where(w))


def run(w: Workload, job: jobs.Job, runner: Runner, jax_version: str = jobs.JAX_VERSION,
        extras: str = jobs.EXTRAS, preflight: Cmd | None = None, skip_preflight: bool = False) -> None:
  commands = create_commands(w, job, jax_version, extras)  # refuses bad input before anything runs
  if not skip_preflight:
    jobs.preflight(preflight, runner)
  runner.say(f"commit {job.commit}" + (f" (recorded; the code is {w.docker_image}'s)" if w.docker_image else ""))
  for command in commands:
    runner.run(command)


def delete(w: Workload, runner: Runner) -> None:
  runner.run(delete_command(w))
