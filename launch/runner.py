"""One runner executes the commands that the launchers build; a dry run prints them instead.

Launchers are plain functions that take a runner. `Shell` runs each command (subprocess, no shell);
`DryRun` prints each one as a line of bash and answers queries with the happy path (`Cmd.dry_stdout`),
so a dry run's output is itself a bash script: the exact commands, in order, executing nothing.
Tests pass a fake runner that plays a scripted cloud.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from typing import Protocol, TextIO

HEREDOC = "MEMJAX_EOF"


@dataclasses.dataclass(frozen=True)
class Cmd:
  """A command as argv. `capture`: the caller reads stdout (a query); `check`: non-zero raises;
  `with_stderr`: stderr is captured into stdout too (a report whose verdict is on stderr)."""
  argv: tuple[str, ...]
  capture: bool = False
  check: bool = True
  dry_stdout: str = ""
  with_stderr: bool = False

  def __str__(self) -> str:
    return shlex.join(self.argv)


def cmd(*argv: str, **kwargs) -> Cmd:
  return Cmd(tuple(argv), **kwargs)


@dataclasses.dataclass(frozen=True)
class Result:
  returncode: int
  stdout: str = ""


class CommandError(RuntimeError):
  def __init__(self, command: Cmd, returncode: int):
    super().__init__(f"command failed with exit code {returncode}: {command}")
    self.command, self.returncode = command, returncode


# How to get each tool the launchers run, for the error when it is not on PATH.
INSTALL = {
    "gcloud": "install the Google Cloud SDK (https://cloud.google.com/sdk/docs/install), then `gcloud init`",
    "xpk": "`pip install xpk` (it also needs gcloud, kubectl and docker)",
    "sbatch": "run on a SLURM login node, where sbatch is on PATH",
    "git": "install git and run from a clone of memjax",
}


class MissingTool(CommandError):
  """The command's program is not on PATH: nothing ran."""

  def __init__(self, command: Cmd):
    tool = command.argv[0]
    hint = INSTALL.get(os.path.basename(tool), "install it or put it on PATH")
    RuntimeError.__init__(self, f"{tool} is not installed (not found on PATH): {hint}")
    self.command, self.returncode = command, 127


class Runner(Protocol):
  def run(self, command: Cmd) -> Result: ...
  def write(self, path: str, text: str) -> None: ...
  def sleep(self, seconds: float) -> None: ...
  def say(self, message: str) -> None: ...


class Shell:
  """Runs commands for real; progress goes to stderr, command output passes through."""

  def __init__(self, err: TextIO | None = None):
    self.err = err or sys.stderr

  def run(self, command: Cmd) -> Result:
    self.say(f"$ {command}")
    try:
      done = subprocess.run(command.argv, stdout=subprocess.PIPE if command.capture else None,
                            stderr=subprocess.STDOUT if command.with_stderr else None, text=True)
    except FileNotFoundError as error:
      raise MissingTool(command) from error
    if command.check and done.returncode:
      raise CommandError(command, done.returncode)
    return Result(done.returncode, done.stdout or "")

  def write(self, path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
      f.write(text)

  def sleep(self, seconds: float) -> None:
    time.sleep(seconds)

  def say(self, message: str) -> None:
    print(f"launch: {message}", file=self.err, flush=True)


class DryRun:
  """Prints each command as bash and executes nothing; queries get `Cmd.dry_stdout` (success)."""

  def __init__(self, out: TextIO | None = None):
    self.out = out or sys.stdout

  def run(self, command: Cmd) -> Result:
    print(command, file=self.out)
    return Result(0, command.dry_stdout)

  def write(self, path: str, text: str) -> None:
    assert HEREDOC not in text, f"{path} contains the heredoc delimiter"
    print(f"cat > {shlex.quote(path)} <<'{HEREDOC}'\n{text.rstrip(chr(10))}\n{HEREDOC}", file=self.out)

  def sleep(self, seconds: float) -> None:
    pass

  def say(self, message: str) -> None:
    for line in message.splitlines():
      print(f"# {line}", file=self.out)
