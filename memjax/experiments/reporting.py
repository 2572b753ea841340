"""The reproduction suite's reports: an experiment's numbers read from its finished runs, tables
beside the paper's, figures. Nothing here trains (experiments/suite.py runs)."""

from __future__ import annotations

import pathlib
from typing import Any, Iterable, Sequence

from memjax.experiments import suite


def tokens_per_second(ctx: suite.Context, name: str) -> float:
  """Median training tokens/s of a run, without its first logged interval (compilation)."""
  import statistics

  values = [value for _, value in ctx.curve(name, "tokens_per_s", split="train")]
  values = values[1:] or values
  return float(statistics.median(values)) if values else float("nan")


def fraction_recovered(loss: float, no_memory_loss: float, trainable_memory_loss: float) -> float:
  """metrics.entropy.fraction_recovered, nan where memories made no difference at all."""
  from memjax.metrics import entropy

  if no_memory_loss == trainable_memory_loss:
    return float("nan")
  return entropy.fraction_recovered(loss, no_memory_loss, trainable_memory_loss)


def probe_row(results: dict[str, Any], **labels: Any) -> dict[str, Any]:
  """A row of the paper's information tables from a probe run's final evaluation."""
  metrics = results["eval"]
  return labels | {"cross_entropy": metrics["reconstruction/loss"],
                   "entropy_proportion": metrics["reconstruction/entropy_proportion"],
                   "token_accuracy": metrics["reconstruction/accuracy"],
                   "bits_per_byte": metrics["reconstruction/bits_per_byte"]}


SMALL_GAIN = 0.05  # nats: below this a memory advantage is too small to divide by (seeds not repeated)


def memory_advantage_note(gains: dict[str, float]) -> str:
  """A line under a table of fractions of memory loss recovered: each family's memory advantage
  (no memory minus trainable memory, eval CE), and a warning where it is too small to divide by."""
  note = ("Memory advantage (no memory minus trainable-encoder memory model, eval CE, nats): "
          + ", ".join(f"{family} {gain:+.3f}" for family, gain in gains.items()))
  small = [family for family, gain in gains.items() if abs(gain) < SMALL_GAIN]
  if small:
    note += (f". Under {SMALL_GAIN} nats ({', '.join(small)}), the fractions recovered divide by a "
             "difference too small to read (one seed per run) and mean nothing.")
  return note


def unigram_floor(train_tokens, eval_batches: Iterable[dict[str, Any]], vocab_size: int) -> dict[str, float]:
  """What a probe decoder scores with no information from the embedding: each held-out token
  predicted from the training split's unigram frequencies (top-1 accuracy; cross-entropy of the
  add-one-smoothed unigram distribution), over the masked tokens of the probe's own eval batches."""
  import numpy as np

  counts = np.bincount(np.asarray(train_tokens).ravel(), minlength=vocab_size)[:vocab_size] + 1.0
  log_p, most_frequent = np.log(counts / counts.sum()), np.argmax(counts)
  hits = nll = total = 0.0
  for batch in eval_batches:
    tokens, mask = np.asarray(batch["tokens"]), np.asarray(batch["mask"]).astype(bool)
    hits += np.sum((tokens == most_frequent) & mask)
    nll -= np.sum(np.where(mask, log_p[np.clip(tokens, 0, vocab_size - 1)], 0.0))
    total += mask.sum()
  return {"token_accuracy": float(hits / max(total, 1)), "cross_entropy": float(nll / max(total, 1)),
          "tokens": float(total)}


def probe_floor(spec: suite.RunSpec) -> dict[str, float]:
  """unigram_floor on the held-out batches a probe run evaluates (train.eval_batches of them)."""
  import itertools

  from memjax import data as data_lib

  cfg = spec.cfg
  data = data_lib.prepare(cfg.data)
  batches = data_lib.batches(data, cfg.data, split="eval", batch_size=cfg.train.batch_size)
  return unigram_floor(data.train.tokens, itertools.islice(batches, cfg.train.eval_batches),
                       data.tokenizer.get_vocab_size())


# ------------------------------------------------------------------------------ tables


def _cell(value: Any) -> str:
  if value is None:
    return "—"
  if isinstance(value, float):
    if value != value:
      return "nan"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}"
  return str(value)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


# ------------------------------------------------------------------------------ figures


def figure(panels: int, width: float = 5.5, height: float = 4.0):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), squeeze=False)
  return fig, list(axes[0])


def plot_curves(ax, series: dict[str, list[tuple[int, float]]], *, title: str, xlabel: str = "step",
                ylabel: str = "", log_y: bool = False) -> None:
  for label, points in series.items():
    if points:
      ax.plot(*zip(*points), marker="o", markersize=3, label=label)
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  if log_y:
    ax.set_yscale("log")
  if len(series) > 6:  # a legend that long would cover the curves: below the panel instead
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
  elif series:
    ax.legend(fontsize=8)


def plot_bars(ax, labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
              fmt: str = "{:.1%}") -> None:
  drawn = ax.bar(range(len(labels)), values, color="#1b9e77")
  ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
  for bar, value in zip(drawn, values):
    ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=7)
  ax.set(title=title, ylabel=ylabel)


def save(fig, path: pathlib.Path) -> str:
  import matplotlib.pyplot as plt

  fig.tight_layout()
  fig.savefig(path, dpi=90, bbox_inches="tight")  # legends placed below a panel included
  plt.close(fig)
  return path.name
