"""Issue 21 §2: how few bytes can a memory take before the decoder stops copying through it?

The copy curriculum's memory model (experiments/copy.py: a mixer decoder reading a frozen
autoencoder encoder, blank copy then copy, chained runs) trained once per memory.quantize setting
(memjax.models.quantize: none, bf16, int8, int4, binary; straight-through rounding). Both stages
store memories at the setting's precision. The 'none' runs are the copy experiment's own (one name,
one config). Per setting, an information probe (configs/probe.py, quantize=...) of the same frozen
encoder: a fresh decoder regenerating the chunk from its quantised embedding, which is what the
memory model reads (the encoder is frozen, so settings differ only by the quantiser); its 'none'
probe is the information experiment's where the chunk autoencoder is the shared one. Reported:
bytes per memory and per chunk token, the generation benchmark's storage of one sequence at the
run's context (its memories, and the decoder's cache, which stays float), probe token accuracy,
copy loss (the copy stage's only loss) and accuracy of the final stage, and the smallest bytes per
token whose copy accuracy is still >= 90 % of the float setting's.
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


def probe_run(scale: str, mode: str, root: pathlib.Path) -> suite.RunSpec:
  """The information probe of the chunk autoencoder's encoder, reading its embedding stored at
  `mode`: <family>_probe_<autoencoder>[_<mode>] (at 'none' the information experiment's probe when
  the chunk autoencoder is the shared autoencoder, as at tiny and cpu scale)."""
  fam = family(scale)
  ae = runs.chunk_encoders(scale, fam, "copy")["autoencoder"]
  shared = ae.name == runs.shared(scale, fam)["autoencoder"].name
  name = runs.probe_name(fam, "autoencoder") if shared else f"{fam}_probe_{ae.name.removeprefix(fam + '_')}"
  cfg = suite.probe(scale, ae, root, embed_index=runs.embed_index(scale, fam, "autoencoder"), quantize=mode)
  return suite.RunSpec(name if mode == "none" else f"{name}_{mode}", cfg)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = [runs.chunk_encoders(scale, family(scale), "copy")["autoencoder"]]
  for mode in settings(scale):
    specs += setting_runs(scale, mode, root) + [probe_run(scale, mode, root)]
  return specs


def generation_bytes(cfg: Any) -> dict[str, int]:
  """What the generation benchmark (memjax.generation.benchmark) stores for one sequence at the run's
  context: its memories (benchmark.memory_bytes: packed codes and scales of the chunks - 1 slots)
  and the decoder's cache (Generator.cache_bytes; float whatever the setting)."""
  from flax import nnx

  from memjax import models
  from memjax.generation import benchmark
  from memjax.generation.generator import Generator

  model = models.build_model(cfg, nnx.Rngs(0))
  generator = Generator(model, cfg.data.n_ctx)
  state, _, _ = generator.inputs([[0]])
  return {"memories_bytes": benchmark.memory_bytes(model)["memories_bytes"],
          "kv_cache_bytes": generator.cache_bytes(state)}


def smallest_kept(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
  """The row of fewest bytes per token whose copy accuracy is >= KEEP x the float setting's."""
  floor = KEEP * next(r["copy_accuracy"] for r in rows if r["quantize"] == "none")
  kept = [r for r in rows if r["copy_accuracy"] >= floor]
  return min(kept, key=lambda r: r["bytes_per_token"]) if kept else None


def _whole(x: float) -> float | int:
  """Bytes as an integer where they are one (the tables print floats to 3 decimals)."""
  return int(x) if float(x).is_integer() else x


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows = [], []
  for mode in settings(ctx.scale):  # 'none' first: the float memories the others are compared with
    blank, copy = setting_runs(ctx.scale, mode, ctx.root)
    accuracy, loss = copy_metrics(ctx.eval(copy.name))
    float_accuracy = rows[0]["copy_accuracy"] if rows else accuracy  # kept: None where it is 0 (tiny)
    d, chunk = copy.cfg.decoder.d_model, suite.encoder_length(copy.cfg)
    per_memory = quant.bytes_per_memory(mode, d)
    probe = reporting.probe_row(ctx.results[probe_run(ctx.scale, mode, ctx.root).name])
    rows.append({"quantize": mode, "bytes_per_memory": per_memory, "bytes_per_token": per_memory / chunk,
                 **generation_bytes(copy.cfg), "probe_token_accuracy": probe["token_accuracy"],
                 "probe_loss": probe["cross_entropy"], "copy_accuracy": accuracy, "copy_loss": loss,
                 "kept": accuracy / float_accuracy if float_accuracy else None,
                 "blank_copy_accuracy": copy_metrics(ctx.eval(blank.name))[0]})
    r = rows[-1]
    table_rows.append([mode, _whole(per_memory), reporting.number(r["bytes_per_token"], "{:g}"),
                       _whole(r["memories_bytes"]), r["kv_cache_bytes"], r["probe_token_accuracy"],
                       r["probe_loss"], accuracy, r["kept"], loss, r["blank_copy_accuracy"],
                       copy.cfg.train.steps + blank.cfg.train.steps])
  table = reporting.markdown_table(
      ["memory.quantize", "bytes / memory", "bytes / token", "memories bytes (generation)",
       "decoder cache bytes (generation)", "probe token acc.", "probe CE", "copy acc.",
       "copy acc. / float's", "copy CE (the loss)", "blank-copy acc.", "steps (blank copy + copy)"],
      table_rows)
  best = smallest_kept(rows)
  table += ("\n\nSmallest memory keeping copy accuracy >= 90 % of the float setting's: "
            + (f"{best['quantize']} ({reporting.number(best['bytes_per_token'], '{:g}')} bytes per token)"
               if best else "none"))
  fig, (ax, probe_ax) = reporting.figure(2)
  series, probes = {}, {}
  for mode in settings(ctx.scale):
    blank, copy = setting_runs(ctx.scale, mode, ctx.root)
    offset = ctx.results[blank.name]["step"]
    series[mode] = [(step + offset, value) for step, value in ctx.curve(copy.name, "copy/accuracy")]
    probes[mode] = ctx.curve(probe_run(ctx.scale, mode, ctx.root).name, "reconstruction/accuracy")
  reporting.plot_curves(ax, series, title="curriculum copy stage: copy accuracy (held out)",
                        ylabel="token accuracy")
  reporting.plot_curves(probe_ax, probes, title="probe of the quantised memories (held out)",
                        ylabel="token accuracy")
  return {"rows": rows, "table": table,
          "figures": [reporting.save(fig, ctx.out / "quantize.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper's background claim (§8, blog): embeddings quantise to 8 bits; here, int8 memories
  keep more than 90 % of the float memories' copy accuracy. Then the issue's rule for every other
  quantised setting (issue 21 §2: which settings keep >= 90 %), so that each has a verdict over the
  seeds (reporting.verdict) beside the means' answer in docs/results.md."""
  accuracy = {r["quantize"]: r["copy_accuracy"] for r in summary["rows"]}
  floor = KEEP * accuracy["none"]
  out = [reporting.finding("copy acc.: int8 memories vs 90 % of float memories", accuracy["int8"], floor,
                           "more")]
  return out + [reporting.finding(f"copy acc.: {mode} memories vs 90 % of float memories "
                                  "(issue 21's rule)", accuracy[mode], floor, "more")
                for mode in accuracy if mode not in ("none", "int8")]


EXPERIMENT = suite.Experiment("quantize", "Quantised memories (issue 21 §2)", plan, report,
                              findings=findings)
