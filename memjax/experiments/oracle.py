"""§5.4: oracle memories — an encoder that reads the very text the decoder predicts.

Per family: the oracle memory model (encoder over the whole context, its one embedding in front of a
causal decoder; at paper scale the mixer's encoder is d=1024, as the paper's capacity of 4.08 BPB)
against the decoder-only causal LM of the same size (its decoder alone); the bits-per-byte accounting
(what the encoder supplies, what its embedding retains by the probe, what it could hold); and probes
of the oracle's memory embedding with repeated and unrolled decoder feeds.
"""

from __future__ import annotations

import pathlib
from typing import Any

import ml_collections

from memjax.experiments import reporting, runs, suite
from memjax.metrics.entropy import bits_per_byte

STEPS = {"cpu": 500}  # as the causal LM it is compared with; elsewhere configs/memory.py's steps
FEEDS = ("repeat", "unroll")
BITS_PER_ELEMENT = 8  # the paper's capacity accounting (§1.3 (d)): 8 bits per embedding element
# §5.4: probe (CE, I_e, token accuracy) of the oracle memory embeddings, and the BPB accounting.
PAPER_PROBES = {("mixer", "repeat"): (4.953, 0.451, 0.1390), ("mixer", "unroll"): (4.980, 0.449, 0.1589),
                ("transformer", "unroll"): (5.549, 0.385, 0.0842)}
# probe_ce: the best probe's cross-entropy in bits per byte, which the paper calls "retained" (1.81);
# it is what the probe still misses of the text, not the information the embedding retains.
PAPER_BPB = {"decoder_only": 0.957, "oracle": 0.036, "probe_ce": 1.81, "capacity": 4.08}


def oracle_run(scale: str, family: str) -> suite.RunSpec:
  clm = runs.clm(scale, family).cfg
  cfg = suite.config("memory.py", scale, STEPS, family=family, kind="oracle", stages="clm")
  cfg.data.n_ctx = clm.data.n_ctx  # the causal LM's context, so their losses compare
  cfg.train.batch_size = clm.train.batch_size
  return suite.RunSpec(f"{family}_oracle", cfg)


def decoder_only_run(scale: str, family: str) -> suite.RunSpec:
  """The causal LM the oracle is compared with: the oracle's decoder without its encoder (§5.4: a
  size-matched decoder-only model). The shared causal LM where that is its architecture (tiny and
  cpu scale), else <family>_oracle_decoder_only."""
  from memjax.models.config import MODEL_FIELDS

  shared, decoder = runs.clm(scale, family), oracle_run(scale, family).cfg.decoder
  if all(shared.cfg.model[key] == decoder[key] for key in MODEL_FIELDS if key in decoder):
    return shared
  cfg = ml_collections.ConfigDict(shared.cfg.to_dict())
  cfg.model.update({key: decoder[key] for key in MODEL_FIELDS if key in decoder})
  return suite.RunSpec(f"{family}_oracle_decoder_only", cfg)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  specs = []
  for family in suite.families(scale):
    oracle = oracle_run(scale, family)
    specs += [decoder_only_run(scale, family), oracle]
    specs += [suite.RunSpec(f"{family}_probe_oracle_{feed}",
                            suite.probe(scale, oracle, root, feed=feed))
              for feed in FEEDS]
  return specs


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, probe_rows = [], []
  for family in suite.families(ctx.scale):
    clm = ctx.results[decoder_only_run(ctx.scale, family).name]
    oracle = ctx.results[oracle_run(ctx.scale, family).name]
    bytes_per_token = oracle["bytes_per_token"]
    d_model = ctx.specs[f"{family}_oracle"].cfg.encoder.d_model
    n_ctx = ctx.specs[f"{family}_oracle"].cfg.data.n_ctx
    capacity = d_model * BITS_PER_ELEMENT / (n_ctx * bytes_per_token)
    decoder_only, with_oracle = clm["eval"]["clm/bits_per_byte"], oracle["eval"]["clm/bits_per_byte"]
    for feed in FEEDS:
      probe = ctx.results[f"{family}_probe_oracle_{feed}"]
      row = reporting.probe_row(probe, family=family, feed=feed)
      probe_rows.append(row)
    best = min((r for r in probe_rows if r["family"] == family), key=lambda r: r["cross_entropy"])
    rows.append({"family": family, "decoder_only_loss": clm["eval"]["clm/loss"],
                 "oracle_loss": oracle["eval"]["clm/loss"], "decoder_only_bpb": decoder_only,
                 "oracle_bpb": with_oracle, "encoder_supplies_bpb": decoder_only - with_oracle,
                 "probe_ce_bpb": bits_per_byte(best["cross_entropy"], bytes_per_token),
                 "capacity_bpb": capacity, "bytes_per_token": bytes_per_token})
  table = reporting.markdown_table(
      ["family", "decoder-only CE", "oracle CE", "decoder-only BPB", "oracle BPB", "encoder supplies BPB",
       "probe CE BPB (paper: 'retained')", f"capacity BPB ({BITS_PER_ELEMENT} bit/element)"],
      [[r["family"], r["decoder_only_loss"], r["oracle_loss"], r["decoder_only_bpb"], r["oracle_bpb"],
        r["encoder_supplies_bpb"], r["probe_ce_bpb"], r["capacity_bpb"]] for r in rows]
      + [["paper (mixer, 512 tokens)", 2.60, 0.1, PAPER_BPB["decoder_only"], PAPER_BPB["oracle"],
          PAPER_BPB["decoder_only"] - PAPER_BPB["oracle"], PAPER_BPB["probe_ce"], PAPER_BPB["capacity"]]])
  table += "\n\nProbes of the oracle memory embedding:\n\n" + reporting.markdown_table(
      ["family", "feed", "CE", "I_e", "token acc.", "paper CE", "paper I_e", "paper acc."],
      [[r["family"], r["feed"], r["cross_entropy"], r["entropy_proportion"], r["token_accuracy"],
        *PAPER_PROBES.get((r["family"], r["feed"]), (None, None, None))] for r in probe_rows])
  fig, axes = reporting.figure(2)
  reporting.plot_curves(axes[0], {f"{family} {kind}": ctx.curve(spec.name, "loss")
                              for family in suite.families(ctx.scale)
                              for kind, spec in (("decoder only", decoder_only_run(ctx.scale, family)),
                                                 ("oracle", oracle_run(ctx.scale, family)))},
                    title="decoder-only vs oracle memory", ylabel="eval cross-entropy (nats)")
  reporting.plot_bars(axes[1], [f"{r['family']} {r['feed']}" for r in probe_rows],
                  [r["token_accuracy"] for r in probe_rows], title="probe of the oracle memory",
                  ylabel="held-out token accuracy")
  return {"rows": rows, "probe_rows": probe_rows, "table": table,
          "figures": [reporting.save(fig, ctx.out / "oracle.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper: an oracle memory model's CE is far below the decoder-only causal LM's."""
  return [reporting.finding(f"{r['family']} eval CE: oracle memory model vs decoder-only causal LM",
                            r["oracle_loss"], r["decoder_only_loss"], "less") for r in summary["rows"]]


EXPERIMENT = suite.Experiment("oracle", "Oracle memories (paper §5.4)", plan, report, findings=findings)
