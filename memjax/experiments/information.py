"""§5.1: how much of its input one embedding holds, for five encoders of each family.

Probes (a fresh decoder regenerating the input from one frozen embedding) of: an untrained encoder,
a causal LM (second-to-last position, which received a loss), an autoencoder's encoder, and the
encoders of two memory models: one trained on next-token prediction only, one on the combined
objective (CLM + copy). Masked mixers and transformers. `make demo` runs a subset of it
(experiments/headline.py).
"""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

from memjax.experiments import reporting, runs, suite

# (encoder label, key of the probed shared run in runs.shared, None for an untrained encoder)
ENCODERS: tuple[tuple[str, str | None], ...] = (
    ("Untrained", None),
    ("Causal LM", "clm"),
    ("Autoencoder", "autoencoder"),
    ("Memory model (CLM)", "memory_clm"),
    ("Memory model (combined)", "memory_combined"),
)
# The paper's tables (§5.1; cross-entropy, I_e, token accuracy; n_ctx 512, 8k vocabulary). The
# memory-model rows: the paper reports ≈5 % of tokens for CLM-only memory encoders (§5.7) and no
# recovered number for combined-objective ones.
PAPER = {
    ("mixer", "Untrained"): (5.937, 0.343, 0.0408),
    ("mixer", "Causal LM"): (5.815, 0.356, 0.0479),
    ("mixer", "Autoencoder"): (1.528, 0.831, 0.5534),
    ("mixer", "Memory model (CLM)"): (None, None, 0.05),
    ("transformer", "Untrained"): (6.643, 0.264, 0.0409),
    ("transformer", "Causal LM"): (6.214, 0.311, 0.0462),
    ("transformer", "Autoencoder"): (2.935, 0.675, 0.391),
    ("transformer", "Memory model (CLM)"): (None, None, 0.05),
}

def plan(scale: str, root: pathlib.Path, families: Sequence[str] = suite.FAMILIES,
         encoders: Sequence[tuple[str, str | None]] = ENCODERS) -> list[suite.RunSpec]:
  """Causal LMs, autoencoders and their probes first (the paper's tables), then memory models; of
  `families` and `encoders` (a subset of ENCODERS) only."""
  specs = []
  for phase in (ENCODERS[:3], ENCODERS[3:]):
    keys = [key for label, key in phase if (label, key) in encoders]
    for family in families:
      shared = runs.shared(scale, family)
      specs += [shared[key] for key in keys if key]
      specs += [runs.probe(scale, family, key, root) for key in keys]
  return specs


def report(ctx: suite.Context, families: Sequence[str] = suite.FAMILIES,
           encoders: Sequence[tuple[str, str | None]] = ENCODERS,
           figure: str = "information.png") -> dict[str, Any]:
  """The table and figure of `plan`'s probes (of the same `families` and `encoders`)."""
  rows = [reporting.probe_row(ctx.results[runs.probe_name(family, key)], family=family, encoder=label)
          for family in families for label, key in encoders]
  table_rows = []
  for row in rows:
    paper = PAPER.get((row["family"], row["encoder"]), (None, None, None))
    table_rows.append([row["family"], row["encoder"], row["cross_entropy"], row["entropy_proportion"],
                       row["token_accuracy"], *paper])
  ratios = {}
  for family in families:
    by = {r["encoder"]: r for r in rows if r["family"] == family}
    ratios[family] = by["Autoencoder"]["token_accuracy"] / max(by["Causal LM"]["token_accuracy"], 1e-9)
  # The floor a probe reaches from no information (unigram frequencies), on its own eval batches.
  floor = {family: reporting.probe_floor(ctx.specs[runs.probe_name(family, None)]) for family in families}
  for family in families:
    table_rows.append([family, "(unigram floor: no information)", floor[family]["cross_entropy"], None,
                       floor[family]["token_accuracy"], None, None, None])
  table = reporting.markdown_table(
      ["family", "encoder", "CE", "I_e", "token acc.", "paper CE", "paper I_e", "paper acc."],
      table_rows)
  scopes = sorted({ctx.specs[runs.probe_name(f, key)].cfg.encoder.get("frozen_scope", "all")
                   for f in families for _, key in encoders})
  table += (f"\n\nFrozen in the probes: {' / '.join(scopes)} ('all': the encoder's token embedding and "
            "blocks; 'blocks': its blocks, behind a fresh trainable embedding, as the paper).")
  table += "\n\nAutoencoder / causal LM token accuracy: " + ", ".join(
      f"{family} {reporting.number(ratio, '{:.1f}')}x" for family, ratio in ratios.items())
  fig, axes = reporting.figure(len(families) + 1)
  for ax, family in zip(axes, families):
    family_rows = [r for r in rows if r["family"] == family]
    reporting.plot_bars(ax, [r["encoder"] for r in family_rows], [r["token_accuracy"] for r in family_rows],
                    title=f"{family}: probe token accuracy", ylabel="held-out token accuracy")
    ax.axhline(floor[family]["token_accuracy"], color="gray", linestyle="--", linewidth=1,
               label="unigram floor (no information)")
    ax.legend(fontsize=7, loc="upper left")
  reporting.plot_curves(axes[-1], {f"{family} {label}": ctx.curve(runs.probe_name(family, key),
                                                               "reconstruction/loss")
                                   for family in families for label, key in encoders},
                        title="probe eval loss", ylabel="cross-entropy (nats)")
  return {"rows": rows, "unigram_floor": floor, "autoencoder_to_causal_accuracy": ratios, "table": table,
          "probe_frozen_scope": " / ".join(scopes),
          "figures": [reporting.save(fig, ctx.out / figure)],
          "trained_models": {runs.shared(ctx.scale, family)[key].name:
                             ctx.eval(runs.shared(ctx.scale, family)[key].name)
                             for family in families for _, key in encoders if key}}


# (first encoder, second encoder, the paper: the first's probe token accuracy is 'more' than the second's)
FINDINGS: tuple[tuple[str, str, str], ...] = (
    ("Autoencoder", "Causal LM", "more"),  # §5.1: 11.6x (mixers)
    ("Causal LM", "Untrained", "more"),  # §5.1: slightly more (0.0479 vs 0.0408, mixers)
    ("Memory model (combined)", "Memory model (CLM)", "more"),  # §5.7: combined memories information-rich
    ("Memory model (combined)", "Untrained", "more"),  # ... which an untrained encoder is not
)


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper's comparisons of probe token accuracy between encoders, for those the summary has."""
  return reporting.family_findings(summary["rows"], "encoder", "token_accuracy",
                                   "{family} probe token acc.: {first} vs {second}", lambda family: FINDINGS)


EXPERIMENT = suite.Experiment("information", "Information in one embedding (paper §5.1)", plan, report,
                              findings=findings)

