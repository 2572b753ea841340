"""§5.1's retrieval rows: how much of its input one embedding of a retrieval-trained encoder holds.

A causal LM and an autoencoder (the shared runs the information experiment probes) each continued on
the InfoNCE single-embedding 7-gram retrieval objective alone (runs.retrieval), then probed exactly
as the other encoders (runs.probe: a fresh decoder regenerating the input from the frozen
embedding), beside the probes of the untrained encoder, the causal LM and the autoencoder (the same
runs as the information experiment's, shared, not retrained). As the paper: causal → retrieval for
mixers and transformers, autoencoder → retrieval for mixers.
"""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

from memjax.experiments import information, reporting, runs, suite

# (encoder label, key of the probed run: runs.shared or runs.RETRIEVAL_BASES, None for untrained)
ENCODERS: tuple[tuple[str, str | None], ...] = (
    ("Untrained", None),
    ("Causal LM", "clm"),
    ("Causal → Retrieval", "clm_retrieval"),
    ("Autoencoder", "autoencoder"),
    ("Autoencoder → Retrieval", "autoencoder_retrieval"),
)
# The paper has no transformer autoencoder → retrieval row (§5.1), so it is not trained.
OMITTED = {("transformer", "autoencoder_retrieval")}
# The paper's tables (§5.1; cross-entropy, I_e, token accuracy; n_ctx 512, 8k vocabulary).
PAPER = {**{key: value for key, value in information.PAPER.items()
            if key[1] in ("Untrained", "Causal LM", "Autoencoder")},
         ("mixer", "Causal → Retrieval"): (5.594, 0.381, 0.0476),
         ("mixer", "Autoencoder → Retrieval"): (5.767, 0.361, 0.0447),
         ("transformer", "Causal → Retrieval"): (6.380, 0.293, 0.0438)}
# (first encoder, second encoder, the paper: the first's probe entropy proportion I_e is 'more' than
# the second's), by family; §5.1: "mixer retrieval slightly up, transformer retrieval slightly down vs
# causal" (I_e 0.381 vs 0.356 mixers, 0.293 vs 0.311 transformers), autoencoder → retrieval far below
# the autoencoder (0.361 vs 0.831). By I_e, not token accuracy: the paper's mixer token accuracies
# (0.0476 vs 0.0479) tie, and go against its own words.
FINDINGS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "mixer": (("Causal → Retrieval", "Causal LM", "more"), ("Autoencoder → Retrieval", "Autoencoder", "less")),
    "transformer": (("Causal → Retrieval", "Causal LM", "less"),),
}


def encoders(family: str) -> list[tuple[str, str | None]]:
  return [(label, key) for label, key in ENCODERS if (family, key) not in OMITTED]


def plan(scale: str, root: pathlib.Path, families: Sequence[str] = suite.FAMILIES) -> list[suite.RunSpec]:
  """Per family: the causal LM and autoencoder, their retrieval continuations, then every probe."""
  specs = []
  for family in families:
    keys = [key for _, key in encoders(family)]
    shared = runs.shared(scale, family)
    specs += [shared[key] for key in keys if key in shared]
    specs += [runs.retrieval(scale, family, key, root) for key in keys if key in runs.RETRIEVAL_BASES]
    specs += [runs.probe(scale, family, key, root) for key in keys]
  return specs


def report(ctx: suite.Context, families: Sequence[str] = suite.FAMILIES) -> dict[str, Any]:
  """The probes' table beside the paper's, each retrieval run's retrieval accuracy, and a figure."""
  rows = [reporting.probe_row(ctx.results[runs.probe_name(family, key)], family=family, encoder=label)
          for family in families for label, key in encoders(family)]
  table_rows = [[r["family"], r["encoder"], r["cross_entropy"], r["entropy_proportion"], r["token_accuracy"],
                 *PAPER.get((r["family"], r["encoder"]), (None, None, None))] for r in rows]
  table = reporting.markdown_table(
      ["family", "encoder", "CE", "I_e", "token acc.", "paper CE", "paper I_e", "paper acc."], table_rows)
  retrieval = []
  for family in families:
    for label, key in encoders(family):
      if key in runs.RETRIEVAL_BASES:
        name = runs.retrieval(ctx.scale, family, key, ctx.root).name
        metrics = ctx.eval(name)
        retrieval.append({"family": family, "encoder": label, "run": name,
                          "accuracy": metrics["retrieval/accuracy"], "chance": metrics["retrieval/chance"],
                          "loss": metrics["retrieval/loss"]})
  table += "\n\nRetrieval runs (held-out top-1 7-gram retrieval among a batch's documents):\n\n"
  table += reporting.markdown_table(["family", "encoder", "retrieval acc.", "chance", "InfoNCE loss"],
                                    [[r["family"], r["encoder"], r["accuracy"], r["chance"], r["loss"]]
                                     for r in retrieval])
  fig, axes = reporting.figure(len(families) + 1)
  for ax, family in zip(axes, families):
    family_rows = [r for r in rows if r["family"] == family]
    reporting.plot_bars(ax, [r["encoder"] for r in family_rows], [r["token_accuracy"] for r in family_rows],
                        title=f"{family}: probe token accuracy", ylabel="held-out token accuracy")
  reporting.plot_curves(axes[-1], {f"{r['family']} {r['encoder']}": ctx.curve(r["run"], "retrieval/accuracy")
                                   for r in retrieval},
                        title="retrieval training: held-out retrieval accuracy", ylabel="top-1 accuracy")
  return {"rows": rows, "retrieval": retrieval, "table": table,
          "figures": [reporting.save(fig, ctx.out / "retrieval.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper's comparisons of probe I_e between encoders, for those the summary has."""
  return reporting.family_findings(summary["rows"], "encoder", "entropy_proportion",
                                   "{family} probe I_e: {first} vs {second}",
                                   lambda family: FINDINGS.get(family, ()))


EXPERIMENT = suite.Experiment("retrieval", "Information in retrieval-trained embeddings (paper §5.1)", plan,
                              report, findings=findings)
