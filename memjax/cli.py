"""Shared command-line plumbing: flag parsing that names bad input instead of raising."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from absl import app, flags, logging


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing; a bad flag or --config override exits with one line naming it."""
  program = argv[0].rsplit("/", 1)[-1]
  try:
    return flags.FLAGS(argv)
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


@contextlib.contextmanager
def user_errors(program: str) -> Iterator[None]:
  """Bad input met while the command works (a missing folder, a wrong checkpoint, an existing
  output) exits with one line naming it, instead of a traceback."""
  from memjax.training.checkpoint import CheckpointError

  try:
    yield
  except (ValueError, KeyError, FileNotFoundError, FileExistsError, CheckpointError) as error:
    sys.exit(f"{program}: error: {error}")
