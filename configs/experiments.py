"""One run of a reproduction experiment, exactly as `python -m memjax.reproduce` trains it.

COMMAND: python -m memjax.train --config=configs/experiments.py:mixer_probe_autoencoder,scale=cpu \
             --workdir=runs/reproduce_cpu/runs/mixer_probe_autoencoder
Argument: the run's name (the folders in <workdir>/runs/; `python -m memjax.reproduce NAME` lists
each experiment's), then optional keys: scale (tiny | cpu | paper; default cpu), workdir (the
reproduce workdir whose runs/ holds the runs this one reads: frozen encoders, curriculum stages;
default runs/reproduce_<scale>) and seed (default 0; seed s > 0 reads and is trained in
<workdir>/seed<s>/runs/, as `reproduce --seeds`). The config is the one the suite plans for that name (a name stands
for one config in every experiment that trains it: memjax/experiments/runs.py).
"""

import pathlib


def get_config(arg=None):
  from memjax import reproduce

  name, *items = (arg or "").split(",")
  options = {"scale": "cpu", "workdir": "", "seed": "0"}
  for item in items:
    key, has_value, value = item.partition("=")
    if not has_value or key not in options:
      raise ValueError(f"configs/experiments.py takes RUN[,scale=...][,workdir=...][,seed=...], got {arg!r}")
    options[key] = value
  return reproduce.run_config(name, options["scale"],
                              pathlib.Path(options["workdir"] or f"runs/reproduce_{options['scale']}"),
                              int(options["seed"]))
