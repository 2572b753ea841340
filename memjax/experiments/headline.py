"""The paper's headline at CPU scale (Badger 2026, §5.1 and Fig. 1).

  python -m memjax.experiments.headline --config=configs/headline.py:cpu --workdir=runs/headline

Trains a causal LM and an autoencoder of the same family and size on the embedded corpus, then
freezes three encoders (untrained, causal LM, autoencoder) and trains a fresh decoder to regenerate
the input from each one's single embedding. Prints the paper's information table (cross-entropy,
entropy proportion I_e, token accuracy on held-out text), writes `results.json` and `headline.png`.
Every stage is an ordinary memjax run in its own subfolder, so an interrupted demo resumes where it
stopped and each stage can be inspected (metrics.jsonl, TensorBoard) like any run.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from memjax import cli, runtime

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", "configs/headline.py:cpu",
                                  "Headline config (sub-configs clm, autoencoder, probe).")
  flags.DEFINE_string("workdir", "runs/headline", "Folder for every stage and the results.")


# (probe name, label, which stage's encoder: None for an untrained one, its embedding position)
PROBES: tuple[tuple[str, str, str | None, int], ...] = (
    ("untrained", "Untrained", None, -1),
    ("causal", "Causal LM", "clm", -2),  # the last position of a causal LM never received a loss
    ("autoencoder", "Autoencoder", "autoencoder", -1),
)


def probe_config(cfg: ml_collections.ConfigDict, source: pathlib.Path | None, embed_index: int) -> Any:
  probe = ml_collections.ConfigDict(cfg.probe.to_dict())
  probe.encoder.checkpoint = str(source) if source else ""
  probe.encoder.embed_index = embed_index
  return probe


def table(rows: list[dict[str, Any]]) -> str:
  lines = [f"{'Encoder':<14}{'Loss (CE)':>11}{'I_e':>8}{'Token accuracy':>16}",
           "-" * 49]
  lines += [f"{r['encoder']:<14}{r['cross_entropy']:>11.3f}{r['entropy_proportion']:>8.3f}"
            f"{r['token_accuracy']:>16.4f}" for r in rows]
  return "\n".join(lines)


def plot(rows: list[dict[str, Any]], curves: dict[str, list[tuple[int, float]]], path: pathlib.Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (bars, lines) = plt.subplots(1, 2, figsize=(11, 4))
  names = [r["encoder"] for r in rows]
  accuracy = [r["token_accuracy"] for r in rows]
  drawn = bars.bar(names, accuracy, color=["#999999", "#d95f02", "#1b9e77"])
  for bar, row in zip(drawn, rows):
    bars.annotate(f"{row['token_accuracy']:.1%}\nI_e {row['entropy_proportion']:.2f}",
                  (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
  bars.set_ylabel("held-out token accuracy of the probe decoder")
  bars.set_ylim(0, max(1.0, max(accuracy) * 1.25))
  bars.set_title("How much of its input one embedding holds")
  for name, points in curves.items():
    if points:
      lines.plot(*zip(*points), marker="o", label=name)
  lines.set_xlabel("probe training step")
  lines.set_ylabel("held-out token accuracy")
  lines.set_title("Probe decoders learning to regenerate the input")
  lines.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every stage (resuming finished ones for free) and returns the results."""
  from memjax.experiments import reporting
  from memjax.training import loop
  from memjax.training.writers import read_metrics

  root = pathlib.Path(workdir)
  start = time.perf_counter()
  stages = [("clm", cfg.clm), ("autoencoder", cfg.autoencoder)]
  stages += [(f"probe_{name}", probe_config(cfg, root / source if source else None, index))
             for name, _, source, index in PROBES]
  results = {}
  for number, (name, stage_cfg) in enumerate(stages, 1):
    print(f"[{number}/{len(stages)}] {name}", flush=True)
    results[name] = loop.run(stage_cfg, str(root / name))
  rows = []
  for name, label, _, _ in PROBES:
    rows.append(reporting.probe_row(results[f"probe_{name}"], encoder=label))
  by_name = {row["encoder"]: row for row in rows}
  ratio = by_name["Autoencoder"]["token_accuracy"] / max(by_name["Causal LM"]["token_accuracy"], 1e-9)
  curves = {label: [(r["step"], r["reconstruction/accuracy"])
                    for r in read_metrics(root / f"probe_{name}", "eval")]
            for name, label, _, _ in PROBES}
  summary = {
      "rows": rows,
      "autoencoder_to_causal_accuracy": ratio,
      # what each probe froze: 'all' (the encoder's embedding too) or 'blocks' (a fresh embedding)
      "probe_frozen_scope": cfg.probe.encoder.get("frozen_scope", "all"),
      "trained_models": {"clm": results["clm"]["eval"], "autoencoder": results["autoencoder"]["eval"]},
      "minutes": (time.perf_counter() - start) / 60,
      "config": json.loads(cfg.to_json_best_effort()),
  }
  (root / "results.json").write_text(json.dumps(summary, indent=2))
  plot(rows, curves, root / "headline.png")
  return summary


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()  # before jax is imported
  summary = run(FLAGS.config, FLAGS.workdir)
  print("\nInformation in one embedding (probe decoders on held-out text):")
  print(table(summary["rows"]))
  frozen = "blocks" if summary["probe_frozen_scope"] == "blocks" else "embedding and blocks"
  print(f"(the probes froze the encoder's {frozen})")
  print(f"\nautoencoder / causal LM token accuracy: {summary['autoencoder_to_causal_accuracy']:.1f}x"
        f"  ({summary['minutes']:.1f} min; results.json and headline.png in {FLAGS.workdir})")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
