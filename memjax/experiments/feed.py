"""§8 item 6 (§2.2): how an autoencoder's decoder is fed its single embedding — unrolled (a distinct
window of the embedding per position, projected) or repeated (the same vector at every position) —
for transformer and masked-mixer autoencoders. The paper: unrolled ≫ repeated for transformers,
whose attention cannot tell identical inputs apart (only RoPE breaks the symmetry); mixers do well
with repeated embeddings.
"""

from __future__ import annotations

import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

FEEDS = ("unroll", "repeat")
PAPER = {("transformer", "unroll"): "≫ repeated (d=512, 8 layers, 512 tokens)",
         ("transformer", "repeat"): "poor",
         ("mixer", "unroll"): "—", ("mixer", "repeat"): "works well (the paper's mixer default)"}


def feed_run(scale: str, family: str, feed: str) -> suite.RunSpec:
  return runs.autoencoder(scale, family, feed)  # the shared autoencoder where its feed is this one


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  return [feed_run(scale, family, feed) for family in suite.families(scale) for feed in FEEDS]


def report(ctx: suite.Context) -> dict[str, Any]:
  rows = []
  for family in suite.families(ctx.scale):
    for feed in FEEDS:
      metrics = ctx.eval(feed_run(ctx.scale, family, feed).name)
      rows.append({"family": family, "feed": feed, "cross_entropy": metrics["reconstruction/loss"],
                   "entropy_proportion": metrics["reconstruction/entropy_proportion"],
                   "token_accuracy": metrics["reconstruction/accuracy"]})
  table = reporting.markdown_table(["family", "decoder feed", "CE", "I_e", "token acc.", "paper"],
                               [[r["family"], r["feed"], r["cross_entropy"], r["entropy_proportion"],
                                 r["token_accuracy"], PAPER[(r["family"], r["feed"])]] for r in rows])
  fig, axes = reporting.figure(2)
  for ax, family in zip(axes, suite.families(ctx.scale)):
    reporting.plot_curves(ax, {feed: ctx.curve(feed_run(ctx.scale, family, feed).name, "reconstruction/accuracy")
                           for feed in FEEDS}, title=f"{family} autoencoder", ylabel="held-out token accuracy")
  return {"rows": rows, "table": table, "figures": [reporting.save(fig, ctx.out / "feed.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper: unrolled >> repeated for transformer autoencoders (token accuracy)."""
  accuracy = {(r["family"], r["feed"]): r["token_accuracy"] for r in summary["rows"]}
  if ("transformer", "unroll") not in accuracy:
    return []
  return [reporting.finding("transformer autoencoder token acc.: unrolled vs repeated feed",
                            accuracy["transformer", "unroll"], accuracy["transformer", "repeat"], "more")]


EXPERIMENT = suite.Experiment("feed", "Unrolled vs repeated decoder input (paper §8 item 6)", plan, report,
                              findings=findings)
