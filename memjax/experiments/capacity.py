"""Issue 21 §1: how much one memory can hold. Trained encoders against crammed vectors and the ceiling.

Two frozen decoders, on the same texts (held-out text, and uniform-random token texts as the control):

* for each context length N, the mixer autoencoder trained on contexts of N tokens (the
  context_length experiment's, runs.probed): its decoder reads one embedding, either its encoder's
  (trained) or one optimised for each text alone (crammed);
* the shared causal transformer LM (runs.clm; RoPE, so any length), reading [k vectors][text] with
  k in VECTORS crammed per text, regenerating the text from the vectors alone (Kuratov et al., ACL
  2025's setting).

Crammed: training/cramming.py, AdamW at lr 0.01, every text stopped at full teacher-forced accuracy
or after MAX_STEPS updates. Reported per N, text source and method (metrics/capacity.py): teacher-
forced token accuracy, greedy recovery and exact match (generation from the vectors alone), the
information gain in bits per text against the decoder's prior (its k vectors crammed for all texts at
once: the best input that knows nothing of the text) or the uniform distribution where the prior is
worse (an autoencoder's decoder is confident whatever it reads); the gain is bounded by that baseline,
its use of the k x d x 16 bits, the ceiling k x d x 16 / log2|V| tokens, and the capacity: the largest
N whose median text has >= 99 % of its tokens recovered greedily.
"""

from __future__ import annotations

import math
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
FAMILY = "mixer"  # the autoencoders'
LM_FAMILY = "transformer"  # the causal LM's: RoPE positions, any text length after k vectors
VECTORS = (1, 2, 4)  # k input vectors per text into the causal LM
# Held-out texts per length (and as many random ones), updates per crammed text and of the prior
# (one input for all texts): at cpu scale sized for 3 seeds in one call of about an hour on the shared
# 2-core machine (docs/results.md).
TEXTS = {"tiny": 4, "cpu": 16, "paper": 128}
MAX_STEPS = {"tiny": 10, "cpu": 500, "paper": 5000}
PRIOR_STEPS = {"tiny": 10, "cpu": 200, "paper": 5000}
SOURCES = ("text", "random tokens")
SEED = 0  # random-token texts and the crammed vectors' initialization


def autoencoder(scale: str, n_ctx: int) -> suite.RunSpec:
  return runs.probed(scale, FAMILY, "autoencoder", n_ctx)


def causal_lm(scale: str) -> suite.RunSpec:
  return runs.clm(scale, LM_FAMILY)


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  return [autoencoder(scale, n_ctx) for n_ctx in LENGTHS[scale]] + [causal_lm(scale)]


def held_out_texts(spec: suite.RunSpec, root: pathlib.Path, count: int) -> tuple[np.ndarray, np.ndarray]:
  """(tokens [count, N], mask) of the run's first held-out batch, by its own tokenizer."""
  from memjax import data as data_lib
  from memjax.training import run_folder

  cfg = spec.cfg.copy_and_resolve_references()
  cfg.data.tokenizer = str(suite.run_dir(root, spec.name) / run_folder.TOKENIZER_JSON)
  batch = next(iter(data_lib.batches(data_lib.prepare(cfg.data), cfg.data, split="eval", batch_size=count)))
  return np.asarray(batch["tokens"]), np.asarray(batch["mask"])


def score(decode: Any, frozen: Any, vectors_BxKxE: jax.Array, prior_1xKxE: jax.Array, tokens_BxT: np.ndarray,
          mask_BxT: np.ndarray) -> dict[str, np.ndarray]:
  """Per text: teacher-forced token accuracy, greedy recovery and exact match from the vectors alone,
  the prior's cross-entropy (bits, summed over the text), and the information gain (bits) over the
  uninformed baseline: the decoder's prior or, where that is worse on these texts (a decoder that is
  confident whatever its input), the uniform distribution, log2|V| bits a token."""
  from memjax.training import cramming

  tokens, mask = jnp.asarray(tokens_BxT), jnp.asarray(mask_BxT, jnp.float32)
  B, T = tokens.shape
  forward = cramming.forward(decode)
  logits_BxTxV = forward(frozen, vectors_BxKxE, tokens)
  ce = lambda logits: np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, tokens))
  with_BxT = ce(logits_BxTxV)
  prior_BxT = ce(forward(frozen, jnp.broadcast_to(prior_1xKxE, (B,) + prior_1xKxE.shape[1:]), tokens))
  uniform_BxT = np.full(with_BxT.shape, math.log(logits_BxTxV.shape[-1]))
  mask_np = np.asarray(mask_BxT, np.float64)
  baseline_BxT = prior_BxT if (prior_BxT * mask_np).sum() <= (uniform_BxT * mask_np).sum() else uniform_BxT
  _, accuracy_B = cramming.text_losses(logits_BxTxV, tokens, mask)
  fraction, exact = cap.recovered(np.asarray(cramming.greedy(decode, frozen, vectors_BxKxE, T)), tokens_BxT, mask_BxT)
  return {"token_accuracy": np.asarray(accuracy_B), "recovered": fraction, "exact_match": exact,
          "prior_bits": (prior_BxT * mask_np).sum(1) / math.log(2),
          "baseline_bits": (baseline_BxT * mask_np).sum(1) / math.log(2),
          "information_bits": cap.information_gain_bits(baseline_BxT, with_BxT, mask_BxT)}


def _cram(decode, frozen, tokens_BxT, mask_BxT, init_BxKxE, prior_init_1xKxE, *, max_steps, prior_steps):
  """Crammed vectors and the prior, and the crammed vectors' scores with their steps."""
  from memjax.training import cramming

  tokens, mask = jnp.asarray(tokens_BxT), jnp.asarray(mask_BxT, jnp.float32)
  crammed = cramming.cram(decode, frozen, tokens, init_BxKxE, mask_BxT=mask, max_steps=max_steps, lr=LR)
  prior = cramming.prior(decode, frozen, tokens, prior_init_1xKxE, mask_BxT=mask, steps=prior_steps, lr=LR)
  scores = score(decode, frozen, crammed.vectors, prior, tokens_BxT, mask_BxT)
  return scores | {"steps": np.asarray(crammed.steps), "stopped": np.asarray(crammed.stopped)}, prior


def measure(model: Any, tokens_BxT: np.ndarray, mask_BxT: np.ndarray, *, max_steps: int,
            prior_steps: int) -> dict[str, dict[str, np.ndarray]]:
  """An autoencoder's decoder: per text, `score` of the trained embedding and of the crammed one
  (with its steps), against one prior."""
  from memjax.training import cramming

  graphdef, params = nnx.split(model, nnx.Param)
  decode = cramming.embedding_decoder(graphdef)
  trained_Bx1xE = jax.jit(lambda p, t, m: nnx.merge(graphdef, p).embed(t, m))(
      params, jnp.asarray(tokens_BxT), jnp.asarray(mask_BxT, jnp.float32))[:, None]
  # Crammed vectors start at random at the scale of the encoder's embeddings; the prior at their mean.
  scale = jnp.sqrt(jnp.mean(trained_Bx1xE ** 2))
  init_BxKxE = scale * jax.random.normal(jax.random.key(SEED), trained_Bx1xE.shape)
  crammed, prior = _cram(decode, params, tokens_BxT, mask_BxT, init_BxKxE, trained_Bx1xE.mean(0, keepdims=True),
                         max_steps=max_steps, prior_steps=prior_steps)
  return {"crammed": crammed, "trained": score(decode, params, trained_Bx1xE, prior, tokens_BxT, mask_BxT)}


def measure_lm(model: Any, tokens_BxT: np.ndarray, mask_BxT: np.ndarray, k: int, *, max_steps: int,
               prior_steps: int) -> dict[str, np.ndarray]:
  """A causal LM reading [k vectors][text]: per text, `score` of k crammed vectors, against the LM's
  prior (k vectors crammed for all texts: without any, the LM has nothing to predict the first token from)."""
  from memjax.training import cramming

  graphdef, params = nnx.split(model, nnx.Param)
  table = model.decoder.embed.embedding.value
  # Start at random at the scale of the LM's token embeddings.
  scale = jnp.sqrt(jnp.mean(table.astype(jnp.float32) ** 2))
  init_BxKxE = scale * jax.random.normal(jax.random.key(SEED), (tokens_BxT.shape[0], k, table.shape[-1]))
  return _cram(cramming.prefix_decoder(graphdef), params, tokens_BxT, mask_BxT, init_BxKxE, init_BxKxE[:1],
               max_steps=max_steps, prior_steps=prior_steps)[0]


def method_name(decoder: str, method: str, k: int) -> str:
  return f"{decoder} {method}" + (f" k={k}" if decoder == "LM" else "")


def report(ctx: suite.Context) -> dict[str, Any]:
  from memjax.generation import trained as trained_lib

  steps = {"max_steps": MAX_STEPS[ctx.scale], "prior_steps": PRIOR_STEPS[ctx.scale]}
  lm_spec = causal_lm(ctx.scale)
  lm = trained_lib.load(str(suite.run_dir(ctx.root, lm_spec.name))).model
  lm_width = lm_spec.cfg.model.d_model
  rows = []
  for n_ctx in LENGTHS[ctx.scale]:
    spec = autoencoder(ctx.scale, n_ctx)
    if spec.cfg.data.vocab_size != lm_spec.cfg.data.vocab_size:
      raise ValueError(f"{spec.name} and {lm_spec.name} have different vocabularies")
    model = trained_lib.load(str(suite.run_dir(ctx.root, spec.name))).model
    # the ceiling's d: the widest code that reaches the decoder (the bridge's bottleneck, if any)
    vocab, width = spec.cfg.data.vocab_size, spec.cfg.encoder.d_model // spec.cfg.encoder.compression
    tokens, mask = held_out_texts(spec, ctx.root, TEXTS[ctx.scale])
    random_tokens = np.random.default_rng(SEED).integers(0, vocab, tokens.shape).astype(np.int32)
    for source, (texts, masks) in zip(SOURCES, ((tokens, mask), (random_tokens, np.ones_like(mask)))):
      measured = measure(model, texts, masks, **steps)
      cases = [("autoencoder", method, 1, width, measured[method]) for method in ("crammed", "trained")]
      cases += [("LM", "crammed", k, lm_width, measure_lm(lm, texts, masks, k, **steps)) for k in VECTORS]
      for decoder, method, k, d, m in cases:
        recovered = float(np.median(m["recovered"]))
        bits = float(np.median(m["information_bits"]))
        ceiling = cap.ceiling_tokens(k * d, vocab)
        rows.append({"n_ctx": n_ctx, "source": source, "method": method_name(decoder, method, k), "k": k,
                     "token_accuracy": float(np.median(m["token_accuracy"])), "recovered": recovered,
                     "recovered_tokens": recovered * n_ctx, "exact_match": float(np.mean(m["exact_match"])),
                     "information_bits": bits, "prior_bits": float(np.median(m["prior_bits"])),
                     "baseline_bits": float(np.median(m["baseline_bits"])),
                     "utilisation": bits / cap.ceiling_bits(k * d), "ceiling_tokens": ceiling,
                     "of_ceiling": recovered * n_ctx / ceiling, "texts": len(texts),
                     "median_steps": float(np.median(m["steps"])) if "steps" in m else None,
                     "stopped": float(np.mean(m["stopped"])) if "stopped" in m else None})
  methods = list(dict.fromkeys(r["method"] for r in rows))
  capacities = {(source, method): cap.capacity(
      [r["n_ctx"] for r in rows if (r["source"], r["method"]) == (source, method)],
      [r["recovered"] for r in rows if (r["source"], r["method"]) == (source, method)])
      for source in SOURCES for method in methods}
  table = reporting.markdown_table(
      ["n_ctx", "texts", "method", "median teacher-forced acc.", "median greedy recovered", "greedy exact match",
       "median info. gain (bits)", "median prior CE (bits)", "median baseline CE (bits, bound)", "use of k x d x 16 bits", "ceiling (tokens)",
       "recovered / ceiling tokens", "crammed: median steps", "crammed: stopped at acc. 1"],
      [[r["n_ctx"], r["source"], r["method"], r["token_accuracy"], r["recovered"], r["exact_match"],
        r["information_bits"], r["prior_bits"], r["baseline_bits"], r["utilisation"], r["ceiling_tokens"], r["of_ceiling"],
        r["median_steps"], r["stopped"]] for r in rows])
  table += (f"\n\n{TEXTS[ctx.scale]} texts per length and source; crammed: AdamW lr {LR}, at most "
            f"{MAX_STEPS[ctx.scale]} updates per text; information gain against the decoder's prior (its "
            f"input crammed for all texts at once, {PRIOR_STEPS[ctx.scale]} updates) or, where the prior does worse on the "
            f"set, the uniform distribution (n_ctx x log2|V| bits a text). Capacity (largest n_ctx "
            f"whose median text has >= {cap.RECOVERED:.0%} of its tokens recovered greedily):\n\n")
  table += reporting.markdown_table(["method", *SOURCES], [[method, *(capacities[source, method] for source in SOURCES)]
                                                            for method in methods])
  fig, axes = reporting.figure(len(SOURCES), width=6)
  lengths = LENGTHS[ctx.scale]
  for ax, source in zip(axes, SOURCES):
    reporting.plot_curves(ax, {method: [(r["n_ctx"], r["recovered_tokens"]) for r in rows
                                        if (r["source"], r["method"]) == (source, method)] for method in methods},
                          title=f"tokens recovered from the vectors ({source})", xlabel="n_ctx (text length)",
                          ylabel="median tokens recovered greedily")
    ax.plot(lengths, lengths, color="gray", linewidth=1, linestyle=":", label="all tokens")
    for k in VECTORS:
      ceiling = next(r["ceiling_tokens"] for r in rows if r["k"] == k and r["method"].startswith("LM"))
      ax.axhline(ceiling, color="black", linestyle="--", linewidth=0.5 + 0.5 * k, label=f"ceiling k={k}: k d 16 / log2 V")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.legend(fontsize=6)
  return {"rows": rows, "capacity": {f"{m} ({s})": c for (s, m), c in capacities.items()}, "table": table,
          "figures": [reporting.save(fig, ctx.out / "capacity.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """Kuratov et al.: a vector optimised for its text holds far more than a trained encoder's, and more
  vectors hold more; here, at the longest context, greedy recovery of held-out text."""
  longest = max(r["n_ctx"] for r in summary["rows"])
  value = {r["method"]: r["recovered"] for r in summary["rows"] if r["n_ctx"] == longest and r["source"] == "text"}
  lm = lambda k: method_name("LM", "crammed", k)
  return [reporting.finding(f"greedy recovery at n_ctx {longest}: autoencoder crammed vs trained",
                            value["autoencoder crammed"], value["autoencoder trained"], "more"),
          reporting.finding(f"greedy recovery at n_ctx {longest}: LM crammed k={max(VECTORS)} vs k=1",
                            value[lm(max(VECTORS))], value[lm(1)], "more")]


EXPERIMENT = suite.Experiment("capacity", "Capacity of one memory: crammed vs trained (issue 21 §1)", plan, report,
                              findings=findings)
