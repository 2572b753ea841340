"""Issue 21 §2: how few bytes can a memory take before the decoder stops copying through it?

The copy curriculum's memory model (experiments/copy.py: a mixer decoder reading a frozen
autoencoder encoder, blank copy then copy, chained runs) trained once per memory.quantize setting
(memjax.models.quantize: none, bf16, int8, int4, binary; straight-through rounding). Both stages
store memories at the setting's precision. The 'none' runs are the copy experiment's own (one name,
one config). Reported: bytes per memory and per chunk token, copy loss and accuracy of the final
stage, and the smallest bytes per token whose copy accuracy is still >= 90 % of the float setting's.
Probe token accuracy of the quantised memories is not measured.
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite
from memjax.experiments.copy import copy_metrics
from memjax.models import quantize as quant

SETTINGS: tuple[str, ...] = quant.MODES
TINY_SETTINGS = ("none", "int8", "binary")  # the tests: a byte-sized and a one-bit setting beside float


def settings(scale: str) -> tuple[str, ...]:
  return TINY_SETTINGS if scale == "tiny" else SETTINGS
KEEP = 0.9  # the fraction of the float setting's copy accuracy a smaller memory must keep


def family(scale: str) -> str:
  return "mixer"  # the copy experiment's cpu-scale family: mixers learn to read memories first


def setting_runs(scale: str, mode: str, root: pathlib.Path) -> list[suite.RunSpec]:
  """(blank copy, curriculum copy stage) with memories stored at `mode`."""
  fam = family(scale)
  if mode == "none":
    return runs.curriculum(scale, fam, root)[1:3]
  ae = runs.chunk_encoders(scale, fam, "copy")["autoencoder"]
  blank = runs.copy_run(scale, fam, f"blank_copy_frozen_ae_{mode}", "blank_copy", root, encoder=ae)
  copy = runs.copy_run(scale, fam, f"curriculum_frozen_ae_{mode}", "copy", root, encoder=ae,
                       init_from=blank.name)
  for spec in (blank, copy):
    spec.cfg.memory.quantize = mode
  return [blank, copy]


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = [runs.chunk_encoders(scale, family(scale), "copy")["autoencoder"]]
  for mode in settings(scale):
    specs += setting_runs(scale, mode, root)
  return specs


def smallest_kept(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
  """The row of fewest bytes per token whose copy accuracy is >= KEEP x the float setting's."""
  floor = KEEP * next(r["copy_accuracy"] for r in rows if r["quantize"] == "none")
  kept = [r for r in rows if r["copy_accuracy"] >= floor]
  return min(kept, key=lambda r: r["bytes_per_token"]) if kept else None


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows = [], []
  for mode in settings(ctx.scale):
    blank, copy = setting_runs(ctx.scale, mode, ctx.root)
    accuracy, loss = copy_metrics(ctx.eval(copy.name))
    d, chunk = copy.cfg.decoder.d_model, suite.encoder_length(copy.cfg)
    per_memory = quant.bytes_per_memory(mode, d)
    rows.append({"quantize": mode, "bytes_per_memory": per_memory, "bytes_per_token": per_memory / chunk,
                 "copy_accuracy": accuracy, "copy_loss": loss,
                 "blank_copy_accuracy": copy_metrics(ctx.eval(blank.name))[0]})
    table_rows.append([mode, per_memory, per_memory / chunk, accuracy, loss, rows[-1]["blank_copy_accuracy"],
                       "not measured", copy.cfg.train.steps + blank.cfg.train.steps])
  table = reporting.markdown_table(
      ["memory.quantize", "bytes / memory", "bytes / token", "copy acc.", "copy CE", "blank-copy acc.",
       "probe token acc.", "steps (blank copy + copy)"], table_rows)
  best = smallest_kept(rows)
  table += ("\n\nSmallest memory keeping copy accuracy >= 90 % of the float setting's: "
            + (f"{best['quantize']} ({reporting.number(best['bytes_per_token'])} bytes per token)"
               if best else "none"))
  fig, (ax,) = reporting.figure(1)
  series = {}
  for mode in settings(ctx.scale):
    blank, copy = setting_runs(ctx.scale, mode, ctx.root)
    offset = ctx.results[blank.name]["step"]
    series[mode] = [(step + offset, value) for step, value in ctx.curve(copy.name, "copy/accuracy")]
  reporting.plot_curves(ax, series, title="curriculum copy stage: copy accuracy (held out)",
                        ylabel="token accuracy")
  return {"rows": rows, "table": table,
          "figures": [reporting.save(fig, ctx.out / "quantize.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper's background claim (§8, blog): embeddings quantise to 8 bits; here, int8 memories
  keep more than 90 % of the float memories' copy accuracy."""
  accuracy = {r["quantize"]: r["copy_accuracy"] for r in summary["rows"]}
  return [reporting.finding("copy acc.: int8 memories vs 90 % of float memories", accuracy["int8"],
                            KEEP * accuracy["none"], "more")]


EXPERIMENT = suite.Experiment("quantize", "Quantised memories (issue 21 §2)", plan, report,
                              findings=findings)
