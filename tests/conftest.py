"""Test setup: 8 virtual CPU devices (so sharding is always exercised) and a shared data cache."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# A persistent compilation cache: the tests build the same tiny models again and again (also in the
# processes they start, which inherit it), and a cache hit skips XLA's compile. A run computes the
# same numbers with or without it. Locked (filelock), so xdist workers share it; LRU-bounded.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    __import__("tempfile").gettempdir(), f"memjax-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 << 30))

import contextlib  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"


def load_config(spec: str):
  """`load_config('clm.py:tiny')` -> the ConfigDict that --config=configs/clm.py:tiny gives."""
  from memjax import config

  name, _, arg = spec.partition(":")
  return config.load(CONFIGS / name, arg or None)


@contextlib.contextmanager
def no_persistent_cache():
  """The persistent compilation cache above off: a TPU executable cannot be reloaded by a CPU
  process (a warning on every later read), so tests that compile for TPU write none."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache

  enabled = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)
  compilation_cache.reset_cache()  # whether the cache is used is decided once, then remembered
  try:
    yield
  finally:
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
  """One tokenizer and token cache for the whole session (built on first use)."""
  cache = os.environ.get("MEMJAX_TEST_CACHE") or str(tmp_path_factory.mktemp("memjax-cache"))
  os.environ["MEMJAX_CACHE"] = cache
  return pathlib.Path(cache)


@pytest.fixture
def tiny():
  """Config factory: tiny('memory.py:tiny,kind=none', steps=4) with quiet, fast training."""
  def make(spec: str, **train):
    cfg = load_config(spec)
    cfg.train.progress = False
    cfg.train.async_checkpoints = False
    cfg.train.update(train)
    return cfg
  return make


@pytest.fixture
def changed_positions():
  """changed_positions(model, tokens, j) -> bool [T]: which output positions move when token j does."""
  import jax.numpy as jnp
  import numpy as np

  def check(model, tokens, j, vocab_size):
    before = model(tokens)["logits"]
    after = model(tokens.at[:, j].set((tokens[:, j] + 1) % vocab_size))["logits"]
    return np.asarray(jnp.abs(after - before).max(axis=(0, 2)) > 0)
  return check


def train_tiny(tmp_path_factory, spec, steps, checkpoint_every):
  """Trains `spec` (e.g. 'autoencoder.py:tiny') for `steps` steps in a fresh folder: (config, workdir)."""
  from memjax.training import loop

  cfg = load_config(spec)
  cfg.train.update(progress=False, async_checkpoints=False, steps=steps, checkpoint_every=checkpoint_every)
  workdir = tmp_path_factory.mktemp(spec.split(".")[0])
  loop.run(cfg, str(workdir))
  return cfg, workdir


@pytest.fixture(scope="session")
def trained_autoencoder(tmp_path_factory, data_cache):
  """A tiny transformer autoencoder trained for a few steps: (config, workdir)."""
  return train_tiny(tmp_path_factory, "autoencoder.py:tiny", steps=6, checkpoint_every=3)
