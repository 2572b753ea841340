"""§5.5: the parallel memory model against no memory, the full context and a recurrent memory (RMT).

Every model reads 4 chunks and is trained on next-token prediction; eval loss against step, training
tokens/s, and the fraction of the memory loss recovered, (L_none - L) / (L_none - L_parallel), for
masked mixers and transformers, with fixed and variable memory slots.
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

# (label, memory.kind, memory.slots)
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("parallel, fixed slots", "parallel", "fixed"),
    ("parallel, variable slots", "parallel", "variable"),
    ("no memory", "none", "fixed"),
    ("full context", "full", "fixed"),
    ("recurrent (RMT)", "recurrent", "fixed"),
)
# The paper's findings (§5.5, 200k steps, 4 x 256 tokens): qualitative, no table of numbers.
PAPER = {
    "parallel, fixed slots": "memory >> no memory; mixer ≈ full context per step",
    "parallel, variable slots": "slightly worse than fixed (transformers)",
    "no memory": "clearly worse than memory models",
    "full context": "mixer ≈ memory mixer; transformer clearly better than memory transformer",
    "recurrent (RMT)": "slightly worse than parallel",
}


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  return [runs.memory(scale, family, kind, slots=slots) for family in suite.families(scale)
          for _, kind, slots in VARIANTS]


def run_name(scale: str, family: str, kind: str, slots: str) -> str:
  return runs.memory(scale, family, kind, slots=slots).name


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows, gains = [], [], {}
  for family in suite.families(ctx.scale):
    none = ctx.eval(run_name(ctx.scale, family, "none", "fixed"))["loss"]
    parallel = ctx.eval(run_name(ctx.scale, family, "parallel", "fixed"))["loss"]
    gains[family] = none - parallel
    for label, kind, slots in VARIANTS:
      name = run_name(ctx.scale, family, kind, slots)
      metrics = ctx.eval(name)
      row = {"family": family, "model": label, "eval_loss": metrics["loss"],
             "eval_accuracy": metrics["clm/accuracy"], "bits_per_byte": metrics["clm/bits_per_byte"],
             "tokens_per_s": reporting.tokens_per_second(ctx, name),
             "fraction_recovered": reporting.fraction_recovered(metrics["loss"], none, parallel)}
      rows.append(row)
      table_rows.append([family, label, row["eval_loss"], row["eval_accuracy"], row["tokens_per_s"],
                         row["fraction_recovered"], PAPER[label]])
  table = reporting.markdown_table(["family", "model", "eval CE", "accuracy", "train tokens/s",
                                "fraction of memory loss recovered", "paper (§5.5)"], table_rows)
  table += "\n\n" + reporting.memory_advantage_note(gains)
  fig, axes = reporting.figure(3)
  for ax, family in zip(axes, suite.families(ctx.scale)):
    reporting.plot_curves(ax, {label: ctx.curve(run_name(ctx.scale, family, kind, slots), "loss")
                           for label, kind, slots in VARIANTS},
                      title=f"{family} memory models", ylabel="eval cross-entropy (nats)")
  labels = [f"{r['family'][:5]} {r['model']}" for r in rows]
  reporting.plot_bars(axes[2], labels, [r["tokens_per_s"] for r in rows], title="training throughput",
                  ylabel="tokens / s (this machine)", fmt="{:.0f}")
  return {"rows": rows, "memory_advantage": gains, "table": table,
          "figures": [reporting.save(fig, ctx.out / "memory.png")]}


# (family or None for every family, first model, second model, the paper: the first's eval CE is
# 'more' or 'less' than the second's)
FINDINGS: tuple[tuple[str | None, str, str, str], ...] = (
    (None, "parallel, fixed slots", "no memory", "less"),
    (None, "recurrent (RMT)", "parallel, fixed slots", "more"),
    ("transformer", "full context", "parallel, fixed slots", "less"),
    ("transformer", "parallel, variable slots", "parallel, fixed slots", "more"),
)


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  return reporting.family_findings(summary["rows"], "model", "eval_loss", "{family} eval CE: {first} vs {second}",
                                   lambda family: [f[1:] for f in FINDINGS if f[0] in (None, family)])


EXPERIMENT = suite.Experiment("memory", "Memory models vs no memory, full context and recurrence (paper §5.5)",
                              plan, report, findings=findings)
