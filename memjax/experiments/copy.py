"""§5.7: can a memory model's decoder copy text it sees only through memories?

The copy task repeats the first half of the input and scores the copied half. Runs per family:
- trainable encoder, tokens visible (copy) — the memory model learns to copy;
- no memory (copy) — what the decoder alone gets from the visible tokens;
- frozen autoencoder encoder, tokens visible — the paper: barely helps (the decoder ignores memories);
- frozen autoencoder encoder, blank copy — the copied inputs are blanks, so memories must be read;
- curriculum: the blank-copy run continued on copy (a chained stage, as the reference trains it);
- negative control: the same continuation without memories (no-memory model, same decoder);
- the curriculum with a frozen causal-LM encoder (the paper: fails — its blank copy is very poor).
The frozen encoders are the information experiment's autoencoder and causal LM (trained on
chunk-length contexts; at paper scale the mixer autoencoder is the reference's copy encoder, d=512,
16 layers, kernel 4: runs.CHUNK_AUTOENCODERS). Chained stages start from the previous stage's
decoder (train.init_from) with fresh AdamW state and schedule. The curriculum's last stage, the
combined objective, is the combined experiment's (experiments/combined.py, paper scale).
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

STEPS = runs.COPY_STEPS  # paper: 100k; elsewhere configs/memory.py's steps at the scale's preset


def families(scale: str) -> tuple[str, ...]:
  """Both families at paper scale; mixers only at cpu scale (and tiny), where the 20-minute budget
  holds one family's eight runs and the paper finds that mixers learn to read memories first."""
  return suite.FAMILIES if scale == "paper" else ("mixer",)


# (label, run suffix, paper's finding)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("trainable encoder, copy", "copy_trainable", "learns to copy"),
    ("no memory, copy", "copy_no_memory", "baseline"),
    ("frozen autoencoder, copy", "copy_frozen_ae", "barely helps"),
    ("frozen autoencoder, blank copy", "blank_copy_frozen_ae", "learns to use memories (mixers first)"),
    ("curriculum blank copy -> copy (frozen AE)", "curriculum_frozen_ae", "copies better than blank copy alone"),
    ("negative control: no memories in the last stage", "curriculum_no_memory", "fails"),
    ("frozen causal LM, blank copy", "blank_copy_frozen_clm", "very poor"),
    ("curriculum blank copy -> copy (frozen causal LM)", "curriculum_frozen_clm", "fails"),
)


def family_runs(scale: str, family: str, root: pathlib.Path) -> list[suite.RunSpec]:
  encoders = runs.chunk_encoders(scale, family, "copy")
  ae, clm = encoders["autoencoder"], encoders["clm"]
  clm_index = runs.embed_index(scale, family, "clm")
  run = lambda *a, **k: runs.copy_run(scale, family, *a, root=root, **k)  # noqa: E731
  blank_copy_ae, curriculum_ae = runs.curriculum(scale, family, root)[1:3]
  return [
      run("copy_trainable", "copy"),
      run("copy_no_memory", "copy", kind="none"),
      run("copy_frozen_ae", "copy", encoder=ae),
      blank_copy_ae,
      curriculum_ae,
      run("curriculum_no_memory", "copy", kind="none", init_from=f"{family}_blank_copy_frozen_ae"),
      run("blank_copy_frozen_clm", "blank_copy", encoder=clm, embed_index=clm_index),
      run("curriculum_frozen_clm", "copy", encoder=clm, embed_index=clm_index,
          init_from=f"{family}_blank_copy_frozen_clm"),
  ]


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = []
  for family in families(scale):
    specs += list(runs.chunk_encoders(scale, family, "copy").values()) + family_runs(scale, family, root)
  return specs


def copy_metrics(metrics: dict[str, float]) -> tuple[float, float]:
  """(copy accuracy, copy loss) of a copy or blank-copy run's final evaluation."""
  key = "copy" if "copy/accuracy" in metrics else "blank_copy"
  return metrics[f"{key}/accuracy"], metrics[f"{key}/loss"]


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows = [], []
  for family in families(ctx.scale):
    for label, suffix, paper in ROWS:
      accuracy, loss = copy_metrics(ctx.eval(f"{family}_{suffix}"))
      rows.append({"family": family, "model": label, "copy_accuracy": accuracy, "copy_loss": loss})
      table_rows.append([family, label, accuracy, loss, paper])
  table = reporting.markdown_table(["family", "model", "copy accuracy", "copy CE", "paper (§5.7)"],
                               table_rows)
  fig, axes = reporting.figure(len(families(ctx.scale)))
  for ax, family in zip(axes, families(ctx.scale)):
    series = {}
    for label, suffix, _ in ROWS:
      name = f"{family}_{suffix}"
      key = "copy/accuracy" if ctx.curve(name, "copy/accuracy") else "blank_copy/accuracy"
      points = ctx.curve(name, key)
      if suffix.startswith("curriculum"):  # a continuation: plot after its first stage
        offset = ctx.results[ctx.specs[name].cfg.train.init_from.rsplit("/", 1)[-1]]["step"]
        points = [(step + offset, value) for step, value in points]
      series[label] = points
    reporting.plot_curves(ax, series, title=f"{family}: copy accuracy (held out)", ylabel="token accuracy")
  return {"rows": rows, "table": table, "figures": [reporting.save(fig, ctx.out / "copy.png")]}


# (first row's suffix, second row's, the paper: the first's copy accuracy is 'more' or 'less'); a
# curriculum row has trained its blank-copy stage too (twice a single row's steps).
FINDINGS: tuple[tuple[str, str, str], ...] = (
    ("copy_trainable", "copy_no_memory", "more"),
    ("curriculum_frozen_ae", "blank_copy_frozen_ae", "more"),
    ("curriculum_no_memory", "curriculum_frozen_ae", "less"),
    ("curriculum_frozen_clm", "curriculum_frozen_ae", "less"),
)


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  out = []
  labels = {suffix: label for label, suffix, _ in ROWS}
  for family in dict.fromkeys(r["family"] for r in summary["rows"]):
    accuracy = {r["model"]: r["copy_accuracy"] for r in summary["rows"] if r["family"] == family}
    out += [reporting.finding(f"{family} copy acc.: {labels[first]} vs {labels[second]}",
                              accuracy[labels[first]], accuracy[labels[second]], paper)
            for first, second, paper in FINDINGS]
  return out


EXPERIMENT = suite.Experiment("copy", "Copy, blank copy and curricula (paper §5.7)", plan, report,
                              findings=findings)
