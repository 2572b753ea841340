"""Shared command-line plumbing: flag parsing that names bad input instead of raising.

Every `python -m memjax.*` command uses absl flags (`launch/` alone keeps argparse: it runs where
memjax's dependencies are not installed). absl names flags with underscores; a dashed spelling
(`--dry-run`, argparse's style, in which some commands were documented) is accepted for any flag
whose underscored name exists. Positional arguments (`reproduce NAME`, `convert hf-llama SRC DST`)
reach `main(argv)` after the flags, in order.
"""

from __future__ import annotations

import contextlib
import sys
from types import ModuleType
from typing import Callable, Iterator

from absl import app, flags, logging


def underscored(argv: list[str]) -> list[str]:
  """argv with `--dry-run[=v]` spelled `--dry_run[=v]` wherever `dry_run` is a defined flag (values,
  positional arguments and everything after `--` are left alone)."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg == "--":
      break
    name, sep, value = arg[2:].partition("=")
    if arg.startswith("--") and "-" in name and name.replace("-", "_") in flags.FLAGS:
      out[i] = f"--{name.replace('-', '_')}{sep}{value}"
  return out


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing; a bad flag or --config override exits with one line naming it."""
  program = argv[0].rsplit("/", 1)[-1]
  try:
    return flags.FLAGS([argv[0], *underscored(argv[1:])])
  except flags.Error as error:
    sys.exit(f"{program}: error: {error}\nPass --helpshort for the flags.")
  except (AttributeError, KeyError, TypeError, ValueError) as error:  # raised by config overrides
    sys.exit(f"{program}: error in the config or its overrides: {error}")


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)` with `parse_flags`, and quiet (WARNING) logging unless --verbosity is given."""

  def quiet_main(argv: list[str]) -> None:
    if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
      logging.set_verbosity(logging.WARNING)
    main(argv)

  app.run(quiet_main, flags_parser=parse_flags)


def call(command: ModuleType, argv: list[str]) -> None:
  """Runs `python -m <command> *argv` in this process (tests, notebooks): the command's flags
  (`command.define_flags`) exist for this call only, so commands that share flag names (--out)
  run one after another."""
  before = set(flags.FLAGS)
  command.define_flags()
  try:
    command.main(parse_flags([command.__name__, *argv]))
  finally:
    for name in set(flags.FLAGS) - before:
      delattr(flags.FLAGS, name)


@contextlib.contextmanager
def user_errors(program: str) -> Iterator[None]:
  """Bad input met while the command works (a missing folder, a wrong checkpoint, an existing
  output) exits with one line naming it, instead of a traceback."""
  from memjax.training.checkpoint import CheckpointError

  try:
    yield
  except (ValueError, KeyError, FileNotFoundError, FileExistsError, CheckpointError) as error:
    sys.exit(f"{program}: error: {error}")
