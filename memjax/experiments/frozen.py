"""§5.6: memory models reading a frozen autoencoder's encoder, against trainable and no memories.

Per family, CLM-trained memory models with (a) a trainable encoder, (b) no memory, (c) the frozen
encoder of an autoencoder trained on chunk-length contexts; the fraction of the memory loss
recovered, (L_none - L_frozen) / (L_none - L_trainable), at every evaluation during training; and a
transformer decoder reading a frozen *mixer* autoencoder's encoder (the paper: worse than no memory
early in training). Training throughput shows what freezing the encoder saves. At paper scale the
frozen mixer autoencoder is the reference's (frozen_mixer_trainer.py: d=512, 8 layers, kernel 16;
runs.CHUNK_AUTOENCODERS); every run trains at the memory models' batch, so that the fraction
recovered compares equal steps (the reference's frozen run took 64 sequences: docs/differences.md).
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

PAPER = {
    "trainable encoder": "reference (1.0)",
    "no memory": "0.0",
    "frozen autoencoder encoder": "rises over training; mixer > transformer",
    "frozen mixer autoencoder encoder": "transformer decoder: worse than no memory early in training",
}


def frozen_run(scale: str, family: str, encoder: suite.RunSpec, root: pathlib.Path, name: str) -> suite.RunSpec:
  cfg = suite.reuse_encoder(runs.memory(scale, family).cfg, encoder, root)
  return suite.RunSpec(name, cfg)


def family_runs(scale: str, family: str, root: pathlib.Path) -> dict[str, suite.RunSpec]:
  ae = runs.chunk_encoders(scale, family, "frozen")["autoencoder"]
  specs = {"trainable encoder": runs.memory(scale, family),
           "no memory": runs.memory(scale, family, "none"),
           "frozen autoencoder encoder": frozen_run(scale, family, ae, root, f"{family}_memory_frozen_ae")}
  if family == "transformer":  # (not at tiny scale, which trains mixers only)
    mixer_ae = runs.chunk_encoders(scale, "mixer", "frozen")["autoencoder"]
    specs["frozen mixer autoencoder encoder"] = frozen_run(scale, family, mixer_ae, root,
                                                           "transformer_memory_frozen_mixer_ae")
  return specs


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = [runs.chunk_encoders(scale, family, "frozen")["autoencoder"] for family in suite.families(scale)]
  for family in suite.families(scale):
    specs += family_runs(scale, family, root).values()
  return specs


def fraction_curve(ctx: suite.Context, name: str, none: str, trainable: str) -> list[tuple[int, float]]:
  by_step = lambda run: dict(ctx.curve(run, "loss"))  # noqa: E731
  frozen, no_memory, full = by_step(name), by_step(none), by_step(trainable)
  return [(step, reporting.fraction_recovered(frozen[step], no_memory[step], full[step]))
          for step in sorted(frozen) if step in no_memory and step in full]


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows, curves, gains = [], [], {}, {}
  for family in suite.families(ctx.scale):
    specs = family_runs(ctx.scale, family, ctx.root)
    none, trainable = specs["no memory"].name, specs["trainable encoder"].name
    gains[family] = ctx.eval(none)["loss"] - ctx.eval(trainable)["loss"]
    for label, spec in specs.items():
      loss = ctx.eval(spec.name)["loss"]
      fractions = fraction_curve(ctx, spec.name, none, trainable)
      row = {"family": family, "model": label, "eval_loss": loss,
             "fraction_recovered": fractions[-1][1] if fractions else None,
             "fraction_recovered_first_eval": fractions[0][1] if fractions else None,
             "tokens_per_s": reporting.tokens_per_second(ctx, spec.name)}
      rows.append(row)
      table_rows.append([family, label, loss, row["fraction_recovered_first_eval"],
                         row["fraction_recovered"], row["tokens_per_s"], PAPER[label]])
      if label.startswith("frozen"):
        curves[f"{family} decoder, {label}"] = fractions
  table = reporting.markdown_table(["decoder", "memory", "eval CE", "fraction recovered (first eval)",
                                "fraction recovered (end)", "train tokens/s", "paper (§5.6)"],
                               table_rows)
  table += "\n\n" + reporting.memory_advantage_note(gains)
  fig, axes = reporting.figure(2)
  reporting.plot_curves(axes[0], curves, title="fraction of memory loss recovered",
                    ylabel="(L_none - L) / (L_none - L_trainable)")
  axes[0].axhline(0.0, color="grey", lw=0.8)
  reporting.plot_curves(axes[1], {f"{r['family']} {r['model']}": ctx.curve(spec.name, "loss")
                              for r, spec in zip(rows, [s for f in suite.families(ctx.scale)
                                                        for s in family_runs(ctx.scale, f, ctx.root).values()])},
                    title="eval loss", ylabel="cross-entropy (nats)")
  return {"rows": rows, "fraction_curves": curves, "memory_advantage": gains, "table": table,
          "figures": [reporting.save(fig, ctx.out / "frozen.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper: the frozen encoder's fraction of memory loss recovered rises over training, more for
  mixers than transformers; a transformer decoder reading a mixer's is worse than no memory early."""
  out, end = [], {}
  for row in summary["rows"]:
    first, last = row["fraction_recovered_first_eval"], row["fraction_recovered"]
    if first is None or last is None:
      continue
    if row["model"] == "frozen autoencoder encoder":
      end[row["family"]] = last
      out.append(reporting.finding(f"{row['family']} decoder, frozen AE: fraction recovered at the end vs "
                                   "the first eval", last, first, "more"))
    if row["model"] == "frozen mixer autoencoder encoder":
      out.append(reporting.finding("transformer decoder, frozen mixer AE: fraction recovered at the first "
                                   "eval vs 0 (no memory)", first, 0.0, "less"))
  if len(end) == 2:
    out.append(reporting.finding("fraction recovered at the end: mixer vs transformer", end["mixer"],
                                 end["transformer"], "more"))
  return out


EXPERIMENT = suite.Experiment("frozen", "Frozen autoencoder encoders in memory models (paper §5.6)", plan, report,
                              findings=findings)
