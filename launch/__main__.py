"""python -m launch: one entry point for Cloud TPU (tpu), GKE (xpk) and GPU (gpu) runs.

  python -m launch tpu create --name=NAME --zone=ZONE --accelerator=v6e-8 --spot
  python -m launch tpu run    --name=NAME --zone=ZONE --accelerator=v6e-8 --spot --retries=10 \\
      -- --config=configs/clm.py:paper --workdir=gs://BUCKET/runs/clm
  python -m launch tpu logs|status|stop|delete --name=NAME --zone=ZONE
  python -m launch xpk run --cluster=C --workload=W --tpu=v5litepod-16 --max-restarts=5 -- ...
  python -m launch gpu node  --gpus=0,1,2,3 -- --config=... --workdir=...
  python -m launch gpu slurm --nodes=2 --gpus-per-node=8 --run-dir=/shared/runs/x -- ...

Everything after `--` goes to `python -m memjax.train` unchanged. Every subcommand takes --dry-run:
it prints the exact commands as a bash script and executes nothing. Before `tpu create/run` and
`xpk run` rent anything, `python -m memjax.aot` compiles the run's train step for the slice here
and refuses a run that does not fit (--skip_preflight turns it off).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from launch import gpu, tpu, xpk
from launch import job as jobs
from launch.runner import CommandError, DryRun, Runner, Shell


def _at_least(low: float, kind=int):
  def parse(text: str):
    value = kind(text)
    if value < low:
      raise argparse.ArgumentTypeError(f"{value} is below {low}")
    return value
  return parse


def _worker(text: str) -> str:
  if not re.fullmatch(tpu.WORKERS, text):
    raise argparse.ArgumentTypeError(f"{text!r}: `all`, a worker index, a list (1,3) or a range (1-3)")
  return text


def _zone(zone: str | None) -> None:
  if zone is not None and not re.fullmatch(tpu.ZONE, zone):
    raise ValueError(f"--zone {zone!r} is not a zone: expected REGION-ZONE such as us-central2-b "
                     "(`gcloud compute tpus locations list` lists them)")


def _parser() -> argparse.ArgumentParser:
  # argparse, not absl flags as memjax's own commands: launch runs where jax and absl are not
  # installed (a laptop that only rents machines; tests/test_launch.py checks it).
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--dry-run", action="store_true", help="print the commands, execute nothing")
  env = argparse.ArgumentParser(add_help=False)
  env.add_argument("--env", action="append", metavar="NAME=VALUE", help="exported for memjax.train")
  code = argparse.ArgumentParser(add_help=False, parents=[env])
  code.add_argument("--commit", default="HEAD", help="commit to ship (git archive); default HEAD")
  check = argparse.ArgumentParser(add_help=False)
  check.add_argument("--skip_preflight", "--skip-preflight", action="store_true", dest="skip_preflight",
                     help="rent without compiling the train step here first (python -m memjax.aot)")
  check.add_argument("--preflight-python", default="python3",
                     help="a Python with memjax and jax[tpu] for the preflight")
  where = argparse.ArgumentParser(add_help=False)
  where.add_argument("--name", required=True, help="queued resource and TPU node name (nodes NAME-0, ... for slices)")
  where.add_argument("--zone", required=True)
  where.add_argument("--project", help="default: gcloud's configured project")
  where.add_argument("--num_slices", "--num-slices", type=_at_least(1), default=1, dest="num_slices",
                     help="multislice: nodes of one queued resource joined over the data-center network")
  where.add_argument("--internal-ip", action="store_true",
                     help="no external IPs; ssh/scp through internal IPs (run the launcher inside the VPC)")
  shape = argparse.ArgumentParser(add_help=False)
  shape.add_argument("--accelerator", required=True, help="v4-N, v5litepod-N (v5e-N), v5p-N or v6e-N")
  shape.add_argument("--runtime-version", help="default: the runtime for the accelerator's generation")
  capacity = shape.add_mutually_exclusive_group()
  capacity.add_argument("--spot", action="store_const", const="spot", dest="capacity", default="on-demand")
  capacity.add_argument("--reserved", action="store_const", const="reserved", dest="capacity")
  shape.add_argument("--poll-seconds", type=_at_least(1, float), default=60,
                     help="how often to poll the slice and the run")
  shape.add_argument("--max-recreates", type=_at_least(0), default=tpu.MAX_RECREATES,
                     help="times in a row a FAILED/SUSPENDED queued resource is created again (with back-off)")
  shape.add_argument("--service-account", help="the VMs' service account (default: the project's compute one)")
  shape.add_argument("--scopes", help="the VMs' access scopes, comma-separated")
  shape.add_argument("--network")
  shape.add_argument("--subnetwork")
  shape.add_argument("--valid-until-duration", help="give up the request if not ACTIVE within it, e.g. 6h")

  parser = argparse.ArgumentParser(prog="python -m launch", description=__doc__.split("\n")[0],
                                   epilog="Arguments after `--` go to python -m memjax.train.")
  targets = parser.add_subparsers(dest="target", required=True)

  t = targets.add_parser("tpu", help="Cloud TPU VMs (queued resources)").add_subparsers(dest="action", required=True)
  t.add_parser("create", parents=[common, where, shape, check],
               help="create a slice and wait until ACTIVE (after `--`: the run's --config, for the preflight)")
  p = t.add_parser("run", parents=[common, where, shape, code, check],
                   help="ship the commit, install, run on every worker, relaunch after preemption")
  p.add_argument("--retries", type=_at_least(0), default=0, help="relaunches after a preemption (exit 42, 128+)")
  p.add_argument("--jax-version", default=jobs.JAX_VERSION, help="pinned jax[tpu] version")
  p.add_argument("--extras", default=jobs.EXTRAS, help="memjax extras to install (comma-separated, '' for none)")
  p.add_argument("--detach", action="store_true", help="start and return (no waiting, no retries)")
  p.add_argument("--grace-seconds", type=_at_least(0, float), default=tpu.GRACE_S,
                 help="after one worker is preempted, how long the others may take to checkpoint")
  p.add_argument("--log-upload-seconds", type=_at_least(1), default=tpu.LOG_UPLOAD_S,
                 help="how often run.log goes to WORKDIR/logs/")
  p = t.add_parser("logs", parents=[common, where], help="each worker's run.log")
  p.add_argument("--worker", default="all", type=_worker, help="all, an index, a list (1,3) or a range (1-3)")
  p.add_argument("--slice", type=_at_least(0), help="only this slice's node (with --num_slices)")
  p.add_argument("--lines", type=_at_least(1), default=100)
  p.add_argument("--follow", action="store_true")
  p.add_argument("--out", help="copy every worker's full log to OUT/<worker>.log")
  p = t.add_parser("status", parents=[common, where],
                   help="the queued resource, its nodes, the job on every worker, the last checkpoint")
  p.add_argument("--workdir", help="the run's gs:// workdir, for its last checkpoint step")
  p = t.add_parser("stop", parents=[common, where], help="SIGTERM the run (checkpoint, exit 42)")
  p.add_argument("--force", action="store_true", help="SIGKILL and free the TPU instead")
  t.add_parser("delete", parents=[common, where], help="delete the queued resource and its slice")

  x = targets.add_parser("xpk", help="GKE through xpk").add_subparsers(dest="action", required=True)
  kube = argparse.ArgumentParser(add_help=False)
  kube.add_argument("--cluster", required=True)
  kube.add_argument("--workload", required=True)
  kube.add_argument("--project")
  kube.add_argument("--zone")
  p = x.add_parser("run", parents=[common, kube, code, check], help="xpk workload create")
  p.add_argument("--tpu", required=True, help="v4-N, v5litepod-N (v5e-N), v5p-N or v6e-N")
  p.add_argument("--num-slices", type=_at_least(1), default=1)
  p.add_argument("--max-restarts", type=_at_least(0), default=0, help="JobSet restarts (on exit 42 and 128-255)")
  image = p.add_mutually_exclusive_group()
  image.add_argument("--base-docker-image", default="python:3.12", help="xpk adds the code; the container installs")
  image.add_argument("--docker-image", help="an image with memjax installed (launch/Dockerfile): no install at start")
  p.add_argument("--jax-version", default=jobs.JAX_VERSION)
  p.add_argument("--extras", default=jobs.EXTRAS, help="memjax extras to install (comma-separated, '' for none)")
  x.add_parser("delete", parents=[common, kube], help="xpk workload delete")

  g = targets.add_parser("gpu", help="GPU node or SLURM cluster").add_subparsers(dest="action", required=True)
  p = g.add_parser("node", parents=[common, env], help="this node and checkout: one process with all its GPUs")
  p.add_argument("--gpus", help="CUDA_VISIBLE_DEVICES, e.g. 0,1,2,3 (default: all)")
  p.add_argument("--python", default="python3")
  p.add_argument("--retries", type=_at_least(0), default=0, help="reruns after a preemption (exit 42, 128+)")
  p = g.add_parser("slurm", parents=[common, code], help="sbatch: one process per GPU on every node")
  p.add_argument("--nodes", type=_at_least(1), default=1)
  p.add_argument("--gpus-per-node", type=_at_least(1), default=8)
  p.add_argument("--run-dir", help="shared folder for code snapshot, script and logs (default runs/slurm/JOB)")
  p.add_argument("--job-name", default="memjax")
  p.add_argument("--partition")
  p.add_argument("--account")
  p.add_argument("--time", help="wall time, e.g. 04:00:00")
  p.add_argument("--python", default="python3", help="a Python with memjax's dependencies, on every node")
  p.add_argument("--retries", type=_at_least(0), default=0, help="requeues after a preemption exit (42, 128+)")
  p.add_argument("--cpus-per-task", type=_at_least(1), default=gpu.Slurm.cpus_per_task,
                 help="CPU cores per process (SLURM's default: 1)")
  p.add_argument("--mem", help="memory per node, e.g. 200G (0: all of it)")
  p.add_argument("--exclusive", action="store_true", help="no other job on the nodes")
  p.add_argument("--qos")
  p.add_argument("--constraint", help="node features, e.g. a100")
  return parser


def _job(args, train_args, runner: Runner) -> jobs.Job:
  """The job at --commit, shipped as git archive; `gpu node` runs this checkout and records HEAD."""
  shipped = hasattr(args, "commit")
  commit = jobs.resolve_commit(args.commit if shipped else "HEAD", say=runner.say, shipped=shipped)
  return jobs.Job(tuple(train_args), commit, jobs.parse_env(args.env))


def _slice(args) -> tpu.Slice:
  """logs / status / stop / delete take no accelerator: nothing they do depends on it."""
  s = tpu.Slice(args.name, args.zone, getattr(args, "accelerator", None) or "v4-8", args.project,
                   getattr(args, "capacity", "on-demand"), getattr(args, "runtime_version", None),
                   args.num_slices, args.internal_ip, getattr(args, "service_account", None),
                   getattr(args, "scopes", None), getattr(args, "network", None), getattr(args, "subnetwork", None),
                   getattr(args, "valid_until_duration", None))
  _zone(s.zone)
  return s


def dispatch(args, train_args, runner: Runner) -> int:
  """Runs one subcommand; returns its exit code. Every argument is checked before anything runs."""
  wants_train = (args.target, args.action) in {("tpu", "create"), ("tpu", "run"), ("xpk", "run"), ("gpu", "node"),
                                               ("gpu", "slurm")}
  if train_args and not wants_train:
    raise ValueError(f"`{args.target} {args.action}` takes no memjax.train arguments (after --)")
  if args.target == "tpu":
    s = _slice(args)
    if args.action == "create":
      preflight = jobs.preflight_command(train_args, s.accelerator, s.num_slices, args.preflight_python)
      tpu.create(s, runner, args.poll_seconds, args.max_recreates, preflight, args.skip_preflight)
    elif args.action == "run":
      preflight = jobs.preflight_command(train_args, s.accelerator, s.num_slices, args.preflight_python)
      return tpu.run(s, _job(args, train_args, runner), runner, retries=args.retries, poll_s=args.poll_seconds,
                     jax_version=args.jax_version, extras=args.extras, detach=args.detach,
                     grace_s=args.grace_seconds, max_recreates=args.max_recreates,
                     log_upload_s=args.log_upload_seconds, preflight=preflight, skip_preflight=args.skip_preflight)
    elif args.action == "logs":
      tpu.logs(s, runner, args.worker, args.lines, args.follow, args.out, args.slice)
    elif args.action == "status":
      if args.workdir and not args.workdir.startswith("gs://"):
        raise ValueError(f"--workdir={args.workdir}: the run's gs:// workdir")
      return tpu.status(s, runner, args.workdir)
    elif args.action == "stop":
      tpu.stop(s, runner, args.force)
    else:
      tpu.delete(s, runner)
  elif args.target == "xpk":
    _zone(args.zone)
    if args.action == "run":
      w = xpk.Workload(args.cluster, args.workload, args.tpu, args.num_slices, args.max_restarts, args.project,
                       args.zone, args.base_docker_image, args.docker_image)
      preflight = jobs.preflight_command(train_args, w.tpu, w.num_slices, args.preflight_python)
      xpk.run(w, _job(args, train_args, runner), runner, args.jax_version, args.extras, preflight, args.skip_preflight)
    else:
      xpk.delete(xpk.Workload(args.cluster, args.workload, "v4-8", project=args.project, zone=args.zone), runner)
  elif args.action == "node":
    return gpu.run_node(_job(args, train_args, runner), runner, args.python, args.gpus, args.retries)
  else:
    run_dir = os.path.abspath(args.run_dir or os.path.join("runs", "slurm", args.job_name))
    cfg = gpu.Slurm(run_dir, args.nodes, args.gpus_per_node, args.job_name, args.partition, args.account,
                    args.time, args.python, args.retries, cpus_per_task=args.cpus_per_task, mem=args.mem,
                    exclusive=args.exclusive, qos=args.qos, constraint=args.constraint)
    gpu.submit(cfg, _job(args, train_args, runner), runner)
  return 0


def main(argv: list[str] | None = None, runner: Runner | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  split = argv.index("--") if "--" in argv else len(argv)
  args = _parser().parse_args(argv[:split])
  if "--dry-run" in argv[split + 1:]:  # memjax.train has no such flag: the user meant the launcher's
    print("launch: error: --dry-run goes before `--` (after it, arguments belong to memjax.train)", file=sys.stderr)
    return 2
  runner = runner or (DryRun() if args.dry_run else Shell())
  if args.dry_run:
    runner.say("dry run: the commands in order, executed nowhere; queries are answered as if all succeeded")
  try:
    return dispatch(args, argv[split + 1:], runner)
  except CommandError as error:
    print(f"launch: error: {error}", file=sys.stderr)
    return error.returncode or 1
  except (ValueError, RuntimeError) as error:
    print(f"launch: error: {error}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("launch: interrupted (a job started by `tpu run` keeps going on its workers: `tpu logs`, `tpu stop`)",
          file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
