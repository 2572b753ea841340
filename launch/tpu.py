"""Cloud TPU: a queued-resource slice, the code on every worker, the same command on all of them.

Pure builders return commands (`Cmd`) and worker scripts (text); the steps below run them through
a runner. On every worker, `~/memjax-NAME/` holds the shipped `git archive` (code.tar.gz, extracted
to code/), a venv with pinned jax[tpu], the scripts, `run.log`, `train.pid` and `exit_code`; run.sh
copies `run.log` to `WORKDIR/logs/HOST.log` as it grows, so the log outlives a deleted spot VM.
A multislice run (`num_slices` > 1) is one queued resource with nodes NAME-0, NAME-1, ...: every
step runs on every worker of every node.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from launch import job as jobs
from launch.runner import Cmd, CommandError, Runner, cmd
from memjax import accelerators

# Runtime (VM image) per generation, from the Cloud TPU docs; v5e slices are named v5litepod-N.
RUNTIME = {"v4": "tpu-ubuntu2204-base", "v5litepod": "v2-alpha-tpuv5-lite", "v5p": "v2-alpha-tpuv5",
           "v6e": "v2-alpha-tpuv6e"}
# What a process holding the TPU has open: /dev/accel* on v4, VFIO devices from v5 on.
DEVICES = {"v4": "/dev/accel*", "v5litepod": "/dev/vfio/*", "v5p": "/dev/vfio/*", "v6e": "/dev/vfio/*"}
LIBTPU_RELEASES = "https://storage.googleapis.com/jax-releases/libtpu_releases.html"
CAPACITY = ("on-demand", "spot", "reserved")
RECREATE = ("FAILED", "SUSPENDED")
ZONE = r"[a-z]+-[a-z]+[0-9]+-[a-z]"  # region-zone, e.g. us-central2-b
# gcloud's --worker with --command: all, an index, a comma-separated list, ranges (1-3).
WORKERS = r"all|[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*"
DURATION = r"([0-9]+[dhms])+"  # gcloud durations: 6h, 1d12h, 90m
MEGASCALE_PORT = 8080  # the DCN port libtpu's multislice transport listens on
MAX_RECREATES = 5  # FAILED/SUSPENDED -> created again, at most this many times in a row
GRACE_S = 300  # after one worker's preemption exit, time for the others to finish their checkpoint
LOG_UPLOAD_S = 60  # how often run.log is copied to WORKDIR/logs/


def accelerator_type(name: str) -> str:
  """The gcloud accelerator type: v4-N, v5litepod-N (v5e-N accepted), v5p-N or v6e-N, of a size that exists."""
  return accelerators.parse(name).name


def worker_indices(worker: str, count: int) -> list[int]:
  """The worker indices `--worker` names in a node of `count` workers."""
  if worker == "all":
    return list(range(count))
  out = []
  for part in worker.split(","):
    low, _, high = part.partition("-")
    out += range(int(low), int(high or low) + 1)
  return out


@dataclasses.dataclass(frozen=True)
class Slice:
  """One queued resource `name` and its node(s): `name`, or NAME-0 ... NAME-(num_slices-1).

  `internal_ip`: the nodes get no external IP and ssh/scp connect through internal IPs (the launcher
  runs inside the VPC); the other options are queued-resources create's own."""
  name: str
  zone: str
  accelerator: str = "v4-8"
  project: str | None = None
  capacity: str = "on-demand"
  runtime_version: str | None = None
  num_slices: int = 1
  internal_ip: bool = False
  service_account: str | None = None
  scopes: str | None = None
  network: str | None = None
  subnetwork: str | None = None
  valid_until: str | None = None

  def __post_init__(self):
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", self.name):
      raise ValueError(f"--name {self.name!r}: lowercase letters, digits and hyphens, starting with a letter")
    object.__setattr__(self, "accelerator", accelerator_type(self.accelerator))
    if self.capacity not in CAPACITY:
      raise ValueError(f"capacity {self.capacity!r}: one of {CAPACITY}")
    if self.num_slices < 1:
      raise ValueError(f"--num_slices {self.num_slices}: at least 1")
    if self.valid_until is not None and not re.fullmatch(DURATION, self.valid_until):
      raise ValueError(f"--valid-until-duration {self.valid_until!r}: a duration such as 6h, 1d12h or 90m")

  @property
  def generation(self) -> str:
    return self.accelerator.split("-")[0]

  @property
  def runtime(self) -> str:
    return self.runtime_version or RUNTIME[self.generation]

  @property
  def expected_workers(self) -> int:
    """VMs in one node (what a dry run assumes; a real run asks gcloud)."""
    return accelerators.parse(self.accelerator).hosts

  @property
  def nodes(self) -> list[str]:
    """The TPU nodes: queued-resources create names them NAME-0, NAME-1, ... with --node-prefix."""
    return [self.name] if self.num_slices == 1 else [f"{self.name}-{i}" for i in range(self.num_slices)]

  @property
  def home(self) -> str:
    """The run's folder on every worker, relative to the ssh user's home."""
    return f"memjax-{self.name}"

  @property
  def staging(self) -> str:
    """Local folder copied to every worker (its name becomes `home` there)."""
    return f"{jobs.staging_root()}/{self.home}"


def _gcloud(s: Slice, *args: str, **kwargs) -> Cmd:
  where = [f"--zone={s.zone}"] + ([f"--project={s.project}"] if s.project else [])
  return cmd("gcloud", "compute", "tpus", *args, *where, **kwargs)


# --- commands ---------------------------------------------------------------------------------------

def create_command(s: Slice) -> Cmd:
  capacity = {"on-demand": [], "spot": ["--spot"], "reserved": ["--reserved"]}[s.capacity]
  nodes = [f"--node-id={s.name}"] if s.num_slices == 1 else [f"--node-count={s.num_slices}", f"--node-prefix={s.name}"]
  options = ["--internal-ips"] * s.internal_ip + [
      f"--{flag}={value}" for flag, value in (
          ("network", s.network), ("subnetwork", s.subnetwork), ("service-account", s.service_account),
          ("scopes", s.scopes), ("valid-until-duration", s.valid_until)) if value]
  return _gcloud(s, "queued-resources", "create", s.name, *nodes, f"--accelerator-type={s.accelerator}",
                 f"--runtime-version={s.runtime}", *capacity, *options)


def offered_command(s: Slice) -> Cmd:
  """Succeeds when the zone exists and offers the accelerator type (gcloud's own list, never stale)."""
  return _gcloud(s, "tpu-vm", "accelerator-types", "describe", s.accelerator, "--format=value(type)", capture=True,
                 check=False, dry_stdout=s.accelerator)


def describe_command(s: Slice) -> Cmd:
  """Prints the queued resource's state (ACTIVE, WAITING_FOR_RESOURCES, SUSPENDED, FAILED, ...) and,
  tab-separated, why it failed; fails if it does not exist."""
  return _gcloud(s, "queued-resources", "describe", s.name, "--format=value(state.state,state.failedData.error.message)",
                 capture=True, check=False, dry_stdout="ACTIVE")


def delete_command(s: Slice) -> Cmd:
  return _gcloud(s, "queued-resources", "delete", s.name, "--force", "--quiet")


def workers_command(s: Slice, node: str) -> Cmd:
  """One line per worker VM of `node` (its internal IP)."""
  ips = "".join(f"10.0.{s.nodes.index(node)}.{i + 2}\n" for i in range(s.expected_workers))
  return _gcloud(s, "tpu-vm", "describe", node, "--flatten=networkEndpoints[]",
                 "--format=csv[no-heading](networkEndpoints.ipAddress)", capture=True, dry_stdout=ips)


def node_state_command(s: Slice, node: str) -> Cmd:
  return _gcloud(s, "tpu-vm", "describe", node, "--format=value(state,health)", capture=True, check=False,
                 dry_stdout="READY\tHEALTHY")


def ssh_command(s: Slice, node: str, command: str, worker: str = "all", **kwargs) -> Cmd:
  return _gcloud(s, "tpu-vm", "ssh", node, f"--worker={worker}", f"--command={command}",
                 *["--internal-ip"] * s.internal_ip, **kwargs)


def scp_command(s: Slice, node: str) -> Cmd:
  """Copies the staging folder to every worker of `node`."""
  return _gcloud(s, "tpu-vm", "scp", "--recurse", s.staging, f"{node}:~/", "--worker=all",
                 *["--internal-ip"] * s.internal_ip)


def fetch_log_command(s: Slice, node: str, worker: int, path: str) -> Cmd:
  """Copies one worker's run.log here (scp from the worker: one file, no shared output directory)."""
  return _gcloud(s, "tpu-vm", "scp", f"{node}:{s.home}/run.log", path, f"--worker={worker}",
                 *["--internal-ip"] * s.internal_ip)


def checkpoints_command(workdir: str) -> Cmd:
  """Lists the workdir's checkpoint steps (Orbax: WORKDIR/checkpoints/STEP/)."""
  return cmd("gcloud", "storage", "ls", f"{workdir.rstrip('/')}/checkpoints/", capture=True, check=False)


# --- worker scripts ---------------------------------------------------------------------------------

def _script(purpose: str, body: str) -> str:
  return f'#!/bin/bash\n# {purpose}\nset -uo pipefail\ncd "$(dirname "$0")"\n{body}'


def setup_script(commit: str, jax_version: str, extras: str = jobs.EXTRAS) -> str:
  """Idempotent: extracts a new commit, installs once per (commit, jax, extras) with uv's Python 3.12.
  `extras` are all the memjax extras the worker installs (gcs for a gs:// workdir, tpu, ...)."""
  marker = f"venv/installed-{commit[:12]}-jax-{jax_version}-{extras.replace(',', '+') or 'no-extras'}"
  return _script("Install memjax on this worker, once: the shipped commit, pinned jax[tpu], Python 3.12 (uv).", f"""\
set -e
if [ "$(cat code/COMMIT 2>/dev/null || true)" != "{commit}" ]; then
  rm -rf code && mkdir code && tar -xzf code.tar.gz -C code && echo "{commit}" > code/COMMIT
fi
if [ ! -f {marker} ]; then
  [ -x ~/.local/bin/uv ] || python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv
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


def run_script(job: jobs.Job, log_upload_s: int = LOG_UPLOAD_S) -> str:
  """run.sh; when the workdir is gs://, run.log goes to WORKDIR/logs/HOST.log every `log_upload_s`
  seconds and once more at the end (before exit_code, so a finished run's log is complete there)."""
  train = shlex.join(job.command("../venv/bin/python"))
  upload = ""
  if job.workdir.startswith("gs://"):
    bucket_log = shlex.quote(f"{job.workdir.rstrip('/')}/logs/") + '"$(hostname).log"'
    upload = f"""\
upload_log() {{ timeout 120 gcloud storage cp --quiet ../run.log {bucket_log} >/dev/null 2>&1 || true; }}
( trap 'kill "$nap" 2>/dev/null; exit 0' TERM  # stopped: leave no sleep behind
  while true; do sleep {log_upload_s} & nap=$!; wait "$nap"; upload_log; done ) &
uploader=$!
"""
  finish = "kill $uploader 2>/dev/null\nupload_log\n" if upload else ""
  return _script(f"memjax.train on this worker; its exit code goes to exit_code ({jobs.PREEMPTED}: preempted, checkpoint saved).", f"""\
cd code
{jobs.export_lines(job.exports(distributed=True))}{upload}echo "=== $(date -u +%FT%TZ) $(hostname) starts commit {job.commit[:12]}"
{train} &
echo $! > ../train.pid
wait $!
code=$?
echo "=== $(date -u +%FT%TZ) $(hostname) exit $code"
{finish}echo $code > ../exit_code
""")


def start_script() -> str:
  return _script("Free the TPU, then start run.sh detached: it outlives this ssh session.", """\
bash free_tpu.sh
rm -f exit_code train.pid stop_requested log_shown
setsid nohup bash run.sh >> run.log 2>&1 < /dev/null &
for _ in $(seq 100); do [ -f train.pid ] && break; sleep 0.1; done  # status.sh now sees it running
echo "$(hostname): started, log in $(pwd)/run.log"
""")


def news_script() -> str:
  return _script("Print what run.log gained since the last call: the launcher shows worker 0's output as it waits.", """\
shown=$(cat log_shown 2>/dev/null || echo 0)
size=$(stat -c %s run.log 2>/dev/null || echo 0)
[ "$size" -ge "$shown" ] || shown=0
[ "$size" -eq "$shown" ] || tail -c +"$((shown + 1))" run.log | head -c "$((size - shown))"
echo "$size" > log_shown
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


def worker_scripts(s: Slice, job: jobs.Job, jax_version: str, extras: str = jobs.EXTRAS,
                   log_upload_s: int = LOG_UPLOAD_S) -> dict[str, str]:
  """Every worker's scripts; `extras` as given by the user (the job adds gcs and tpu)."""
  return {"setup.sh": setup_script(job.commit, jax_version, job.extras(extras, tpu=True, jax_version=jax_version)),
          "versions.sh": versions_script(), "free_tpu.sh": free_script(s.generation),
          "run.sh": run_script(job, log_upload_s), "start.sh": start_script(), "news.sh": news_script(),
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


def last_step(listing: str) -> int | None:
  """The largest step among `gcloud storage ls WORKDIR/checkpoints/` lines (…/checkpoints/STEP/)."""
  steps = [int(m[1]) for line in listing.splitlines() if (m := re.search(r"/([0-9]+)/?$", line.strip()))]
  return max(steps, default=None)


# --- steps -----------------------------------------------------------------------------------------

def state(s: Slice, runner: Runner) -> tuple[str, str]:
  """The queued resource's (state, why it failed); ("", "") when it does not exist."""
  result = runner.run(describe_command(s))
  if result.returncode:
    return "", ""
  now, _, reason = result.stdout.strip().partition("\t")
  return now.strip(), reason.strip()


def wait_active(s: Slice, runner: Runner, poll_s: float, create_missing: bool, created: bool = False,
                max_recreates: int = MAX_RECREATES) -> None:
  """Polls until ACTIVE. A FAILED or SUSPENDED one (a spot preemption leaves it so) is deleted and
  created again, after a growing back-off, at most `max_recreates` times in a row; each time the
  reason gcloud gives is shown."""
  last, recreated = None, 0
  while True:
    now, reason = state(s, runner)
    if now == "ACTIVE":
      runner.say(f"queued resource {s.name} is ACTIVE")
      return
    if now in RECREATE:
      why = f": {reason}" if reason else " (gcloud gives no reason)"
      if recreated >= max_recreates:
        raise RuntimeError(f"queued resource {s.name} is {now}{why}. It was created again {recreated} times "
                           f"(--max-recreates={max_recreates}) without becoming ACTIVE: giving up. Try another zone "
                           f"or capacity; `python -m launch tpu delete --name={s.name} --zone={s.zone}` frees it")
      recreated += 1
      wait = jobs.backoff(recreated, poll_s)
      runner.say(f"queued resource {s.name} is {now}{why}; deleting it and creating it again in {wait:g} s "
                 f"({recreated}/{max_recreates})")
      runner.run(delete_command(s))
      runner.sleep(wait)
      runner.run(create_command(s))
      created = True
    elif not now and not created:
      if not create_missing:
        raise RuntimeError(f"no queued resource {s.name} in {s.zone}: create it with `python -m launch tpu create`")
      check_offered(s, runner)
      runner.run(create_command(s))
      created = True
    elif now != last:
      runner.say(f"queued resource {s.name}: {now or 'not visible yet'}; polling every {poll_s:g} s")
    last = now
    runner.sleep(poll_s)


def check_offered(s: Slice, runner: Runner) -> None:
  """Refuses, before requesting anything, a zone that does not exist or does not offer the type."""
  if runner.run(offered_command(s)).returncode:
    raise RuntimeError(f"zone {s.zone} does not offer {s.accelerator} (or does not exist; gcloud's error is above): "
                       f"`gcloud compute tpus tpu-vm accelerator-types list --zone={s.zone}` lists what it offers, "
                       "`gcloud compute tpus locations list` the zones")


def create(s: Slice, runner: Runner, poll_s: float, max_recreates: int = MAX_RECREATES,
           preflight: Cmd | None = None, skip_preflight: bool = False) -> None:
  """Creates the slice and waits until it is ACTIVE; the cheap zone check first, then the preflight."""
  check_offered(s, runner)
  if not skip_preflight:
    jobs.preflight(preflight, runner)
  runner.run(create_command(s))
  wait_active(s, runner, poll_s, create_missing=False, created=True, max_recreates=max_recreates)


def worker_ips(s: Slice, runner: Runner) -> list[list[str]]:
  """Each node's workers (internal IPs), in node order."""
  return [runner.run(workers_command(s, node)).stdout.split() for node in s.nodes]


def on_every_node(s: Slice, runner: Runner, command: str, **kwargs) -> list:
  """Runs `command` with --worker=all on each node in turn; their results in node order."""
  return [runner.run(ssh_command(s, node, command, **kwargs)) for node in s.nodes]


def megascale_env(s: Slice, ips: list[list[str]], node: int) -> str:
  """What libtpu and jax read to join the slices over the data-center network (none for one slice):
  the coordinator is worker 0 of the first node, as on GKE."""
  if s.num_slices == 1:
    return ""
  env = {"MEGASCALE_COORDINATOR_ADDRESS": f"{ips[0][0]}:{MEGASCALE_PORT}", "MEGASCALE_NUM_SLICES": s.num_slices,
         "MEGASCALE_SLICE_ID": node, "MEGASCALE_PORT": MEGASCALE_PORT}
  return "".join(f"{key}={value} " for key, value in env.items())


def install(s: Slice, job: jobs.Job, jax_version: str, runner: Runner, workers: int,
            extras: str = jobs.EXTRAS, log_upload_s: int = LOG_UPLOAD_S) -> None:
  """Ships the commit and the scripts to every worker, installs once, checks the versions agree."""
  runner.run(cmd("mkdir", "-p", s.staging))
  runner.run(jobs.archive(job.commit, f"{s.staging}/code.tar.gz"))
  for name, text in worker_scripts(s, job, jax_version, extras, log_upload_s).items():
    runner.write(f"{s.staging}/{name}", text)
  for node in s.nodes:
    runner.run(scp_command(s, node))
  on_every_node(s, runner, f"bash {s.home}/setup.sh")
  same = f"jax={jax_version} jaxlib={jax_version} libtpu=dry-run"
  per_node = workers // s.num_slices
  answers = on_every_node(s, runner, f"bash {s.home}/versions.sh", capture=True,
                          dry_stdout="".join(f"MEMJAX_VERSIONS {same} w{i}\n" for i in range(per_node)))
  versions = check_versions("".join(answer.stdout for answer in answers), workers)
  runner.say(f"{workers} worker(s), all with {versions}")


def statuses(s: Slice, runner: Runner, workers: int, dry_state: str) -> tuple[int, list[str]]:
  """(ssh's worst exit code, each answering worker's state); a worker never set up answers `lost`."""
  per_node = workers // s.num_slices
  answers = on_every_node(
      s, runner, f'bash {s.home}/status.sh 2>/dev/null || echo "MEMJAX_STATUS $(hostname) lost"', capture=True,
      check=False, dry_stdout="".join(f"MEMJAX_STATUS w{i} {dry_state}\n" for i in range(per_node)))
  return (max(answer.returncode for answer in answers),
          [fields[-1] for answer in answers for fields in tagged(answer.stdout, "MEMJAX_STATUS")])


def wait_exit(s: Slice, runner: Runner, workers: int, poll_s: float, grace_s: float = GRACE_S,
              max_unreachable: int = 5) -> tuple[int, bool]:
  """Polls until the run ends: (its exit code, whether `tpu stop` ended it). Shows worker 0's new
  output at each poll. When a worker was preempted (42, or killed by a signal) while others still
  run, they get `grace_s` seconds to save their checkpoint before the run counts as ended."""
  unreachable, draining = 0, 0.0
  while True:
    runner.sleep(poll_s)
    runner.run(ssh_command(s, s.nodes[0], f"bash {s.home}/news.sh", worker="0", check=False))
    returncode, states = statuses(s, runner, workers, dry_state="0")
    if returncode or len(states) < workers:
      now, reason = state(s, runner)
      if now != "ACTIVE":
        runner.say(f"slice {s.name} is {now or 'gone'}{f': {reason}' if reason else ''}: preempted")
        return 255, False
      unreachable += 1
      if unreachable > max_unreachable:
        runner.say(f"{workers - len(states)} worker(s) unreachable {unreachable} times in a row")
        return 255, False
      continue
    unreachable = 0
    code = outcome(states)
    if code is None:
      continue
    running = states.count("running")
    if running and jobs.retryable(code) and draining < grace_s:
      if not draining:
        runner.say(f"a worker exited {code} (preempted); {running} still running: waiting up to {grace_s:g} s "
                   "for them to finish their checkpoint")
      draining += poll_s
      continue
    return code, "stopped" in states


def run(s: Slice, job: jobs.Job, runner: Runner, *, retries: int = 0, poll_s: float = 60,
        jax_version: str = jobs.JAX_VERSION, extras: str = jobs.EXTRAS, detach: bool = False,
        grace_s: float = GRACE_S, max_recreates: int = MAX_RECREATES, log_upload_s: int = LOG_UPLOAD_S,
        preflight: Cmd | None = None, skip_preflight: bool = False) -> int:
  """Launch on every worker and babysit: relaunch the same workdir after a preemption, `retries`
  times; ssh/scp connections lost while shipping, installing or starting count as one too."""
  if not job.workdir.startswith("gs://"):
    raise ValueError(f"--workdir={job.workdir}: a TPU run needs a gs:// workdir that every worker "
                     "shares and that outlives the VMs")
  jobs.package("./code", extras), jobs.jax_tpu(jax_version)  # refuse bad values before anything runs
  if not skip_preflight:
    jobs.preflight(preflight, runner)
  runner.say(f"commit {job.commit}")
  attempt = 0
  while True:
    try:
      wait_active(s, runner, poll_s, create_missing=True, max_recreates=max_recreates)
      ips = worker_ips(s, runner)
      workers = sum(map(len, ips))
      running = statuses(s, runner, workers, dry_state="lost")[1].count("running")
      if running == workers:
        runner.say(f"already running on all {workers} worker(s): waiting for it (`tpu stop` it to restart)")
      else:
        if running:
          runner.say(f"a run is left on {running} of {workers} workers: stopping it")
          on_every_node(s, runner, f"bash {s.home}/stop.sh --force")
        install(s, job, jax_version, runner, workers, extras, log_upload_s)
        for i, node in enumerate(s.nodes):
          runner.run(ssh_command(s, node, f"{megascale_env(s, ips, i)}bash {s.home}/start.sh"))
    except CommandError as error:
      lost = error.returncode == jobs.SSH_LOST or state(s, runner)[0] != "ACTIVE"
      if not lost or attempt >= retries:
        raise
      attempt += 1
      wait = jobs.backoff(attempt, poll_s)
      runner.say(f"{error}: the connection to the workers was lost (a preempted VM?); trying again in {wait:g} s "
                 f"({attempt}/{retries})")
      runner.sleep(wait)
      continue
    if detach:
      runner.say(f"follow it with `python -m launch tpu logs --name={s.name} --zone={s.zone}`")
      return 0
    code, stopped = wait_exit(s, runner, workers, poll_s, grace_s)
    if code == 0:
      runner.say("finished: every worker exited 0")
      return 0
    if stopped:
      runner.say(f"stopped with `tpu stop` (exit code {code}): not relaunched")
      return code
    if not jobs.retryable(code) or attempt >= retries:
      runner.say(f"run failed with exit code {code}" + (f" after {attempt} relaunch(es)" if attempt else ""))
      if state(s, runner)[0] == "ACTIVE":
        on_every_node(s, runner, f"bash {s.home}/stop.sh --force", check=False)
      return code
    attempt += 1
    runner.say(f"exit code {code}: relaunching ({attempt}/{retries}) on the same workdir {job.workdir}")


def logs(s: Slice, runner: Runner, worker: str = "all", lines: int = 100, follow: bool = False,
         out: str | None = None, slice_index: int | None = None) -> None:
  """Prints the workers' logs, of every node or of node `slice_index` (`out`: copies each whole log to
  OUT/<worker>.log, OUT/<node>-<worker>.log for several slices). Lines are prefixed line-buffered, so
  a followed log arrives line by line."""
  if slice_index is not None and not 0 <= slice_index < s.num_slices:
    raise ValueError(f"--slice {slice_index}: the run has slices 0 to {s.num_slices - 1} (--num_slices)")
  nodes = s.nodes if slice_index is None else [s.nodes[slice_index]]
  log = f"{s.home}/run.log"
  if out:
    runner.run(cmd("mkdir", "-p", out))
    for node in nodes:
      count = len(runner.run(workers_command(s, node)).stdout.split())
      for i in worker_indices(worker, count):
        runner.run(fetch_log_command(s, node, i, f"{out}/{i if s.num_slices == 1 else f'{node}-{i}'}.log"))
    return
  if follow and len(nodes) > 1:
    raise ValueError("--follow follows one node at a time: with --num_slices > 1 add --slice=I")
  tail = f"tail -n {lines}{' -F' if follow else ''} {log}"
  single = re.fullmatch("[0-9]+", worker) is not None
  for node in nodes:
    runner.run(ssh_command(s, node, tail if single else f'{tail} | sed -u "s/^/[$(hostname)] /"', worker=worker))


def stop(s: Slice, runner: Runner, force: bool = False) -> None:
  on_every_node(s, runner, f"bash {s.home}/stop.sh" + (" --force" if force else ""))


def status(s: Slice, runner: Runner, workdir: str | None = None) -> int:
  """Reports the queued resource, each node, the job on every worker, and the workdir's last
  checkpoint step; returns 0 when the slice is ACTIVE."""
  now, reason = state(s, runner)
  runner.say(f"queued resource {s.name}: {now or 'does not exist'}{f' ({reason})' if reason else ''}")
  if now == "ACTIVE":
    for node in s.nodes:
      runner.say(f"node {node}: {' '.join(runner.run(node_state_command(s, node)).stdout.split()) or 'unknown'}")
    _, states = statuses(s, runner, s.expected_workers * s.num_slices, dry_state="running")
    job = outcome(states)
    summary = "running" if job is None else f"ended with exit code {job}"
    runner.say(f"job: {summary}; workers: {' '.join(states) or 'none answered'}")
  if workdir:
    step = last_step(runner.run(checkpoints_command(workdir)).stdout)
    runner.say(f"last checkpoint in {workdir}: " + (f"step {step}" if step is not None else "none"))
  return 0 if now == "ACTIVE" else 1


def delete(s: Slice, runner: Runner) -> None:
  runner.run(delete_command(s))
