"""§5.1: how much of its input one embedding holds, for five encoders of each family.

Probes (a fresh decoder regenerating the input from one frozen embedding) of: an untrained encoder,
a causal LM (second-to-last position, which received a loss), an autoencoder's encoder, and the
encoders of two memory models: one trained on next-token prediction only, one on the combined
objective (CLM + copy). Masked mixers and transformers.
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import suite

# (encoder label, run of the encoder or None, embedding position)
ENCODERS: tuple[tuple[str, str | None, int], ...] = (
    ("Untrained", None, -1),
    ("Causal LM", "clm", -2),  # the last position of a causal LM never received a loss
    ("Autoencoder", "autoencoder", -1),
    ("Memory model (CLM)", "memory_clm", -1),
    ("Memory model (combined)", "memory_combined", -1),
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

# cpu: sized so that each experiment trains in at most 20 minutes from an empty workdir on 2 cores
# (docs/results.md measures it); the autoencoders and probes are shared with five other experiments.
STEPS = {
    "clm": {"tiny": 2, "cpu": 500, "paper": 200_000},
    "autoencoder": {"tiny": 2, "cpu": 1000, "paper": 200_000},
    "memory": {"tiny": 2, "cpu": 400, "paper": 200_000},
    "combined": {"tiny": 2, "cpu": 300, "paper": 100_000},
    "probe": {"tiny": 2, "cpu": 300, "paper": 200_000},
}
CPU_MEMORY_BATCH = 16  # 16 x 64 tokens (4 chunks of 16): a CLM batch's 1024 tokens per step


def trained_runs(scale: str, family: str) -> dict[str, suite.RunSpec]:
  """The trained encoders' runs of one family (shared with other experiments by name)."""
  def memory(stages: str, steps: dict[str, int]):
    cfg = suite.config("memory.py", scale, steps, family=family, kind="parallel", stages=stages)
    if scale == "cpu":
      cfg.train.batch_size = CPU_MEMORY_BATCH
    return cfg

  autoencoder = suite.config("autoencoder.py", scale, STEPS["autoencoder"], family=family,
                             feed="unroll" if scale != "paper" else "")
  runs = {"clm": suite.config("clm.py", scale, STEPS["clm"], family=family),
          "autoencoder": autoencoder,
          "memory_clm": memory("clm", STEPS["memory"]),
          "memory_combined": memory("combined", STEPS["combined"])}
  if "combined_copy" in runs["memory_combined"].objective:  # copy with tokens visible (the paper
    runs["memory_combined"].objective.combined_copy = "copy"  # preset's default is blank copy)
  return {key: suite.RunSpec(f"{family}_{key}", cfg) for key, cfg in runs.items()}


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  """Causal LMs, autoencoders and their probes first (the paper's tables), then memory models."""
  specs = []
  for phase in (ENCODERS[:3], ENCODERS[3:]):
    for family in suite.FAMILIES:
      trained = trained_runs(scale, family)
      specs += [trained[source] for _, source, _ in phase if source]
      for label, source, index in phase:
        cfg = suite.probe(scale, STEPS["probe"], trained.get(source), root, embed_index=index,
                          architecture=trained["clm"].cfg.model)
        specs.append(suite.RunSpec(probe_name(family, label), cfg))
  return specs


def probe_name(family: str, label: str) -> str:
  return f"{family}_probe_" + label.lower().replace(" ", "_").replace("(", "").replace(")", "")


def report(ctx: suite.Context) -> dict[str, Any]:
  rows = [suite.probe_row(ctx.results[probe_name(family, label)], family=family, encoder=label)
          for family in suite.FAMILIES for label, _, _ in ENCODERS]
  table_rows = []
  for row in rows:
    paper = PAPER.get((row["family"], row["encoder"]), (None, None, None))
    table_rows.append([row["family"], row["encoder"], row["cross_entropy"], row["entropy_proportion"],
                       row["token_accuracy"], *paper])
  ratios = {}
  for family in suite.FAMILIES:
    by = {r["encoder"]: r for r in rows if r["family"] == family}
    ratios[family] = by["Autoencoder"]["token_accuracy"] / max(by["Causal LM"]["token_accuracy"], 1e-9)
  # The floor a probe reaches from no information (unigram frequencies), on its own eval batches.
  floor = {family: suite.probe_floor(ctx.specs[probe_name(family, "Untrained")]) for family in suite.FAMILIES}
  for family in suite.FAMILIES:
    table_rows.append([family, "(unigram floor: no information)", floor[family]["cross_entropy"], None,
                       floor[family]["token_accuracy"], None, None, None])
  table = suite.markdown_table(
      ["family", "encoder", "CE", "I_e", "token acc.", "paper CE", "paper I_e", "paper acc."],
      table_rows)
  scopes = sorted({ctx.specs[probe_name(f, label)].cfg.encoder.get("frozen_scope", "all")
                   for f in suite.FAMILIES for label, _, _ in ENCODERS})
  table += (f"\n\nFrozen in the probes: {' / '.join(scopes)} ('all': the encoder's token embedding and "
            "blocks; 'blocks': its blocks, behind a fresh trainable embedding, as the paper).")
  table += "\n\nAutoencoder / causal LM token accuracy: " + ", ".join(
      f"{family} {ratio:.1f}x" for family, ratio in ratios.items())
  fig, axes = suite.figure(3)
  for ax, family in zip(axes[:2], suite.FAMILIES):
    family_rows = [r for r in rows if r["family"] == family]
    suite.plot_bars(ax, [r["encoder"] for r in family_rows], [r["token_accuracy"] for r in family_rows],
                    title=f"{family}: probe token accuracy", ylabel="held-out token accuracy")
    ax.axhline(floor[family]["token_accuracy"], color="gray", linestyle="--", linewidth=1,
               label="unigram floor (no information)")
    ax.legend(fontsize=7, loc="upper left")
  suite.plot_curves(axes[2], {f"{family} {label}": ctx.curve(probe_name(family, label),
                                                              "reconstruction/loss")
                              for family in suite.FAMILIES for label, _, _ in ENCODERS},
                    title="probe eval loss", ylabel="cross-entropy (nats)")
  return {"rows": rows, "unigram_floor": floor, "autoencoder_to_causal_accuracy": ratios, "table": table,
          "figures": [suite.save(fig, ctx.out / "information.png")],
          "trained_models": {ctx.specs[name].name: ctx.eval(name) for family in suite.FAMILIES
                             for name in (f"{family}_clm", f"{family}_autoencoder",
                                          f"{family}_memory_clm", f"{family}_memory_combined")}}


EXPERIMENT = suite.Experiment("information", "Information in one embedding (paper §5.1)", plan, report)


def chunk_encoders(scale: str, family: str) -> dict[str, suite.RunSpec]:
  """The causal LM and autoencoder whose encoders memory models reuse frozen: trained on a memory
  model's chunk length (the runs above where that is their context, as at tiny and cpu scale)."""
  trained = trained_runs(scale, family)
  chunk = suite.encoder_length(trained["memory_clm"].cfg)
  return {key: suite.at_length(trained[key], chunk) for key in ("clm", "autoencoder")}
