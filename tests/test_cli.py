"""memjax.cli: dashed flag spellings, and commands run in this process one after another."""

import types

import pytest
from absl import flags

from memjax import cli


def command(seen):
  """A command with two underscored flags that records what its main receives."""
  def define_flags():
    flags.DEFINE_bool("dry_run", False, "A bool flag.")
    flags.DEFINE_float("peak_tflops", 1.0, "A valued flag.")

  def main(argv):
    seen.append((argv, flags.FLAGS.dry_run, flags.FLAGS.peak_tflops))
  return types.SimpleNamespace(__name__="memjax.fake", define_flags=define_flags, main=main)


def test_dashed_spellings_reach_their_flags_and_nothing_else_changes():
  seen = []
  cli.call(command(seen), ["hf-llama", "--dry-run", "--peak-tflops", "2.5", "my-dir", "--", "--dry-run"])
  assert seen == [(["memjax.fake", "hf-llama", "my-dir", "--dry-run"], True, 2.5)]
  cli.call(command(seen), ["--peak-tflops=0.5"])
  assert seen[-1][1:] == (False, 0.5)  # flags start at their defaults in every call


def test_a_call_leaves_no_flags_behind():
  seen = []
  with pytest.raises(SystemExit, match="Unknown command line flag 'no-such'"):
    cli.call(command(seen), ["--no-such"])
  assert not seen and "dry_run" not in flags.FLAGS and "peak_tflops" not in flags.FLAGS
