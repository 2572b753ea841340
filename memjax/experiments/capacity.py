"""Issue 21 §1: how much one memory can hold. Trained encoders against crammed vectors and the ceiling.

For each context length N, the mixer autoencoder trained on contexts of N tokens (the context_length
experiment's, runs.probed) gives a frozen decoder that regenerates N tokens from one embedding. On
the same held-out texts (and on uniform-random token texts, the control) that embedding is either
its encoder's (trained) or optimised for each text alone (crammed: training/cramming.py, Kuratov et
al. ACL 2025, AdamW at lr 0.01, every text stopped at full accuracy or after MAX_STEPS updates),
measured against the ceiling of d numbers of 16 bits: d x 16 / log2|V| tokens (metrics/capacity.py).

Reported per N and text source: token accuracy (this decoder reads no token, only the embedding, so
its teacher-forced accuracy is its greedy generation's: one pass, argmax at each position), greedy
exact match, the information gain in bits (summed cross-entropy from a zero embedding minus from
the memory), its use of the d x 16 bits, and the capacity: the largest N whose median text has
>= 99 % of its tokens recovered. One vector per text only: the autoencoder's decoder reads one
embedding (k > 1 vectors would need a decoder reading several memories, not measured here).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from memjax.experiments import reporting, runs, suite
from memjax.metrics import capacity as cap

LR = 0.01  # the crammed vectors' AdamW learning rate (Kuratov et al.; training/cramming.py's default)

LENGTHS = {"tiny": (16, 32), "cpu": (4, 8, 16, 32), "paper": (16, 64, 256, 512)}  # context_length's
FAMILY = "mixer"
TEXTS = {"tiny": 4, "cpu": 32, "paper": 128}  # held-out texts per length (and as many random ones)
MAX_STEPS = {"tiny": 10, "cpu": 1000, "paper": 5000}
SOURCES = ("text", "random tokens")
METHODS = ("crammed", "trained")
SEED = 0  # random-token texts and the crammed vectors' initialization


def autoencoder(scale: str, n_ctx: int) -> suite.RunSpec:
  return runs.probed(scale, FAMILY, "autoencoder", n_ctx)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  return [autoencoder(scale, n_ctx) for n_ctx in LENGTHS[scale]]


def held_out_texts(spec: suite.RunSpec, root: pathlib.Path, count: int) -> tuple[np.ndarray, np.ndarray]:
  """(tokens [count, N], mask) of the run's first held-out batch, by its own tokenizer."""
  from memjax import data as data_lib
  from memjax.training import run_folder

  cfg = spec.cfg.copy_and_resolve_references()
  cfg.data.tokenizer = str(suite.run_dir(root, spec.name) / run_folder.TOKENIZER_JSON)
  batch = next(iter(data_lib.batches(data_lib.prepare(cfg.data), cfg.data, split="eval", batch_size=count)))
  return np.asarray(batch["tokens"]), np.asarray(batch["mask"])


def measure(model: Any, tokens_BxT: np.ndarray, mask_BxT: np.ndarray, *, max_steps: int) -> dict[str, dict[str, np.ndarray]]:
  """Per text, for the trained embedding and the crammed one: token accuracy, exact match,
  information gain (bits) and the crammed texts' steps."""
  from memjax.training import cramming

  graphdef, params = nnx.split(model, nnx.Param)
  T = tokens_BxT.shape[1]

  def decode(frozen, vectors_BxKxE, length):  # the autoencoder's decoder reads one embedding
    return nnx.merge(graphdef, frozen).decode(vectors_BxKxE[:, 0], length)

  tokens, mask = jnp.asarray(tokens_BxT), jnp.asarray(mask_BxT, jnp.float32)
  embed = jax.jit(lambda p, t, m: nnx.merge(graphdef, p).embed(t, m))
  logits = jax.jit(decode, static_argnums=2)
  trained_BxE = embed(params, tokens, mask)
  # The crammed vectors start at random, at the scale of the encoder's embeddings.
  scale = jnp.sqrt(jnp.mean(trained_BxE ** 2))
  init_BxKxE = scale * jax.random.normal(jax.random.key(SEED), (tokens.shape[0], 1, trained_BxE.shape[-1]))
  crammed = cramming.cram(decode, params, tokens, init_BxKxE, mask_BxT=mask, max_steps=max_steps, lr=LR)

  def ce(vectors_BxKxE):
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, vectors_BxKxE, T), tokens)

  without_BxT = np.asarray(ce(jnp.zeros_like(init_BxKxE)))
  out = {}
  for method, vectors in (("crammed", crammed.vectors), ("trained", trained_BxE[:, None])):
    generated_BxT = np.asarray(jnp.argmax(logits(params, vectors, T), -1))
    fraction, exact = cap.recovered(generated_BxT, tokens_BxT, mask_BxT)
    out[method] = {"token_accuracy": fraction, "exact_match": exact,
                   "information_bits": cap.information_gain_bits(without_BxT, np.asarray(ce(vectors)), mask_BxT)}
  out["crammed"] |= {"steps": np.asarray(crammed.steps), "stopped": np.asarray(crammed.stopped)}
  return out


def report(ctx: suite.Context) -> dict[str, Any]:
  from memjax.generation import trained as trained_lib

  rows = []
  for n_ctx in LENGTHS[ctx.scale]:
    spec = autoencoder(ctx.scale, n_ctx)
    model = trained_lib.load(str(suite.run_dir(ctx.root, spec.name))).model
    # the ceiling's d: the widest code that reaches the decoder (the bridge's bottleneck, if any)
    vocab, width = spec.cfg.data.vocab_size, spec.cfg.encoder.d_model // spec.cfg.encoder.compression
    tokens, mask = held_out_texts(spec, ctx.root, TEXTS[ctx.scale])
    random_tokens = np.random.default_rng(SEED).integers(0, vocab, tokens.shape).astype(np.int32)
    for source, (texts, masks) in zip(SOURCES, ((tokens, mask), (random_tokens, np.ones_like(mask)))):
      measured = measure(model, texts, masks, max_steps=MAX_STEPS[ctx.scale])
      for method in METHODS:
        m = measured[method]
        accuracy = float(np.median(m["token_accuracy"]))
        bits = float(np.median(m["information_bits"]))
        rows.append({"n_ctx": n_ctx, "source": source, "method": method, "median_token_accuracy": accuracy,
                     "recovered_tokens": accuracy * n_ctx, "exact_match": float(np.mean(m["exact_match"])),
                     "information_bits": bits, "utilisation": bits / cap.ceiling_bits(width),
                     "ceiling_tokens": cap.ceiling_tokens(width, vocab), "width": width, "vocab_size": vocab,
                     "of_ceiling": accuracy * n_ctx / cap.ceiling_tokens(width, vocab),
                     "texts": len(texts),
                     "median_steps": float(np.median(m["steps"])) if "steps" in m else None,
                     "stopped": float(np.mean(m["stopped"])) if "stopped" in m else None})
  capacities = {(source, method): cap.capacity(
      [r["n_ctx"] for r in rows if (r["source"], r["method"]) == (source, method)],
      [r["median_token_accuracy"] for r in rows if (r["source"], r["method"]) == (source, method)])
      for source in SOURCES for method in METHODS}
  table = reporting.markdown_table(
      ["n_ctx", "texts", "method", "median token acc. (= greedy)", "greedy exact match", "median info. gain (bits)",
       "use of d x 16 bits", "ceiling (tokens)", "recovered / ceiling tokens", "crammed: median steps", "crammed: stopped at acc. 1"],
      [[r["n_ctx"], r["source"], r["method"], r["median_token_accuracy"], r["exact_match"], r["information_bits"],
        r["utilisation"], r["ceiling_tokens"], r["of_ceiling"], r["median_steps"], r["stopped"]] for r in rows])
  table += (f"\n\n{TEXTS[ctx.scale]} texts per length and source; crammed: AdamW lr {LR}, at most "
            f"{MAX_STEPS[ctx.scale]} updates per text; information gain against a zero embedding. Capacity "
            f"(largest n_ctx whose median text has >= {cap.RECOVERED:.0%} of its tokens recovered greedily): "
            + "; ".join(f"{method} on {source}: {capacities[source, method] or 'none'}"
                        for source in SOURCES for method in METHODS) + ".")
  fig, (ax,) = reporting.figure(1, width=6)
  reporting.plot_curves(ax, {f"{method} ({source})": [(r["n_ctx"], r["recovered_tokens"]) for r in rows
                                                       if (r["source"], r["method"]) == (source, method)]
                             for source in SOURCES for method in METHODS},
                        title="tokens recovered from one memory", xlabel="n_ctx",
                        ylabel="median tokens recovered greedily")
  lengths = LENGTHS[ctx.scale]
  ax.plot(lengths, lengths, color="gray", linewidth=1, linestyle=":", label="all tokens")
  ax.axhline(rows[0]["ceiling_tokens"], color="black", linestyle="--", linewidth=1, label="ceiling d x 16 / log2 V")
  ax.set_xscale("log", base=2)
  ax.legend(fontsize=7)
  return {"rows": rows, "capacity": {f"{m} ({s})": c for (s, m), c in capacities.items()}, "table": table,
          "figures": [reporting.save(fig, ctx.out / "capacity.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """Kuratov et al.: a vector optimised for its text holds far more than a trained encoder's; here, at
  the longest context, the crammed vectors recover more tokens of held-out text than the encoder's."""
  longest = max(r["n_ctx"] for r in summary["rows"])
  value = {r["method"]: r["median_token_accuracy"] for r in summary["rows"]
           if r["n_ctx"] == longest and r["source"] == "text"}
  return [reporting.finding(f"median token acc. at n_ctx {longest}: crammed vs trained encoder",
                            value["crammed"], value["trained"], "more")]


EXPERIMENT = suite.Experiment("capacity", "Capacity of one memory: crammed vs trained (issue 21 §1)", plan, report,
                              findings=findings)
