"""Cloud TPU: a queued-resource slice, the code on every worker, the same command on all of them.

Pure builders return commands (`Cmd`) and worker scripts (text); the steps below run them through
a runner. On every worker, `~/memjax-NAME/` holds the shipped `git archive` (code.tar.gz, extracted
to code/), a venv with pinned jax[tpu], the scripts, `run.log`, `train.pid` and `exit_code`.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from launch import job as jobs
from launch.runner import Cmd, Runner, cmd

# Runtime (VM image) per generation, from the Cloud TPU docs; v5e slices are named v5litepod-N.
RUNTIME = {"v4": "tpu-ubuntu2204-base", "v5litepod": "v2-alpha-tpuv5-lite", "v5p": "v2-alpha-tpuv5",
           "v6e": "v2-alpha-tpuv6e"}
# What a process holding the TPU has open: /dev/accel* on v4, VFIO devices from v5 on.
DEVICES = {"v4": "/dev/accel*", "v5litepod": "/dev/vfio/*", "v5p": "/dev/vfio/*", "v6e": "/dev/vfio/*"}
LIBTPU_RELEASES = "https://storage.googleapis.com/jax-releases/libtpu_releases.html"
CAPACITY = ("on-demand", "spot", "reserved")
RECREATE = ("FAILED", "SUSPENDED")


def accelerator_type(name: str) -> str:
  """The gcloud accelerator type: v4-N, v5litepod-N (v5e-N accepted), v5p-N or v6e-N."""
  match = re.fullmatch(r"(v4|v5e|v5litepod|v5p|v6e)-([1-9][0-9]*)", name)
  if not match:
    raise ValueError(f"accelerator {name!r}: expected v4-N, v5litepod-N (or v5e-N), v5p-N or v6e-N")
  return f"v5litepod-{match[2]}" if match[1] == "v5e" else name


@dataclasses.dataclass(frozen=True)
class Slice:
  """One TPU slice: a queued resource and its node, both called `name`."""
  name: str
  zone: str
  accelerator: str = "v4-8"
  project: str | None = None
  capacity: str = "on-demand"
  runtime_version: str | None = None

  def __post_init__(self):
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", self.name):
      raise ValueError(f"--name {self.name!r}: lowercase letters, digits and hyphens, starting with a letter")
    object.__setattr__(self, "accelerator", accelerator_type(self.accelerator))
    if self.capacity not in CAPACITY:
      raise ValueError(f"capacity {self.capacity!r}: one of {CAPACITY}")

  @property
  def generation(self) -> str:
    return self.accelerator.split("-")[0]

  @property
  def runtime(self) -> str:
    return self.runtime_version or RUNTIME[self.generation]

  @property
  def expected_workers(self) -> int:
    """VMs in the slice (what a dry run assumes; a real run asks gcloud): v4/v5p-N count TensorCores,
    4 chips (8 cores) per VM; v5e/v6e-N count chips, 8 on a single VM, 4 per VM on larger slices."""
    size = int(self.accelerator.split("-")[1])
    if self.generation in ("v4", "v5p"):
      return max(1, size // 8)
    return 1 if size <= 8 else size // 4

  @property
  def home(self) -> str:
    """The run's folder on every worker, relative to the ssh user's home."""
    return f"memjax-{self.name}"

  @property
  def staging(self) -> str:
    """Local folder copied to every worker (its name becomes `home` there)."""
    return f"/tmp/{self.home}"


def _gcloud(s: Slice, *args: str, **kwargs) -> Cmd:
  where = [f"--zone={s.zone}"] + ([f"--project={s.project}"] if s.project else [])
  return cmd("gcloud", "compute", "tpus", *args, *where, **kwargs)


# --- commands ---------------------------------------------------------------------------------------

def create_command(s: Slice) -> Cmd:
  capacity = {"on-demand": [], "spot": ["--spot"], "reserved": ["--reserved"]}[s.capacity]
  return _gcloud(s, "queued-resources", "create", s.name, f"--node-id={s.name}",
                 f"--accelerator-type={s.accelerator}", f"--runtime-version={s.runtime}", *capacity)


def describe_command(s: Slice) -> Cmd:
  """Prints the queued resource's state (ACTIVE, WAITING_FOR_RESOURCES, SUSPENDED, ...); fails if absent."""
  return _gcloud(s, "queued-resources", "describe", s.name, "--format=value(state.state)",
                 capture=True, check=False, dry_stdout="ACTIVE")


def delete_command(s: Slice) -> Cmd:
  return _gcloud(s, "queued-resources", "delete", s.name, "--force", "--quiet")


def workers_command(s: Slice) -> Cmd:
  """One line per worker VM (its internal IP)."""
  ips = "".join(f"10.0.0.{i + 2}\n" for i in range(s.expected_workers))
  return _gcloud(s, "tpu-vm", "describe", s.name, "--flatten=networkEndpoints[]",
                 "--format=csv[no-heading](networkEndpoints.ipAddress)", capture=True, dry_stdout=ips)


def ssh_command(s: Slice, command: str, worker: str = "all", output_directory: str | None = None,
                **kwargs) -> Cmd:
  out = [f"--output-directory={output_directory}"] if output_directory else []
  return _gcloud(s, "tpu-vm", "ssh", s.name, f"--worker={worker}", f"--command={command}", *out, **kwargs)


def scp_command(s: Slice) -> Cmd:
  return _gcloud(s, "tpu-vm", "scp", "--recurse", s.staging, f"{s.name}:~/", "--worker=all")


# --- worker scripts ---------------------------------------------------------------------------------

def _script(purpose: str, body: str) -> str:
  return f'#!/bin/bash\n# {purpose}\nset -uo pipefail\ncd "$(dirname "$0")"\n{body}'


def setup_script(commit: str, jax_version: str, extras: str = jobs.EXTRAS) -> str:
  """Idempotent: extracts a new commit, installs once per (commit, jax, extras) with uv's Python 3.12."""
  marker = f"venv/installed-{commit[:12]}-jax-{jax_version}-{extras.replace(',', '+') or 'no-extras'}"
  return _script("Install memjax on this worker, once: the shipped commit, pinned jax[tpu], Python 3.12 (uv).", f"""\
set -e
if [ "$(cat code/COMMIT 2>/dev/null || true)" != "{commit}" ]; then
  rm -rf code && mkdir code && tar -xzf code.tar.gz -C code && echo "{commit}" > code/COMMIT
fi
if [ ! -f {marker} ]; then
  python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv
  [ -x venv/bin/python ] || ~/.local/bin/uv venv --python 3.12 venv
  ~/.local/bin/uv pip install --python venv/bin/python "{jobs.jax_tpu(jax_version)}" -f {LIBTPU_RELEASES} "{jobs.package('./code', extras)}"
  touch {marker}
fi
echo "$(hostname): memjax {commit[:12]} installed"
""")


def versions_script() -> str:
  return _script("Print this worker's jax, jaxlib and libtpu versions on one line.", """\
venv/bin/python - <<"PY"
import importlib.metadata as md, socket
def version(name):
  try:
    return md.version(name)
  except md.PackageNotFoundError:
    return "missing"
print("MEMJAX_VERSIONS", " ".join(f"{p}={version(p)}" for p in ("jax", "jaxlib", "libtpu")), socket.gethostname())
PY
""")


def free_script(generation: str) -> str:
  return _script("Free the TPU: kill any process holding it, remove libtpu's lockfile.", f"""\
pids=$(sudo lsof -t {DEVICES[generation]} 2>/dev/null | sort -u)
for pid in $pids; do
  echo "$(hostname): killing process $pid, which holds the TPU"
  sudo kill -9 "$pid"
  while sudo kill -0 "$pid" 2>/dev/null; do sleep 1; done
done
sudo rm -f /tmp/libtpu_lockfile
""")


def run_script(job: jobs.Job) -> str:
  train = shlex.join(job.command("../venv/bin/python"))
  return _script(f"memjax.train on this worker; its exit code goes to exit_code ({jobs.PREEMPTED}: preempted, checkpoint saved).", f"""\
cd code
{jobs.export_lines(job.exports(distributed=True))}echo "=== $(date -u +%FT%TZ) $(hostname) starts commit {job.commit[:12]}"
{train} &
echo $! > ../train.pid
wait $!
code=$?
echo "=== $(date -u +%FT%TZ) $(hostname) exit $code"
echo $code > ../exit_code
""")


def start_script() -> str:
  return _script("Free the TPU, then start run.sh detached: it outlives this ssh session.", """\
bash free_tpu.sh
rm -f exit_code train.pid stop_requested
setsid nohup bash run.sh >> run.log 2>&1 < /dev/null &
for _ in $(seq 100); do [ -f train.pid ] && break; sleep 0.1; done  # status.sh now sees it running
echo "$(hostname): started, log in $(pwd)/run.log"
""")


def status_script() -> str:
  return _script("One line: this worker's exit code, `stopped` (by stop.sh), `running`, or `lost` (neither).", """\
if [ -f exit_code ]; then state=$(cat exit_code); [ ! -f stop_requested ] || state=stopped
elif [ -f train.pid ] && kill -0 "$(cat train.pid)" 2>/dev/null; then state=running
else state=lost; fi
echo "MEMJAX_STATUS $(hostname) $state"
""")


def stop_script() -> str:
  return _script("Stop this worker's run: SIGTERM (memjax checkpoints and exits 42); --force: SIGKILL, free the TPU.", """\
pid=$(cat train.pid 2>/dev/null || true)
touch stop_requested  # the launcher does not relaunch a stopped run
if [ "${1:-}" = "--force" ]; then
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null
  bash free_tpu.sh
elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid" && echo "$(hostname): sent SIGTERM to memjax.train (pid $pid)"
else
  echo "$(hostname): no memjax.train running"
fi
""")


def worker_scripts(s: Slice, job: jobs.Job, jax_version: str, extras: str = jobs.EXTRAS) -> dict[str, str]:
  return {"setup.sh": setup_script(job.commit, jax_version, extras), "versions.sh": versions_script(),
          "free_tpu.sh": free_script(s.generation), "run.sh": run_script(job), "start.sh": start_script(),
          "status.sh": status_script(), "stop.sh": stop_script()}


# --- reading answers (pure) -------------------------------------------------------------------------

def tagged(stdout: str, tag: str) -> list[list[str]]:
  return [line.split()[1:] for line in stdout.splitlines() if line.startswith(tag + " ")]


def check_versions(stdout: str, workers: int) -> str:
  """All workers report one jax/jaxlib/libtpu triple; returns it, or raises naming the hosts."""
  by_versions: dict[str, list[str]] = {}
  for fields in tagged(stdout, "MEMJAX_VERSIONS"):
    by_versions.setdefault(" ".join(fields[:-1]), []).append(fields[-1])
  answered = sum(map(len, by_versions.values()))
  if answered != workers:
    raise RuntimeError(f"version check: {answered} of {workers} workers answered")
  if len(by_versions) != 1:
    detail = "; ".join(f"{v} on {', '.join(sorted(h))}" for v, h in sorted(by_versions.items()))
    raise RuntimeError(f"workers disagree on versions: {detail}")
  return next(iter(by_versions))


def outcome(states: list[str]) -> int | None:
  """The run's exit code from the workers' states, or None while it runs.

  A worker that failed ends the run (the others would wait on it in a collective); an error that
  is not a preemption wins over a preemption; `stopped` counts as 42, `lost` or garbage as 255."""
  codes = [jobs.PREEMPTED if state == "stopped" else int(state) if state.isdigit() else 255
           for state in states if state != "running"]
  failed = [code for code in codes if code]
  if not failed:
    return None if len(codes) < len(states) else 0
  final = [code for code in failed if not jobs.retryable(code)]
  return max(final or failed)


# --- steps -----------------------------------------------------------------------------------------

def state(s: Slice, runner: Runner) -> str:
  """The queued resource's state, "" when it does not exist."""
  result = runner.run(describe_command(s))
  return result.stdout.strip() if result.returncode == 0 else ""


def wait_active(s: Slice, runner: Runner, poll_s: float, create_missing: bool, created: bool = False) -> None:
  """Polls until ACTIVE; deletes and recreates a FAILED or SUSPENDED one (spot preemption leaves it so)."""
  last = None
  while True:
    now = state(s, runner)
    if now == "ACTIVE":
      runner.say(f"queued resource {s.name} is ACTIVE")
      return
    if now in RECREATE:
      runner.say(f"queued resource {s.name} is {now}: deleting it and creating it again")
      runner.run(delete_command(s))
      runner.run(create_command(s))
      created = True
    elif not now and not created:
      if not create_missing:
        raise RuntimeError(f"no queued resource {s.name} in {s.zone}: create it with `python -m launch tpu create`")
      runner.run(create_command(s))
      created = True
    elif now != last:
      runner.say(f"queued resource {s.name}: {now or 'not visible yet'}; polling every {poll_s:g} s")
    last = now
    runner.sleep(poll_s)


def create(s: Slice, runner: Runner, poll_s: float) -> None:
  runner.run(create_command(s))
  wait_active(s, runner, poll_s, create_missing=False, created=True)


def install(s: Slice, job: jobs.Job, jax_version: str, runner: Runner, workers: int,
            extras: str = jobs.EXTRAS) -> None:
  """Ships the commit and the scripts to every worker, installs once, checks the versions agree."""
  runner.run(cmd("mkdir", "-p", s.staging))
  runner.run(jobs.archive(job.commit, f"{s.staging}/code.tar.gz"))
  for name, text in worker_scripts(s, job, jax_version, extras).items():
    runner.write(f"{s.staging}/{name}", text)
  runner.run(scp_command(s))
  runner.run(ssh_command(s, f"bash {s.home}/setup.sh"))
  same = f"jax={jax_version} jaxlib={jax_version} libtpu=dry-run"
  answer = runner.run(ssh_command(s, f"bash {s.home}/versions.sh", capture=True,
                                  dry_stdout="".join(f"MEMJAX_VERSIONS {same} w{i}\n" for i in range(workers))))
  runner.say(f"{workers} worker(s), all with {check_versions(answer.stdout, workers)}")


def statuses(s: Slice, runner: Runner, workers: int, dry_state: str) -> tuple[int, list[str]]:
  """(ssh's exit code, each answering worker's state); a worker never set up answers `lost`."""
  answer = runner.run(ssh_command(
      s, f'bash {s.home}/status.sh 2>/dev/null || echo "MEMJAX_STATUS $(hostname) lost"', capture=True,
      check=False, dry_stdout="".join(f"MEMJAX_STATUS w{i} {dry_state}\n" for i in range(workers))))
  return answer.returncode, [fields[-1] for fields in tagged(answer.stdout, "MEMJAX_STATUS")]


def wait_exit(s: Slice, runner: Runner, workers: int, poll_s: float, max_unreachable: int = 5) -> tuple[int, bool]:
  """Polls until the run ends: (its exit code, whether `tpu stop` ended it)."""
  unreachable = 0
  while True:
    runner.sleep(poll_s)
    returncode, states = statuses(s, runner, workers, dry_state="0")
    if returncode or len(states) < workers:
      now = state(s, runner)
      if now != "ACTIVE":
        runner.say(f"slice {s.name} is {now or 'gone'}: preempted")
        return 255, False
      unreachable += 1
      if unreachable > max_unreachable:
        runner.say(f"{workers - len(states)} worker(s) unreachable {unreachable} times in a row")
        return 255, False
      continue
    unreachable = 0
    code = outcome(states)
    if code is not None:
      return code, "stopped" in states


def run(s: Slice, job: jobs.Job, runner: Runner, *, retries: int = 0, poll_s: float = 60,
        jax_version: str = jobs.JAX_VERSION, extras: str = jobs.EXTRAS, detach: bool = False) -> int:
  """Launch on every worker and babysit: relaunch the same workdir after a preemption, `retries` times."""
  if not job.workdir.startswith("gs://"):
    raise ValueError(f"--workdir={job.workdir}: a TPU run needs a gs:// workdir that every worker "
                     "shares and that outlives the VMs")
  jobs.package("./code", extras), jobs.jax_tpu(jax_version)  # refuse bad values before anything runs
  runner.say(f"commit {job.commit}")
  attempt = 0
  while True:
    wait_active(s, runner, poll_s, create_missing=True)
    workers = len(runner.run(workers_command(s)).stdout.split())
    running = statuses(s, runner, workers, dry_state="lost")[1].count("running")
    if running == workers:
      runner.say(f"already running on all {workers} worker(s): waiting for it (`tpu stop` it to restart)")
    else:
      if running:
        runner.say(f"a run is left on {running} of {workers} workers: stopping it")
        runner.run(ssh_command(s, f"bash {s.home}/stop.sh --force"))
      install(s, job, jax_version, runner, workers, extras)
      runner.run(ssh_command(s, f"bash {s.home}/start.sh"))
    if detach:
      runner.say(f"follow it with `python -m launch tpu logs --name={s.name} --zone={s.zone}`")
      return 0
    code, stopped = wait_exit(s, runner, workers, poll_s)
    if code == 0:
      runner.say("finished: every worker exited 0")
      return 0
    if stopped:
      runner.say(f"stopped with `tpu stop` (exit code {code}): not relaunched")
      return code
    if not jobs.retryable(code) or attempt >= retries:
      runner.say(f"run failed with exit code {code}" + (f" after {attempt} relaunch(es)" if attempt else ""))
      if state(s, runner) == "ACTIVE":
        runner.run(ssh_command(s, f"bash {s.home}/stop.sh --force", check=False))
      return code
    attempt += 1
    runner.say(f"exit code {code}: relaunching ({attempt}/{retries}) on the same workdir {job.workdir}")


def logs(s: Slice, runner: Runner, worker: str = "all", lines: int = 100, follow: bool = False,
         out: str | None = None) -> None:
  log = f"{s.home}/run.log"
  if out:  # one file per worker: OUT/0.log, OUT/1.log, ...
    runner.run(cmd("mkdir", "-p", out))
    runner.run(ssh_command(s, f"cat {log}", worker=worker, output_directory=out))
    return
  tail = f"tail -n {lines}{' -F' if follow else ''} {log}"
  runner.run(ssh_command(s, f'{tail} | sed "s/^/[$(hostname)] /"' if worker == "all" else tail, worker=worker))


def stop(s: Slice, runner: Runner, force: bool = False) -> None:
  runner.run(ssh_command(s, f"bash {s.home}/stop.sh" + (" --force" if force else "")))


def delete(s: Slice, runner: Runner) -> None:
  runner.run(delete_command(s))
