import subprocess
import sys

import pytest

SCRIPT = "from memjax import runtime; print(runtime.tune_host_allocator())"


def _python(script: str, **env: str) -> str:
  """stdout of `script` run in a fresh interpreter with only the given environment variables."""
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={"PATH": "", "JAX_PLATFORMS": "cpu", **env}, cwd=".")
  return out.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_allocator_tuning_applies_unless_opted_out(setting, expected):
  assert _python(SCRIPT, MEMJAX_MALLOC_TUNING=setting).strip() == expected


PROBE = """
from memjax import runtime
applied = runtime.tune_xla_cpu()
import os, jax, jax.numpy as jnp
x = jnp.ones((512, 512))  # oneDNN takes products from 256 x 256 up
hlo = jax.jit(lambda a: a @ a.T).lower(x).compile().as_text()
print(applied, "__onednn$matmul" in hlo, os.environ.get("XLA_FLAGS", ""))
"""


def _probe(**env: str) -> list[str]:
  return (_python(PROBE, **env).split(maxsplit=2) + [""])[:3]


def test_xla_tuning_routes_products_to_onednn_on_x86_with_jaxlib_0_12():
  from memjax.runtime import onednn_checked_here

  applied, onednn, flags = _probe()
  expected = onednn_checked_here()
  assert (applied, onednn) == (str(expected), str(expected))
  assert ("onednn_custom_call" in flags) == expected


@pytest.mark.parametrize("env", [{"MEMJAX_XLA_TUNING": "0"},
                                 {"XLA_FLAGS": "--xla_cpu_experimental_onednn_custom_call=false"}])
def test_xla_tuning_leaves_opt_outs_and_user_flags_alone(env):
  applied, onednn, flags = _probe(**env)
  assert (applied, onednn) == ("False", "False")
  assert flags.strip() == env.get("XLA_FLAGS", "")
