"""The reproduction suite's running: scales, run configs, probes, training an experiment's runs.

An experiment (one module in memjax/experiments/) is a list of named runs, each an ordinary memjax run
(`memjax.training.loop.run`) in `<workdir>/runs/<name>`, and a report built from their results
(experiments/reporting.py: tables and figures). Runs are shared by name (experiments/runs.py): two
experiments (or `reproduce all`) that need the same run train it once, and a run already finished
(or interrupted) is resumed, so an experiment re-run only redoes its report. A name always stands
for one config; loop.run refuses a workdir whose run has a different one.

Scales: `tiny` (tests: seconds per run), `cpu` (the docs/results.md numbers: minutes on 2 CPU cores)
and `paper` (the paper's sizes, for an accelerator); each is a preset of the config files in configs/
(PRESETS), so a run's config is `configs/<file>:<preset>,<keys>` and this layer only picks the keys.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any, Callable, Iterable, Sequence

import ml_collections

from memjax import config as mc

SCALES: tuple[str, ...] = ("tiny", "cpu", "paper")  # every experiment's
# The config preset of each scale (memjax/config.py SIZES); `demo` is the headline's (make demo),
# which only experiments/headline.py plans.
PRESETS = {"tiny": "smoke", "cpu": "cpu", "paper": "paper", "demo": "demo"}
FAMILIES: tuple[str, ...] = ("mixer", "transformer")
CHECKOUT_CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"
RUNS = "runs"


def configs_dir() -> pathlib.Path:
  """configs/ of this checkout, else of the working directory (an installed memjax has none)."""
  for candidate in (CHECKOUT_CONFIGS, pathlib.Path.cwd() / "configs"):
    if (candidate / "memory.py").exists():
      return candidate
  raise FileNotFoundError("the experiments are built from the config files in configs/: run from a "
                          "memjax checkout (no configs/ next to the memjax package or in the working directory)")


@dataclasses.dataclass(frozen=True)
class RunSpec:
  name: str
  cfg: ml_collections.ConfigDict


def at_length(spec: RunSpec, n_ctx: int) -> RunSpec:
  """`spec` trained on contexts of `n_ctx` tokens: itself where that is its length, else a run of its
  own, named `<name>_c<n_ctx>`."""
  if spec.cfg.data.n_ctx == n_ctx:
    return spec
  cfg = ml_collections.ConfigDict(spec.cfg.to_dict())
  cfg.data.n_ctx = n_ctx
  return RunSpec(f"{spec.name}_c{n_ctx}", cfg)


def check_scale(scale: str, scales: Sequence[str] = SCALES) -> None:
  if scale not in scales:
    raise ValueError(f"unknown scale {scale!r}; choose from {tuple(scales)}")


def config(file: str, scale: str, steps: int | dict[str, int] | None = None, **args: Any) -> ml_collections.ConfigDict:
  """`configs/<file>` at the scale's preset with `args` (e.g. family='mixer'): what
  `--config=configs/<file>:<preset>,<key>=<value>,...` gives. `steps` (one number, or by scale:
  {'cpu': 300}) where the run trains for other than its file's steps at that preset.
  """
  check_scale(scale, PRESETS)
  steps = steps.get(scale) if isinstance(steps, dict) else steps
  args = args | ({"steps": steps} if steps else {})
  arg = ",".join([PRESETS[scale]] + [f"{key}={value}" for key, value in args.items()])
  return mc.load(configs_dir() / file, arg)


def encoder_section(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config section of a run's probed/reused encoder (a causal LM's whole model)."""
  return cfg.model if cfg.task == "clm" else cfg.encoder


def encoder_length(cfg: ml_collections.ConfigDict) -> int:
  """Tokens one embedding of the run's encoder summarizes (a memory model's chunk length)."""
  from memjax import models

  return models.encoder_config(cfg).length


def reuse_encoder(cfg: ml_collections.ConfigDict, source: RunSpec | None, root: pathlib.Path, *,
                  frozen: bool = True, embed_index: int = -1,
                  architecture: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  """Sets `cfg.encoder` to the architecture of `source`'s encoder and loads it from its workdir.

  `source=None` gives an untrained encoder of `architecture`. Returns `cfg` (modified in place).
  """
  from memjax.models.config import MODEL_FIELDS

  arch = encoder_section(source.cfg) if source else architecture
  for key in MODEL_FIELDS:  # what shapes the weights and what they compute, not how they run
    if key in arch:
      cfg.encoder[key] = arch[key]
  cfg.encoder.update(checkpoint=str(run_dir(root, source.name)) if source else "", frozen=frozen,
                     embed_index=embed_index)
  return cfg


def probe(scale: str, source: RunSpec | None, root: pathlib.Path, *, embed_index: int = -1,
          architecture: ml_collections.ConfigDict | None = None, n_ctx: int | None = None,
          feed: str | None = None, quantize: str = "none") -> ml_collections.ConfigDict:
  """An information probe (paper Fig. 1) of `source`'s frozen encoder: a fresh decoder trained to
  regenerate the encoder's input from its single embedding. `source=None` probes an untrained encoder
  of `architecture`. The probe's context is the encoder's (a memory model's chunk length) unless
  `n_ctx` is given (transformer encoders read any length; mixers only their own). The decoder is fed
  as the preset feeds it (configs/probe.py) unless `feed` is given; it reads the embedding stored at
  `quantize` precision (memjax.models.quantize).
  """
  arch = encoder_section(source.cfg) if source else architecture
  cfg = config("probe.py", scale, family=arch.family, **({"feed": feed} if feed else {}),
               **({"quantize": quantize} if quantize != "none" else {}))
  reuse_encoder(cfg, source, root, embed_index=embed_index, architecture=architecture)
  if n_ctx is not None:
    cfg.data.n_ctx = n_ctx
  elif source is not None:
    cfg.data.n_ctx = encoder_length(source.cfg)
  return cfg


def run_dir(root: pathlib.Path, name: str) -> pathlib.Path:
  return pathlib.Path(root) / RUNS / name


def seed_dir(root: str | pathlib.Path, seed: int) -> pathlib.Path:
  """The workdir of one seed's runs and report: `root` itself for seed 0 (the folders a one-seed
  reproduction has always made), `root/seed<seed>` for the others."""
  return pathlib.Path(root) if seed == 0 else pathlib.Path(root) / f"seed{seed}"


def plan(experiment: "Experiment", scale: str, root: str | pathlib.Path, seed: int = 0) -> list[RunSpec]:
  """An experiment's runs for one seed: its plan in that seed's folder (seed_dir), so a run that reads
  another (a frozen or probed encoder, a curriculum's earlier stage) reads the same seed's, each with
  `cfg.seed = seed`, which seeds both its model's initialization and its training data's order
  (training/program.py, training/loop.py). Seed 0 is every config as planned (seed 0)."""
  specs = experiment.plan(scale, seed_dir(root, seed))
  for spec in specs:
    spec.cfg.seed = seed
  return specs


def set_progress(specs: Iterable[RunSpec], progress: bool, async_checkpoints: bool = True) -> None:
  for spec in specs:
    spec.cfg.train.update(progress=progress, async_checkpoints=async_checkpoints)


def train(specs: Sequence[RunSpec], root: pathlib.Path, label: str = "") -> dict[str, dict[str, Any]]:
  """Trains (or resumes, or just reads back) every run in order; returns each one's final results."""
  from memjax.training import loop, run_folder

  names = [spec.name for spec in specs]
  duplicates = {name for name in names if names.count(name) > 1}
  if duplicates:
    raise ValueError(f"run names must be unique within an experiment: {sorted(duplicates)}")
  results = {}
  for number, spec in enumerate(specs, 1):
    directory = run_dir(root, spec.name)
    finished = directory / run_folder.RESULTS_JSON
    if finished.exists():
      saved = json.loads(finished.read_text())
      check_finished(directory, spec.cfg)  # a different run under this name is an error
      if saved.get("step") == spec.cfg.train.steps:
        print(f"[{number}/{len(specs)}] {label}{spec.name}: done", flush=True)
        results[spec.name] = saved
        continue
    print(f"[{number}/{len(specs)}] {label}{spec.name}", flush=True)
    start = time.perf_counter()
    results[spec.name] = loop.run(spec.cfg, str(directory))
    results[spec.name]["seconds"] = time.perf_counter() - start
    finished.write_text(json.dumps(results[spec.name], indent=2))
    results[spec.name] = results[spec.name] | {"trained_now": True}
  return results


def check_finished(directory: pathlib.Path, cfg: ml_collections.ConfigDict) -> None:
  """Refuses a finished run trained with a different config. Keys its config.json lacks (options
  added to memjax after it was trained) are accepted when they hold their default, as when a run is
  resumed (run_folder.config_differences)."""
  from memjax.training import run_folder

  saved = json.loads((directory / run_folder.CONFIG_JSON).read_text())
  current = json.loads(cfg.to_json_best_effort())
  differences = run_folder.config_differences(saved, current)
  if differences:
    raise ValueError(f"{directory} holds a run with a different config; use a new workdir:\n  "
                     + "\n  ".join(differences))
  added = run_folder.added_at_default(saved, current)
  if added:
    print(f"  ({directory.name}: trained before the options {added} existed; their defaults apply)")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """`plan(scale, root)` lists the runs; `report(context)` turns their results into a summary with
  at least 'table' (markdown) and 'figures' (PNG names written to context.out); `findings(summary)`
  (optional) lists the paper's findings that one seed's summary compares (reporting.finding), whose
  verdicts run_experiment gives over the seeds; `prepare(scale, root)` (optional) makes what the
  runs read but do not train (converted models) before they train (never in a dry run)."""

  name: str
  title: str
  plan: Callable[[str, pathlib.Path], list[RunSpec]]
  report: Callable[["Context"], dict[str, Any]]
  scales: tuple[str, ...] = SCALES
  findings: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
  prepare: Callable[[str, pathlib.Path], None] | None = None


@dataclasses.dataclass(frozen=True)
class Context:
  scale: str
  root: pathlib.Path
  out: pathlib.Path
  specs: dict[str, RunSpec]
  results: dict[str, dict[str, Any]]

  def eval(self, name: str) -> dict[str, float]:
    return self.results[name]["eval"]

  def curve(self, name: str, key: str, split: str = "eval") -> list[tuple[int, float]]:
    """(step, value) of one metric over a run's training, from its metrics.jsonl."""
    from memjax.training.writers import read_metrics

    return [(r["step"], r[key]) for r in read_metrics(run_dir(self.root, name), split) if key in r]


def run_experiment(experiment: Experiment, scale: str, root: str | pathlib.Path, *,
                   progress: bool = True, seeds: int = 1) -> dict[str, Any]:
  """Trains an experiment's runs with `seeds` seeds (0, 1, ...: `plan`) and writes
  <root>/<name>/{results.json, results.md, *.png}: with one seed its report; with more, every measured
  number of the seeds' reports as its mean and interval (reporting.combine: min-max below 4 seeds, a
  95 % t-interval from 4), the verdicts of its findings (reporting.verdict), each seed's own summary in
  results.json's 'per_seed', and seed 0's figures; each seed s > 0 also has its own report in
  <root>/seed<s>/<name>/."""
  from memjax.experiments import reporting

  check_scale(scale, experiment.scales)
  if seeds < 1:
    raise ValueError(f"seeds must be at least 1, got {seeds}")
  root = pathlib.Path(root)
  start = time.perf_counter()
  summaries, texts, numbers = [], [], []
  for seed in range(seeds):
    seed_root = seed_dir(root, seed)
    specs = plan(experiment, scale, root, seed)
    set_progress(specs, progress)
    label = f"{experiment.name}{f' seed {seed}' if seeds > 1 else ''}: "
    if experiment.prepare is not None:
      experiment.prepare(scale, seed_root)
    results = train(specs, seed_root, label=label)
    out = seed_root / experiment.name
    out.mkdir(parents=True, exist_ok=True)
    context = Context(scale, seed_root, out, {s.name: s for s in specs}, results)
    with reporting.recording() as recorded:
      summary = experiment.report(context)
    summary["findings"] = experiment.findings(summary) if experiment.findings else []
    texts.append(summary["table"])
    numbers.append(list(recorded))
    summary["table"] = reporting.render(summary["table"], recorded)
    trained = sum(r.get("seconds", 0.0) for r in results.values() if r.get("trained_now"))
    summary |= {"experiment": experiment.name, "scale": scale, "seed": seed,
                "training_minutes_this_call": trained / 60,
                # what the experiment costs from an empty workdir: every run's own training time,
                # whichever call trained it (runs shared with other experiments included)
                "training_minutes_all_runs": sum(r.get("seconds", 0.0) for r in results.values()) / 60,
                "runs": {name: {"step": r["step"], "eval": r["eval"], "seconds": r.get("seconds"),
                                "trained_now": bool(r.get("trained_now"))}
                         for name, r in results.items()}}
    summaries.append(summary)
    if seed > 0:  # this seed's own report (seed 0's folder holds the combined one)
      _write_report(out, experiment, scale, seed_root, summary, f"seed {seed}")
  found = reporting.verdicts([s.get("findings", []) for s in summaries])
  table = reporting.combine(texts, numbers) + budget_note(specs)
  if found:
    table += ("\n\nVerdicts (docs/results.md's rule: " + reporting.RULE + "):\n\n"
              + reporting.verdict_table(found))
  if seeds == 1:
    summary = summaries[0]
  else:
    summary = reporting.combine_json(summaries) | {"per_seed": summaries}
    summary["training_minutes_this_call"] = sum(s["training_minutes_this_call"] for s in summaries)
    summary["training_minutes_all_runs"] = sum(s["training_minutes_all_runs"] for s in summaries)
  summary |= {"table": table, "seeds": seeds, "interval": reporting.interval_kind(seeds),
              "verdicts": found, "minutes": (time.perf_counter() - start) / 60}
  summary.pop("findings", None)  # per seed (per_seed), and over the seeds in 'verdicts'
  summary.pop("seed", None)
  _write_report(root / experiment.name, experiment, scale, root, summary,
                f"{seeds} seeds (0-{seeds - 1}; seed s > 0 in {root}/seed<s>/)" if seeds > 1 else "seed 0")
  return summary


def budgets(specs: Sequence[RunSpec]) -> dict[str, int]:
  """Each run's training steps, a chained stage's (train.init_from, a run of `specs`) with those of
  the stages before it."""
  by_name = {spec.name: spec for spec in specs}

  def total(spec: RunSpec) -> int:
    source = pathlib.Path(spec.cfg.train.get("init_from", "") or "").name
    return spec.cfg.train.steps + (total(by_name[source]) if source in by_name else 0)

  return {spec.name: total(spec) for spec in specs}


def budget_note(specs: Sequence[RunSpec]) -> str:
  """A line under a report whose runs trained for different numbers of steps, so that rows compared
  across budgets say so ('' where every run trained as long)."""
  groups: dict[int, list[str]] = {}
  for name, steps in budgets(specs).items():
    groups.setdefault(steps, []).append(name)
  if len(groups) < 2:
    return ""
  return ("\n\nTraining budgets differ between these runs (steps; a chained stage counts the stages "
          "before it), so rows of different budgets compare the budgets too: "
          + "; ".join(f"{steps}: {', '.join(names)}" for steps, names in sorted(groups.items())) + ".")


def _write_report(out: pathlib.Path, experiment: Experiment, scale: str, root: pathlib.Path,
                  summary: dict[str, Any], seeds: str) -> None:
  from memjax.experiments import reporting

  (out / "results.json").write_text(json.dumps(summary, indent=2))
  count = summary.get("seeds", 1)
  caption = (f"Each measured number: mean [low, high] over the seeds, the interval being the "
             f"{reporting.interval_kind(count)} (a number the same in every seed: once); per-seed values "
             f"in results.json ('per_seed'); figures of seed 0." if count > 1 else
             "One seed: no interval, so no verdict is resolved (`--seeds=N` trains N seeds).")
  markdown = (f"# {experiment.title}\n\nScale `{scale}`, {seeds}; {len(summary['runs'])} runs (per seed) in "
              f"{root / RUNS}. {caption}\n\n" + summary["table"] + "\n\n"
              + "\n".join(f"![{f}]({f})" for f in summary["figures"]) + "\n")
  (out / "results.md").write_text(markdown)


def evaluate(spec: RunSpec, root: pathlib.Path, stages: str) -> dict[str, float]:
  """The final state of a finished run evaluated on other objectives (e.g. a CLM-only memory model
  on copy): its config with `objective.stages=stages`, its latest checkpoint, held-out batches."""
  cfg = ml_collections.ConfigDict(spec.cfg.to_dict())
  cfg.objective.stages = stages
  cfg.train.steps = max(cfg.train.steps, len(stages.split(",")))  # room for every stage (no training)
  if "restart_stages" in cfg.objective:
    cfg.objective.restart_stages = False  # one optimizer for the evaluated stages (same state layout)
  return _evaluate_final(spec.name, cfg, root)


def evaluate_on(spec: RunSpec, root: pathlib.Path, **data: Any) -> dict[str, float]:
  """The final state of a finished run evaluated on other data (its `cfg.data` keys set to `data`,
  e.g. source='stdlib_code'), tokenized by the run's own tokenizer: held-out batches of its shape."""
  from memjax.training import run_folder

  cfg = ml_collections.ConfigDict(spec.cfg.to_dict())
  cfg.data.update(data)
  cfg.data.tokenizer = str(run_dir(root, spec.name) / run_folder.TOKENIZER_JSON)
  return _evaluate_final(spec.name, cfg, root)


def _evaluate_final(name: str, cfg: ml_collections.ConfigDict, root: pathlib.Path) -> dict[str, float]:
  from memjax.training import checkpoint, loop, run_folder

  trainer = loop.Trainer(cfg)
  with checkpoint.latest(run_dir(root, name) / run_folder.CHECKPOINTS,
                         f"run {name} holds no checkpoint") as (mngr, step):
    state = trainer.program.restore(mngr, step)
  return trainer.evaluate(state)


def families(scale: str) -> tuple[str, ...]:
  """The model families an experiment trains: both, except at `tiny` scale (tests), where only the
  information experiment trains both and the others run mixers (the code paths are the same)."""
  return FAMILIES if scale != "tiny" else ("mixer",)
