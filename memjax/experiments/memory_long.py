"""§5.5 at 4 x 512: memory models reading chunks twice the memory experiment's, against no memory
and the full context at that length.

The paper (§5.5) also trained its memory models at 4 x 512 tokens (2048), beyond the 4 x 256 of the
memory experiment (experiments/memory.py, whose runs this leaves as they are). Each run here is the
memory experiment's run on contexts twice as long (suite.at_length: <name>_c<n_ctx>): 4 chunks of
512 tokens at paper scale, of twice the preset's chunk at the others (cpu: 4 x 32). Eval loss
against step, training tokens/s, and the fraction of the memory loss recovered.
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

LENGTH_FACTOR = 2  # 4 x 512 against the memory experiment's 4 x 256
# (label, memory.kind)
VARIANTS: tuple[tuple[str, str], ...] = (
    ("parallel, fixed slots", "parallel"),
    ("no memory", "none"),
    ("full context", "full"),
)
PAPER = {  # the paper states the 4 x 512 runs without their own numbers: §5.5's findings
    "parallel, fixed slots": "memory >> no memory",
    "no memory": "clearly worse than memory models",
    "full context": "mixer ≈ memory mixer; transformer clearly better than memory transformer",
}


def run(scale: str, family: str, kind: str) -> suite.RunSpec:
  spec = runs.memory(scale, family, kind)
  return suite.at_length(spec, LENGTH_FACTOR * spec.cfg.data.n_ctx)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  return [run(scale, family, kind) for family in suite.families(scale) for _, kind in VARIANTS]


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows, gains = [], [], {}
  for family in suite.families(ctx.scale):
    none = ctx.eval(run(ctx.scale, family, "none").name)["loss"]
    parallel = ctx.eval(run(ctx.scale, family, "parallel").name)["loss"]
    gains[family] = none - parallel
    for label, kind in VARIANTS:
      spec = run(ctx.scale, family, kind)
      metrics = ctx.eval(spec.name)
      row = {"family": family, "model": label, "n_ctx": spec.cfg.data.n_ctx, "eval_loss": metrics["loss"],
             "eval_accuracy": metrics["clm/accuracy"], "tokens_per_s": reporting.tokens_per_second(ctx, spec.name),
             "fraction_recovered": reporting.fraction_recovered(metrics["loss"], none, parallel)}
      rows.append(row)
      table_rows.append([family, label, f"4 x {spec.cfg.data.n_ctx // spec.cfg.memory.chunks}", row["eval_loss"], row["eval_accuracy"],
                         row["tokens_per_s"], row["fraction_recovered"], PAPER[label]])
  table = reporting.markdown_table(["family", "model", "tokens", "eval CE", "accuracy", "train tokens/s",
                                    "fraction of memory loss recovered", "paper (§5.5)"], table_rows)
  table += "\n\n" + reporting.memory_advantage_note(gains)
  families = suite.families(ctx.scale)
  fig, axes = reporting.figure(len(families))
  for ax, family in zip(axes, families):
    spec = run(ctx.scale, family, "parallel")
    chunk = spec.cfg.data.n_ctx // spec.cfg.memory.chunks
    reporting.plot_curves(ax, {label: ctx.curve(run(ctx.scale, family, kind).name, "loss") for label, kind in VARIANTS},
                          title=f"{family} memory models, 4 x {chunk} tokens",
                          ylabel="eval cross-entropy (nats)")
  return {"rows": rows, "memory_advantage": gains, "table": table,
          "figures": [reporting.save(fig, ctx.out / "memory_long.png")]}


# (family or None for every family, first model, second model, the paper: the first's eval CE is
# 'more' or 'less' than the second's), as the memory experiment's
FINDINGS: tuple[tuple[str | None, str, str, str], ...] = (
    (None, "parallel, fixed slots", "no memory", "less"),
    ("transformer", "full context", "parallel, fixed slots", "less"),
)


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  return reporting.family_findings(summary["rows"], "model", "eval_loss",
                                   "{family} eval CE at 4 x 512 (scaled): {first} vs {second}",
                                   lambda family: [f[1:] for f in FINDINGS if f[0] in (None, family)])


EXPERIMENT = suite.Experiment("memory_long", "Memory models at 4 x 512 tokens (paper §5.5)", plan, report,
                              findings=findings)
