"""§5.2's trend: how much of its input one embedding holds falls with the context length.

Masked mixers (a mixer's token mixing is sized to its context, so every length trains its own causal
LM and autoencoder) at four context lengths; each encoder is probed at its own length. The paper
measures this on pretrained LLMs (BERT-large 40.2 % of tokens at 16, 11.6 % at 64, 6.6 % at 256,
5.96 % at 512); its autoencoders fall less (< 0.03 CE at 256 tokens, ≈0.3 at 512).
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import information, suite

LENGTHS = {"tiny": (16, 32), "cpu": (4, 8, 16, 32), "paper": (16, 64, 256, 512)}
FAMILY = "mixer"
ENCODERS = (("Causal LM", "clm", -2), ("Autoencoder", "autoencoder", -1))
PAPER_BERT = {16: 0.402, 64: 0.116, 256: 0.066, 512: 0.0596}  # BERT-large token accuracy (§5.2)


def trained(scale: str, n_ctx: int) -> dict[str, suite.RunSpec]:
  base = information.trained_runs(scale, FAMILY)
  return {key: suite.at_length(base[key], n_ctx) for key in ("clm", "autoencoder")}


def probe_spec(scale: str, root: pathlib.Path, n_ctx: int, label: str, key: str, index: int) -> suite.RunSpec:
  source = trained(scale, n_ctx)[key]
  if source.cfg.data.n_ctx == information.trained_runs(scale, FAMILY)[key].cfg.data.n_ctx:
    name = information.probe_name(FAMILY, label)  # shared with the information experiment
  else:
    name = f"{FAMILY}_probe_{key}_c{n_ctx}"
  return suite.RunSpec(name, suite.probe(scale, information.STEPS["probe"], source, root, embed_index=index))


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = []
  for n_ctx in LENGTHS[scale]:
    specs += trained(scale, n_ctx).values()
    specs += [probe_spec(scale, root, n_ctx, label, key, index) for label, key, index in ENCODERS]
  return specs


def report(ctx: suite.Context) -> dict[str, Any]:
  rows = []
  for n_ctx in LENGTHS[ctx.scale]:
    for label, key, index in ENCODERS:
      name = probe_spec(ctx.scale, ctx.root, n_ctx, label, key, index).name
      rows.append(suite.probe_row(ctx.results[name], family=FAMILY, encoder=label, n_ctx=n_ctx))
  table = suite.markdown_table(
      ["n_ctx", "encoder", "CE", "I_e", "token acc.", "paper: BERT-large acc. at this n_ctx"],
      [[r["n_ctx"], r["encoder"], r["cross_entropy"], r["entropy_proportion"], r["token_accuracy"],
        PAPER_BERT.get(r["n_ctx"]) if r["encoder"] == "Causal LM" else None] for r in rows])
  fig, axes = suite.figure(1, width=6)
  suite.plot_curves(axes[0], {label: [(r["n_ctx"], r["token_accuracy"]) for r in rows if r["encoder"] == label]
                              for label, _, _ in ENCODERS}
                    | {"paper: BERT-large (FineWeb)": sorted(PAPER_BERT.items())},
                    title="probe token accuracy vs context length", xlabel="n_ctx",
                    ylabel="held-out token accuracy")
  axes[0].set_xscale("log", base=2)
  return {"rows": rows, "table": table, "figures": [suite.save(fig, ctx.out / "context_length.png")]}


EXPERIMENT = suite.Experiment("context_length", "Probe accuracy vs context length (paper §5.2)", plan, report)
