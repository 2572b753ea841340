import subprocess
import sys

import pytest

SCRIPT = "from memjax import runtime; print(runtime.tune_host_allocator())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_allocator_tuning_applies_unless_opted_out(setting, expected):
  out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       env={"MEMJAX_MALLOC_TUNING": setting, "PATH": ""}, cwd=".", check=True)
  assert out.stdout.strip() == expected
