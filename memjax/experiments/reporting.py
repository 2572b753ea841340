"""The reproduction suite's reports: an experiment's numbers read from its finished runs, tables
beside the paper's, figures, and over seeds, intervals and verdicts. Nothing here trains
(experiments/suite.py runs).

Seeds: an experiment's report is written once per seed (its runs in that seed's folder); every
number it prints goes through `number` (tables through `_cell`), which, while `recording`, leaves a
placeholder and keeps the value, so `combine` can print the seeds' reports as one: each measured
number as its mean and interval over the seeds (`interval`), text that is the same in every seed
once. A report's `findings` (`finding`) compare two of its numbers in the paper's direction, and
`verdict` applies docs/results.md's rule to their per-seed values.
"""

from __future__ import annotations

import contextlib
import math
import pathlib
import re
from typing import Any, Callable, Iterable, Sequence

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


SMALL_GAIN = 0.05  # nats: below this a memory advantage is too small to divide by


def memory_advantage_note(gains: dict[str, float]) -> str:
  """A line under a table of fractions of memory loss recovered: each family's memory advantage
  (no memory minus trainable memory, eval CE), and a warning where it is too small to divide by."""
  note = ("Memory advantage (no memory minus trainable-encoder memory model, eval CE, nats): "
          + ", ".join(f"{family} {number(gain, '{:+.3f}')}" for family, gain in gains.items()))
  small = [family for family, gain in gains.items() if abs(gain) < SMALL_GAIN]
  if small:
    note += (f". Under {SMALL_GAIN} nats ({', '.join(small)}), the fractions recovered divide by a "
             "difference too small to read and mean nothing.")
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


# ------------------------------------------------------------------------------ seeds: intervals and verdicts

T_INTERVAL_FROM = 4  # seeds from which an interval is Student's t (fewer: the range of the values)
REPRODUCES, DOES_NOT_REPRODUCE, NOT_RESOLVED = "reproduces", "does not reproduce", "not resolved at this scale"
RULE = ("a finding *reproduces* when memjax's two rows differ in the paper's direction and their "
        "intervals over seeds separate; it *does not reproduce* when they separate in the opposite "
        "direction; it is *not resolved at this scale* when the intervals overlap or only one seed "
        "was run (one seed has no interval)")


def interval_kind(seeds: int) -> str:
  """What `interval` gives for this many seeds, as the tables' captions say it."""
  if seeds < 2:
    return "no interval (1 seed)"
  return "95 % t-interval of the mean" if seeds >= T_INTERVAL_FROM else "min-max of the seeds"


def interval(values: Sequence[float]) -> tuple[float, float, float]:
  """(mean, low, high) of per-seed values: the 95 % Student-t interval of the mean for at least
  T_INTERVAL_FROM values, else their min and max (too few seeds to estimate a spread). One value:
  (value, value, value), which is no interval (verdict refuses it)."""
  import statistics

  values = [float(v) for v in values]
  mean = statistics.fmean(values)
  if len(values) < T_INTERVAL_FROM:
    return mean, min(values), max(values)
  from scipy import stats

  half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
  return mean, mean - half, mean + half


def verdict(ours: Sequence[float], than: Sequence[float], paper: str) -> str:
  """docs/results.md's rule (RULE) for a finding that `ours` (per-seed values of one row) is `paper`
  ('more' or 'less') than `than` (the same seeds' values of the row it is compared with)."""
  if paper not in ("more", "less"):
    raise ValueError(f"paper direction is 'more' or 'less', got {paper!r}")
  if min(len(ours), len(than)) < 2:
    return f"{NOT_RESOLVED} (1 seed)"
  if any(v != v for v in [*ours, *than]):  # nan: e.g. a fraction recovered of no memory advantage
    return f"{NOT_RESOLVED} (a seed's value is not a number)"
  _, ours_low, ours_high = interval(ours)
  _, than_low, than_high = interval(than)
  if ours_low > than_high:
    found = "more"
  elif ours_high < than_low:
    found = "less"
  else:
    return f"{NOT_RESOLVED} (intervals overlap)"
  return REPRODUCES if found == paper else DOES_NOT_REPRODUCE


def finding(claim: str, ours: float, than: float, paper: str) -> dict[str, Any]:
  """One seed's numbers for a finding of the paper: `claim` holds when `ours` is `paper` ('more' or
  'less') than `than`. A report returns a list of them as its summary's 'findings'."""
  if paper not in ("more", "less"):
    raise ValueError(f"paper direction is 'more' or 'less', got {paper!r}")
  return {"finding": claim, "ours": ours, "than": than, "paper": paper}


def family_findings(rows: Sequence[dict[str, Any]], label: str, metric: str, claim: str,
                    comparisons: Callable[[str], Sequence[tuple[str, str, str]]]) -> list[dict[str, Any]]:
  """`finding`s within each model family of `rows`: for each (first, second, paper) of
  `comparisons(family)` whose two labels (`row[label]`) the family has, `row[metric]` of the first
  against the second's. `claim` is formatted with family, first and second."""
  out = []
  for family in dict.fromkeys(r["family"] for r in rows):
    value = {r[label]: r[metric] for r in rows if r["family"] == family}
    out += [finding(claim.format(family=family, first=first, second=second), value[first], value[second], paper)
            for first, second, paper in comparisons(family) if first in value and second in value]
  return out


def verdicts(per_seed_findings: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
  """Each finding over the seeds (one list of `finding`s per seed, in one order): its per-seed values
  ('ours', 'than') and `verdict`."""
  out = []
  for same in zip(*per_seed_findings):
    ours, than = [f["ours"] for f in same], [f["than"] for f in same]
    out.append({"finding": same[0]["finding"], "paper": same[0]["paper"], "ours": ours, "than": than,
                "verdict": verdict(ours, than, same[0]["paper"])})
  return out


def verdict_table(found: Sequence[dict[str, Any]]) -> str:
  """`verdicts` as a table: each row's mean and interval over the seeds, the paper's direction, the
  verdict."""
  return markdown_table(["finding: first row vs second row", "memjax: first", "memjax: second",
                         "paper: first is", "verdict"],
                        [[f["finding"], _spread(f["ours"], None), _spread(f["than"], None), f["paper"],
                          f["verdict"]] for f in found])


# Placeholders: while `recording`, number() returns "\x00<index>\x00" and keeps (value, format).
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_recorded: list[tuple[float, str | None]] | None = None


@contextlib.contextmanager
def recording():
  """Within: every number a report prints (number, markdown_table) is a placeholder, its value
  kept in the yielded list; `render` or `combine` turns the text back into numbers."""
  global _recorded
  previous, _recorded = _recorded, []
  try:
    yield _recorded
  finally:
    _recorded = previous


def _format(value: float, fmt: str | None) -> str:
  if value != value:
    return "nan"
  if fmt:
    return fmt.format(value)
  return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}"


def number(value: float, fmt: str | None = None) -> str:
  """A measured number in a report's text (`fmt` e.g. '{:+.3f}'; default: the tables' format)."""
  if _recorded is None:
    return _format(value, fmt)
  _recorded.append((float(value), fmt))
  return f"\x00{len(_recorded) - 1}\x00"


def _spread(values: Sequence[float], fmt: str | None) -> str:
  """One seed's value, or the same value in every seed, as itself; else 'mean [low, high]'."""
  if all(v == values[0] for v in values) or any(v != v for v in values):
    return _format(values[0] if all(v == values[0] for v in values) else float("nan"), fmt)
  mean, low, high = interval(values)
  return f"{_format(mean, fmt)} [{_format(low, fmt)}, {_format(high, fmt)}]"


def render(text: str, values: Sequence[tuple[float, str | None]]) -> str:
  """A recorded text with its own numbers (one seed's report)."""
  return _PLACEHOLDER.sub(lambda m: _format(*values[int(m.group(1))]), text)


def combine(texts: Sequence[str], values: Sequence[Sequence[tuple[float, str | None]]]) -> str:
  """The recorded reports of several seeds as one: line by line, a line that reads the same in every
  seed but for its numbers once, each number as `_spread` of the seeds' values; a line that differs
  (e.g. a warning printed for one seed only) once per seed, marked '(seed s)'."""
  lines = [text.split("\n") for text in texts]
  if len({len(seed_lines) for seed_lines in lines}) > 1:  # not one layout: each seed's report whole
    return "\n\n".join(f"Seed {seed}:\n\n{render(text, own)}"
                       for seed, (text, own) in enumerate(zip(texts, values)))
  out = []
  for same in zip(*lines):
    shapes = {_PLACEHOLDER.sub("\x00", line) for line in same}
    if len(shapes) == 1:
      indices = [[int(i) for i in _PLACEHOLDER.findall(line)] for line in same]
      spreads = iter([_spread([values[seed][at[k]][0] for seed, at in enumerate(indices)],
                              values[0][indices[0][k]][1]) for k in range(len(indices[0]))])
      out.append(_PLACEHOLDER.sub(lambda _: next(spreads), same[0]))
      continue
    for seed, line in enumerate(same):
      mark = f"(seed {seed}) "
      text = render(line, values[seed])
      out.append(f"| {mark}{text[2:]}" if text.startswith("| ") else mark + text)
  return "\n".join(out)


def combine_json(summaries: Sequence[Any]) -> Any:
  """Several seeds' summaries as one: a number that differs between seeds as {'mean', 'low', 'high',
  'per_seed'} (`interval`), dicts and equally long lists key by key, anything else the first seed's."""
  first = summaries[0]
  if isinstance(first, dict) and all(isinstance(s, dict) for s in summaries):
    return {key: combine_json([s[key] for s in summaries]) if all(key in s for s in summaries) else value
            for key, value in first.items()}
  if (isinstance(first, list) and all(isinstance(s, list) and len(s) == len(first) for s in summaries)):
    return [combine_json(list(same)) for same in zip(*summaries)]
  if (all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in summaries)
      and any(s != first for s in summaries)):
    if any(s != s for s in summaries):
      return {"mean": float("nan"), "per_seed": list(summaries)}
    mean, low, high = interval(summaries)
    return {"mean": mean, "low": low, "high": high, "per_seed": list(summaries)}
  return first


# ------------------------------------------------------------------------------ tables


def _cell(value: Any) -> str:
  if value is None:
    return "—"
  if isinstance(value, float):
    return number(value)
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
