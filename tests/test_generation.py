"""Incremental decoding equals re-running the training forward pass at every step, for every model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.generation import cache as cache_lib
from memjax.generation.generator import Generator
from memjax.generation.sampling import Sampling, filtered_logits, sample
from memjax.models.autoencoder import Autoencoder
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.models.recurrent import RecurrentMemoryModel

V, K, L = 40, 4, 4  # vocabulary; memory models: 4 chunks of 4 tokens (context 16)
TOLERANCE = 1e-5  # float32 logits: the cached and full computations sum in different orders


def config(family, length, d=16, **kw):
  extra = dict(n_kv_heads=1) if family == "transformer" else dict(mixer_kernel=2, mixer_heads=2)
  return StackConfig(family=family, d_model=d, n_layers=2, length=length, vocab_size=V, n_heads=2,
                     **extra | kw)


def build(kind, family, slots="fixed"):
  rngs = nnx.Rngs(0)
  if kind == "clm":
    return CausalLM(config(family, K * L), tie_embeddings=family == "transformer", rngs=rngs)
  if kind == "recurrent":
    return RecurrentMemoryModel(config(family, L + 1), chunks=K, rngs=rngs)
  encoder = config(family, L, d=8) if kind == "parallel" else None
  return MemoryModel(encoder, config(family, K - 1 + L), chunks=K, slots=slots, rngs=rngs)


def greedy_by_full_forward(model, context, prompt, steps):
  """The reference: the training forward pass on the whole (right-padded) sequence at every step."""
  graphdef, params = nnx.split(model)
  forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x)["logits"])
  sequence, logits = list(prompt), []
  for _ in range(steps):
    padded = np.zeros((1, context), np.int32)
    padded[0, :len(sequence)] = sequence
    row = np.asarray(forward(params, padded)[0, len(sequence) - 1])
    logits.append(row)
    sequence.append(int(row.argmax()))
  return np.array(sequence[len(prompt):]), np.stack(logits)


def assert_matches_full_forward(model, context, prompts, steps, **generator_args):
  generator = Generator(model, context, **generator_args)
  out = generator.generate(prompts, steps, keep_logits=True)
  for row, prompt in enumerate(prompts):
    tokens, logits = greedy_by_full_forward(model, context, prompt, steps)
    np.testing.assert_array_equal(out["tokens"][row], tokens)
    np.testing.assert_allclose(out["logits"][row], logits, atol=TOLERANCE, rtol=0)
  return generator


PROMPTS = [list(range(5, 11)), [7], [3, 1, 4, 1]]  # 6, 1 and 4 tokens: chunk phases 2, 1 and 0 (full)


@pytest.mark.parametrize("kind, slots, family", [
    ("clm", None, "transformer"), ("clm", None, "mixer"),
    ("parallel", "fixed", "transformer"), ("parallel", "fixed", "mixer"),
    ("parallel", "variable", "transformer"), ("none", "fixed", "mixer"),
    ("recurrent", None, "transformer"), ("recurrent", None, "mixer")])
def test_greedy_decoding_with_cache_equals_full_forward(kind, slots, family):
  # 7 new tokens after prompts of 1..6 tokens cross one to three chunk boundaries (chunks of 4)
  generator = assert_matches_full_forward(build(kind, family, slots), K * L, PROMPTS, 7)
  assert generator.step_fn._cache_size() == 1  # one decode step for all tokens and lengths


def test_causal_prefill_in_blocks_with_an_overlapping_last_block():
  model = build("clm", "transformer")
  # prompts padded to 10 positions, prefilled in blocks of 4 starting at 0, 4 and 6
  assert_matches_full_forward(model, K * L, [list(range(1, 10)), [5, 6]], 2, cache_len=10, prefill_block=4)


def test_one_decode_step_for_all_lengths_and_one_prefill_per_bucket():
  generator = Generator(build("parallel", "transformer"), K * L)
  for prompt_len in (1, 3, 4, 6, 9, 12):  # 3 buckets of whole chunks: 4, 8, 12 tokens
    generator.generate([list(range(1, prompt_len + 1))], 3)
  assert generator.step_fn._cache_size() == 1
  assert generator.prefill_fn._cache_size() == 3
  causal = Generator(build("clm", "mixer"), K * L)
  for prompt_len in (1, 5, 9, 13):  # buckets: 16 positions (the whole cache) for all
    causal.generate([[2] * prompt_len], 2)
  assert causal.step_fn._cache_size() == 1 and causal.prefill_fn._cache_size() == 1


def test_cache_bytes_by_hand():
  float32 = 4
  clm = Generator(build("clm", "transformer"), K * L)
  clm.generate([[1, 2]], 1)
  # 2 layers x (keys + values) x batch 1 x 16 positions x 1 kv head x head dim 8
  assert clm.cache_bytes(clm.last_state) == 2 * 2 * 1 * 16 * 1 * 8 * float32
  memory = Generator(build("parallel", "transformer"), K * L)
  memory.generate([[1, 2], [3]], 1)
  # batch 2, 3 memory slots + one chunk of 4 tokens
  assert memory.cache_bytes(memory.last_state) == 2 * 2 * 2 * (3 + 4) * 1 * 8 * float32
  mixer = Generator(build("recurrent", "mixer"), K * L)
  mixer.generate([[1, 2]], 1)
  # a mixer layer keeps its projected inputs: 2 layers x 1 memory + 4 tokens x d_model 16
  assert mixer.cache_bytes(mixer.last_state) == 2 * (1 + 4) * 16 * float32
  assert cache_lib.nbytes({"a": jnp.zeros((3, 5), jnp.bfloat16)}) == 30


def test_bad_requests_are_named():
  generator = Generator(build("parallel", "transformer"), K * L)
  with pytest.raises(ValueError, match="prompt 1 is empty"):
    generator.generate([[1], []], 2)
  with pytest.raises(ValueError, match=r"exceed what this model holds \(16 tokens\)"):
    generator.generate([[1] * 10], 7)
  autoencoder = Autoencoder(config("mixer", L), config("mixer", L), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="does not generate text"):
    Generator(autoencoder, L)
  with pytest.raises(ValueError, match="not divisible into 4 chunks"):
    Generator(build("recurrent", "transformer"), 18)


def test_top_k_and_top_p_keep_the_right_tokens():
  probs = np.array([[0.5, 0.3, 0.15, 0.05]])
  logits = jnp.log(jnp.asarray(probs))
  kept = lambda **kw: np.isfinite(np.asarray(filtered_logits(logits, Sampling(1.0, **kw))))[0].tolist()
  assert kept(top_k=2) == [True, True, False, False]
  assert kept(top_p=0.7) == [True, True, False, False]  # 0.5 < 0.7, then 0.8 reaches it
  assert kept(top_p=0.5) == [True, False, False, False]
  assert kept(top_p=0.81) == [True, True, True, False]
  assert kept(top_k=2, top_p=0.5) == [True, False, False, False]


def test_sampling_frequencies_and_seeds():
  probs = np.array([0.5, 0.3, 0.15, 0.05])
  logits = jnp.log(jnp.asarray(np.tile(probs, (20_000, 1))))
  tokens = np.asarray(sample(logits, jax.random.key(0), Sampling(1.0, top_p=0.9)))
  expected = np.array([0.5, 0.3, 0.15, 0.0]) / 0.95
  np.testing.assert_allclose(np.bincount(tokens, minlength=4) / len(tokens), expected, atol=0.015)
  # temperature 2 flattens: p_i ~ sqrt(probs)
  tokens = np.asarray(sample(logits, jax.random.key(1), Sampling(2.0)))
  np.testing.assert_allclose(np.bincount(tokens, minlength=4) / len(tokens),
                             np.sqrt(probs) / np.sqrt(probs).sum(), atol=0.015)
  generator = Generator(build("clm", "transformer"), K * L, sampling=Sampling(1.0, top_k=10))
  run = lambda seed: generator.generate([[1, 2, 3]], 8, seed=seed)["tokens"]
  np.testing.assert_array_equal(run(3), run(3))
  assert not np.array_equal(run(3), run(4))


def test_benchmark_cache_sizes_by_hand():
  from memjax.generation import benchmark, decode

  decoder = StackConfig(family="transformer", d_model=16, n_layers=3, length=1, vocab_size=V, n_heads=4,
                        n_kv_heads=2)
  context, chunk = 4096 + 256, 256
  sizes = {}
  for name in benchmark.MODELS:
    model = benchmark.build(name, decoder, decoder.replace(d_model=8), context=context, chunk=chunk)
    state = jax.eval_shape(lambda m=model: decode.for_model(m, context).init(m, 1, context))
    sizes[name] = cache_lib.nbytes(state["cache"])
  per_position = 3 * 2 * 2 * 4 * 4  # layers x (keys, values) x kv heads x head dim x float32
  assert sizes["full"] == 4352 * per_position
  assert sizes["memory"] == (16 + 256) * per_position  # 16 memory slots (17 chunks) + one chunk
  assert sizes["recurrent"] == (1 + 256) * per_position


@pytest.mark.parametrize("kind", ["clm", "parallel"])
def test_a_user_block_family_without_decode_methods_decodes_by_its_forward(kind):
  # tests/user_objectives.py's block has only __call__: the stack re-runs it over its cached inputs
  family = "user_objectives:CausalMeanBlock"
  model = (CausalLM(config(family, K * L), rngs=nnx.Rngs(0)) if kind == "clm"
           else MemoryModel(config(family, L, d=8), config(family, K - 1 + L), chunks=K, rngs=nnx.Rngs(0)))
  assert not model.decoder.stack.decodes_itself()
  assert_matches_full_forward(model, K * L, PROMPTS, 7)


def test_a_block_with_half_the_decode_methods_is_named():
  from memjax.models import decoding

  class OnlyDecode(nnx.Module):
    def decode(self, x_BxSxD, cache, positions_BxS):
      return x_BxSxD, cache

  with pytest.raises(ValueError, match="OnlyDecode defines decode but not init_cache"):
    decoding.decodes_itself(OnlyDecode)


def test_decode_attention_reads_only_the_filled_part_of_a_long_cache():
  from memjax.models.transformer import decode_lengths

  assert decode_lengths(1024) == (256, 512, 1024) and decode_lengths(16) == (16,)
  model = CausalLM(config("transformer", 1024), rngs=nnx.Rngs(0))
  # prefilled over 256 positions, then steps cross from 256 to 512 read positions
  generator = assert_matches_full_forward(model, 1024, [list(range(1, 251)), [7]], 8)
  assert generator.step_fn._cache_size() == 1
  assert_matches_full_forward(model, 1024, [[5] * 300], 2)  # prefilled over 512 positions


def test_flat_mixer_with_kernel_one_decodes_as_its_forward():
  model = CausalLM(config("mixer", K * L, mixer_kernel=1, mixer_heads=0), rngs=nnx.Rngs(0))
  assert_matches_full_forward(model, K * L, PROMPTS, 7)
