"""§5.7 and §8 items 11-12: memory models trained on CLM + copy (and CLM + blank copy) vs CLM only.

Each memory model is evaluated on next-token prediction, copy and blank copy (held-out text, its final
checkpoint), and its encoder is probed (a fresh decoder regenerating a chunk from one memory). The
paper's claim: CLM-only memory encoders hold little (≈5 % of tokens), combined-objective ones form
information-rich memories (copy accuracy reportedly 94.7, unverified) while keeping CLM quality.
At paper scale the reference's own combined run is added: the curriculum's last stage (blank copy ->
copy -> combined, reading a frozen autoencoder's encoder; runs.curriculum), with copy and CLM
accuracy and loss.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

# (label, key of the shared memory model in runs.shared)
MODELS: tuple[tuple[str, str], ...] = (
    ("CLM only", "memory_clm"),
    ("CLM + copy", "memory_combined"),
    ("CLM + blank copy", "memory_combined_blank"),
)
# The reference's combined run (memory_transformer_combined.py, reference-code.md §3.3): the last
# stage of the curriculum autoencoder -> blank copy -> copy -> combined, its encoder the frozen
# autoencoder's (so no probe of its own), batch 64 x 1024 tokens. Planned at paper scale.
CURRICULUM = "curriculum -> CLM + blank copy (frozen AE)"
CURRICULUM_SCALES = ("paper",)
EVAL_STAGES = "clm:1,copy:1,blank_copy"  # every objective evaluated on the final state
PAPER = {"CLM only": "≈5 % of tokens recoverable (probe)", "CLM + copy": "copy 'Hr 94.7', CLM 'Hr 0.684' (unverified)",
         "CLM + blank copy": "combined objective's blank-copy view, from scratch",
         CURRICULUM: "the reference's combined run (memory_transformer_combined.py); paper: memories "
                     "decoded while next-token prediction is learned"}


def curriculum(scale: str, family: str, root: pathlib.Path) -> list[suite.RunSpec]:
  """The curriculum's runs where this scale plans them (its last stage, then the rest), else []."""
  return runs.curriculum(scale, family, root) if scale in CURRICULUM_SCALES else []


def model_names(scale: str, family: str, root: pathlib.Path) -> list[tuple[str, str, str | None]]:
  """(label, run name, key of its probed encoder in runs.shared; None: not probed) per row."""
  rows = [(label, runs.shared(scale, family)[key].name, key) for label, key in MODELS]
  stages = curriculum(scale, family, root)
  return rows + ([(CURRICULUM, stages[-1].name, None)] if stages else [])


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = []
  for family in suite.families(scale):
    specs += [runs.shared(scale, family)[key] for _, key in MODELS]
    specs += [runs.probe(scale, family, key, root) for _, key in MODELS]
    specs += curriculum(scale, family, root)
  return specs


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows = [], []
  for family in suite.families(ctx.scale):
    for label, name, key in model_names(ctx.scale, family, ctx.root):
      cache = ctx.out / f"eval_{name}.json"
      if cache.exists() and json.loads(cache.read_text()).get("step") == ctx.results[name]["step"]:
        metrics = json.loads(cache.read_text())["eval"]
      else:
        metrics = suite.evaluate(ctx.specs[name], ctx.root, EVAL_STAGES)
        cache.write_text(json.dumps({"step": ctx.results[name]["step"], "eval": metrics}))
      probe = ctx.eval(runs.probe_name(family, key)) if key else {}
      row = {"family": family, "model": label,
             "clm_loss": metrics["clm/clm/loss"], "clm_accuracy": metrics["clm/clm/accuracy"],
             "copy_loss": metrics["copy/copy/loss"], "copy_accuracy": metrics["copy/copy/accuracy"],
             "blank_copy_accuracy": metrics["blank_copy/blank_copy/accuracy"],
             "probe_token_accuracy": probe.get("reconstruction/accuracy"),
             "probe_cross_entropy": probe.get("reconstruction/loss")}
      rows.append(row)
      table_rows.append([family, label, row["clm_loss"], row["clm_accuracy"], row["copy_loss"],
                         row["copy_accuracy"], row["blank_copy_accuracy"], row["probe_token_accuracy"],
                         PAPER[label]])
  table = reporting.markdown_table(["family", "objective", "CLM CE", "CLM acc.", "copy CE", "copy acc.",
                                "blank-copy acc.", "probe token acc.", "paper"], table_rows)
  fig, axes = reporting.figure(2)
  for ax, metric, title in ((axes[0], "copy_accuracy", "copy accuracy"),
                            (axes[1], "probe_token_accuracy", "probe of the memory encoder")):
    shown = [r for r in rows if r[metric] is not None]  # the curriculum's encoder has no probe
    reporting.plot_bars(ax, [f"{r['family'][:5]} {r['model']}" for r in shown], [r[metric] for r in shown],
                    title=title, ylabel="held-out token accuracy")
  return {"rows": rows, "table": table, "figures": [reporting.save(fig, ctx.out / "combined.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper: combined-objective memory models copy and hold (probe) more than CLM-only ones."""
  out = []
  for family in dict.fromkeys(r["family"] for r in summary["rows"]):
    by = {r["model"]: r for r in summary["rows"] if r["family"] == family}
    out += [reporting.finding(f"{family} {label}: CLM + copy vs CLM only", by["CLM + copy"][key],
                              by["CLM only"][key], "more")
            for label, key in (("copy acc.", "copy_accuracy"), ("probe token acc.", "probe_token_accuracy"))]
  return out


EXPERIMENT = suite.Experiment("combined", "Combined objectives vs CLM-only memory models (paper §5.7, §8)",
                              plan, report, findings=findings)
