"""Launch memjax runs: `python -m launch {tpu,xpk,gpu} ...` (see launch/README.md).

Pure builders make the commands, one runner executes them (or, with --dry-run, prints them).
Standard library only (plus memjax/accelerators.py, the chip table, itself standard library): it
runs on a laptop that has gcloud / xpk / sbatch, without jax.
"""
