"""memjax installs as a wheel: every package is in it, and the installed copy trains and exports
from a folder outside the repository (nothing is imported from the checkout)."""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  """A wheel built (offline, no build isolation) from a copy of the project's packaging files."""
  source = tmp_path_factory.mktemp("source")
  for name in ("setup.cfg", "pyproject.toml", "README.md"):
    shutil.copy(ROOT / name, source / name)
  shutil.copytree(ROOT / "memjax", source / "memjax", ignore=shutil.ignore_patterns("__pycache__"))
  out = tmp_path_factory.mktemp("wheel")
  build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "-w", str(out), str(source)],
                         capture_output=True, text=True, timeout=300)
  assert build.returncode == 0, build.stderr[-3000:]
  (path,) = out.glob("memjax-*.whl")
  return path


def test_the_wheel_holds_every_module_of_the_checkout(wheel):
  in_checkout = {str(p.relative_to(ROOT)) for p in (ROOT / "memjax").rglob("*.py")
                 if "__pycache__" not in p.parts}
  in_wheel = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("memjax/")}
  assert in_checkout - in_wheel == set()


def test_the_installed_wheel_trains_and_exports_outside_the_repository(wheel, tmp_path, data_cache):
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
  python = venv / "bin" / "python"
  # The new environment sees this one's dependencies (jax, flax, ...) but not its memjax: a plain
  # path entry does not run the editable install's .pth hooks.
  site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
  pathlib.Path(site, "memjax_test_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")
  install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                            "--no-index", "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
  assert install.returncode == 0, install.stderr[-3000:]

  outside = tmp_path / "elsewhere"
  outside.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env |= {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
          "MEMJAX_CACHE": str(data_cache)}

  def run(*args):
    return subprocess.run([str(python), *args], cwd=outside, env=env, capture_output=True, text=True,
                          timeout=600)

  where = run("-c", "import memjax.training.loop as m; print(m.__file__)")
  assert where.returncode == 0, where.stderr[-3000:]
  assert where.stdout.strip().startswith(site), where.stdout
  train = run("-m", "memjax.train", f"--config={ROOT}/configs/autoencoder.py:tiny", "--workdir=run",
              "--config.train.steps=2", "--config.train.warmup_steps=1",
              "--config.train.progress=False")
  assert train.returncode == 0, train.stderr[-3000:]
  assert (outside / "run" / "results.json").exists()
  export = run("-m", "memjax.export", "--workdir=run", "--out=encoder")
  assert export.returncode == 0, export.stderr[-3000:]
  assert (outside / "encoder" / "encoder.json").exists()
