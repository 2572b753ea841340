"""§5.2's trend: how much of its input one embedding holds falls with the context length.

Masked mixers (a mixer's token mixing is sized to its context, so every length trains its own causal
LM and autoencoder) at four context lengths; each encoder is probed at its own length. The paper
measures this on pretrained LLMs (BERT-large 40.2 % of tokens at 16, 11.6 % at 64, 6.6 % at 256,
5.96 % at 512); its autoencoders fall less (< 0.03 CE at 256 tokens, ≈0.3 at 512).
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

LENGTHS = {"tiny": (16, 32), "cpu": (4, 8, 16, 32), "paper": (16, 64, 256, 512)}
FAMILY = "mixer"
ENCODERS = (("Causal LM", "clm"), ("Autoencoder", "autoencoder"))  # (label, key in runs.shared)
PAPER_BERT = {16: 0.402, 64: 0.116, 256: 0.066, 512: 0.0596}  # BERT-large token accuracy (§5.2)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = []
  for n_ctx in LENGTHS[scale]:
    specs += [runs.probed(scale, FAMILY, key, n_ctx) for _, key in ENCODERS]
    specs += [runs.probe(scale, FAMILY, key, root, n_ctx) for _, key in ENCODERS]
  return specs


def report(ctx: suite.Context) -> dict[str, Any]:
  rows = []
  for n_ctx in LENGTHS[ctx.scale]:
    for label, key in ENCODERS:
      name = runs.probe(ctx.scale, FAMILY, key, ctx.root, n_ctx).name
      rows.append(reporting.probe_row(ctx.results[name], family=FAMILY, encoder=label, n_ctx=n_ctx))
  table = reporting.markdown_table(
      ["n_ctx", "encoder", "CE", "I_e", "token acc.", "paper: BERT-large acc. at this n_ctx"],
      [[r["n_ctx"], r["encoder"], r["cross_entropy"], r["entropy_proportion"], r["token_accuracy"],
        PAPER_BERT.get(r["n_ctx"]) if r["encoder"] == "Causal LM" else None] for r in rows])
  fig, axes = reporting.figure(1, width=6)
  reporting.plot_curves(axes[0], {label: [(r["n_ctx"], r["token_accuracy"]) for r in rows if r["encoder"] == label]
                              for label, _ in ENCODERS}
                    | {"paper: BERT-large (FineWeb)": sorted(PAPER_BERT.items())},
                    title="probe token accuracy vs context length", xlabel="n_ctx",
                    ylabel="held-out token accuracy")
  axes[0].set_xscale("log", base=2)
  return {"rows": rows, "table": table, "figures": [reporting.save(fig, ctx.out / "context_length.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper: one embedding holds less of a longer context (probe token accuracy falls with n_ctx)."""
  out = []
  for label, _ in ENCODERS:
    by_length = {r["n_ctx"]: r["token_accuracy"] for r in summary["rows"] if r["encoder"] == label}
    short, long = min(by_length), max(by_length)
    out.append(reporting.finding(f"{FAMILY} {label} probe token acc.: n_ctx {short} vs {long}",
                                 by_length[short], by_length[long], "more"))
  return out


EXPERIMENT = suite.Experiment("context_length", "Probe accuracy vs context length (paper §5.2)", plan, report,
                              findings=findings)
