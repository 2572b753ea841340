"""§5.8: a memory model whose decoder is a pretrained causal LM, on the copy objective.

Runs (transformers: the pretrained decoder is a Llama): (a) a trainable encoder feeding the
pretrained decoder; (b) the random-encoding control, the same model whose encoder embeds random
tokens instead of the text (memory.encoding='random'), so that its memories carry no information;
(c) the pretrained decoder without memories; (d) the memory model of (a) with a from-scratch decoder
of the same architecture. The paper: copy accuracy jumps at the first evaluation for (a) and (b)
alike (the decoder learning to filter a foreign embedding), then (a) overtakes the memoryless model;
the pretrained decoder gains ~1 % copy accuracy over 30k steps where a from-scratch one gains ~15 %.

At paper scale the decoder is Llama 3.2 1B (hf_llama.LLAMA_3_2_1B, its published config.json), read
from <workdir>/pretrained/llama-3.2-1b (python -m memjax.convert hf-llama SRC that folder); the dry
run sizes it from the config alone. The encoder is the copy drivers' (d=512, 16 layers, 4 heads)
and every run trains at the paper's 5e-6 (larger rates diverged), the from-scratch decoder too, so
that the decoder's initialization is the only difference. Below paper scale nothing is downloaded:
the "pretrained" decoder is the suite's shared transformer causal LM (runs.clm, trained first), and
every run trains at the preset's rate (a few hundred steps at 5e-6 would not move a small model).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from memjax.experiments import reporting, runs, suite

STEPS = {"paper": 30_000}  # the paper's comparison: the copy-accuracy gain after 30k steps
PAPER_LR = 5e-6
CONVERTED = "pretrained/llama-3.2-1b"  # under the workdir: the converted Llama 3.2 1B
FAMILY = "transformer"  # a Llama decoder

# (label, run suffix, memory.kind, memory.encoding, pretrained decoder?, the paper's finding)
ROWS: tuple[tuple[str, str, str, str, bool, str], ...] = (
    ("memory model, pretrained decoder", "pretrained_copy", "parallel", "text", True,
     "jumps at the first eval, then rises slowly (~1 % in 30k steps); above no memory after ~1k steps"),
    ("random-encoding control", "pretrained_copy_random", "parallel", "random", True,
     "the same early jump; below the memory model"),
    ("no memory, pretrained decoder", "pretrained_copy_no_memory", "none", "text", True,
     "below the memory model after ~1k steps"),
    ("memory model, from-scratch decoder", "scratch_copy", "parallel", "text", False,
     "~15 % copy-accuracy gain over the same steps"),
)


@dataclasses.dataclass(frozen=True)
class Decoder:
  """The pretrained decoder: its architecture (config-section fields), vocabulary and tokenizer,
  the folder it is read from, and the suite run that trains it (None: a converted model)."""

  architecture: dict[str, Any]
  tie_embeddings: bool
  vocab_size: int
  tokenizer: str
  checkpoint: str
  source: suite.RunSpec | None


def decoder(scale: str, root: pathlib.Path) -> Decoder:
  from memjax.models import hf_llama
  from memjax.models.config import MODEL_FIELDS

  if scale == "paper":
    arch, tie = hf_llama.read_config(hf_llama.LLAMA_3_2_1B)
    folder = pathlib.Path(root) / CONVERTED
    fields = {k: v for k, v in arch.to_dict().items() if k in MODEL_FIELDS}
    return Decoder(fields, tie, arch.vocab_size, str(folder / "tokenizer.json"), str(folder), None)
  clm = runs.clm(scale, FAMILY)
  fields = {k: clm.cfg.model[k] for k in MODEL_FIELDS if k in clm.cfg.model}
  return Decoder(fields, bool(clm.cfg.model.tie_embeddings), clm.cfg.data.vocab_size, clm.cfg.data.tokenizer,
                 str(suite.run_dir(root, clm.name)), clm)


def run(scale: str, root: pathlib.Path, suffix: str, kind: str, encoding: str, pretrained: bool) -> suite.RunSpec:
  """A copy-objective memory model (configs/memory.py) whose decoder has the pretrained decoder's
  architecture, vocabulary and tokenizer, and its weights when `pretrained`: <family>_<suffix>."""
  cfg = suite.config("memory.py", scale, STEPS, family=FAMILY, kind=kind, stages="copy", encoding=encoding)
  lm = decoder(scale, root)
  cfg.decoder.update(lm.architecture)  # the model's fields; the preset's execution fields stay
  cfg.decoder.update(checkpoint=lm.checkpoint if pretrained else "", tie_embeddings=lm.tie_embeddings)
  cfg.data.update(vocab_size=lm.vocab_size, tokenizer=lm.tokenizer)
  cfg.memory.slots = "fixed"  # memories in fixed positions (§2.6), as configs/memory.py's decoder=
  if scale == "paper":
    cfg.train.lr = PAPER_LR
    # Llama 3.2 1B's float32 parameters and AdamW state are 15.3 GiB per chip when replicated, over a
    # v5e chip's 16 GiB; split over every device (FSDP) the step needs 12.2 GiB (docs/tpu.md).
    cfg.mesh.update(data=1, fsdp=-1)
  return suite.RunSpec(f"{FAMILY}_{suffix}", cfg)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  source = decoder(scale, root).source
  return ([source] if source else []) + [run(scale, root, *row[1:5]) for row in ROWS]


def report(ctx: suite.Context) -> dict[str, Any]:
  rows, table_rows, accuracy, loss = [], [], {}, {}
  for label, suffix, *_, paper in ROWS:
    name = f"{FAMILY}_{suffix}"
    metrics = ctx.eval(name)
    curve = ctx.curve(name, "copy/accuracy")
    first = curve[0][1] if curve else None
    row = {"model": label, "copy_accuracy": metrics["copy/accuracy"], "copy_loss": metrics["copy/loss"],
           "copy_accuracy_first_eval": first,
           "copy_accuracy_gain": metrics["copy/accuracy"] - first if curve else None}
    rows.append(row)
    table_rows.append([label, row["copy_accuracy_first_eval"], row["copy_accuracy"], row["copy_accuracy_gain"],
                       row["copy_loss"], paper])
    accuracy[label], loss[label] = curve, ctx.curve(name, "copy/loss")
  table = reporting.markdown_table(["model", "copy accuracy (first eval)", "copy accuracy (end)",
                                    "gain (end - first eval)", "copy CE (end)", "paper (§5.8)"], table_rows)
  fig, axes = reporting.figure(2)
  reporting.plot_curves(axes[0], accuracy, title="copy accuracy (held out)", ylabel="token accuracy")
  reporting.plot_curves(axes[1], loss, title="copy loss (held out)", ylabel="cross-entropy (nats)")
  return {"rows": rows, "table": table, "figures": [reporting.save(fig, ctx.out / "pretrained.png")]}


# (first row's label, second's, key, the paper: the first's value is 'more' or 'less')
FINDINGS: tuple[tuple[str, str, str, str], ...] = (
    ("memory model, pretrained decoder", "random-encoding control", "copy_accuracy", "more"),
    ("memory model, pretrained decoder", "no memory, pretrained decoder", "copy_accuracy", "more"),
    ("memory model, from-scratch decoder", "memory model, pretrained decoder", "copy_accuracy_gain", "more"),
)
KEY_NAMES = {"copy_accuracy": "copy acc. at the end", "copy_accuracy_gain": "copy-acc. gain (end - first eval)"}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  by_model = {r["model"]: r for r in summary["rows"]}
  return [reporting.finding(f"{KEY_NAMES[key]}: {first} vs {second}", by_model[first][key],
                            by_model[second][key], paper)
          for first, second, key, paper in FINDINGS
          if by_model[first][key] is not None and by_model[second][key] is not None]


EXPERIMENT = suite.Experiment("pretrained", "Pretrained causal decoders in memory models (paper §5.8)",
                              plan, report, findings=findings)
