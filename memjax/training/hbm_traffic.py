"""Where a compiled TPU step's HBM traffic comes from, by memjax source line.

XLA's cost analysis gives one number, bytes accessed per step; a step bound by bytes needs to know
which code moves them. A compiled program's scheduled HLO names, for every top-level instruction
(a fusion, a custom call, a copy, a collective), its result and operand buffers with their tiled
layouts and memory spaces, and the Python stack that emitted it. This module sums operand and result
bytes of each top-level instruction that lives in HBM (memory space 0), attributes them to the
innermost frame in memjax/, and splits forward, backward (`transpose(` in the op name) and the rest
(optimizer, metrics). Sizes are padded to the layout's tiles, so lane padding of small dimensions
(a 32-wide head padded to 128 lanes) shows up as traffic, as it does on the chip.

It reads one computation: a program whose layers are scanned or whose batch loops counts a loop
body once. Use it on an unrolled compile (memjax/training/tpu_compile.py extrapolates in depth).
"""

from __future__ import annotations

import collections
import math
import re

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1, "s4": 0.5, "u4": 0.5, "bf16": 2,
                "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8,
                "c64": 8}
# Instructions that move no bytes of their own (views, tuples, the second half of async pairs).
_FREE = {"parameter", "constant", "bitcast", "get-tuple-element", "tuple", "copy-done", "slice-done",
         "all-reduce-done", "all-gather-done", "collective-permute-done", "async-done", "after-all",
         "partition-id", "replica-id", "iota"}
_SHAPE = re.compile(r"\b([a-z]\w*)\[([\d,]*)\](?:\{([^}]*)\})?")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = ")
_TABLE_ROW = re.compile(r"^(\d+) (.*)$")


def _shape_bytes(dtype: str, dims: str, layout: str | None) -> tuple[float, bool]:
  """(bytes padded to the layout's tiles, whether it lives in HBM)."""
  if dtype not in _DTYPE_BYTES:
    return 0.0, True
  sizes = [int(d) for d in dims.split(",") if d]
  in_hbm = True
  if layout:
    space = re.search(r"S\((\d+)\)", layout)
    in_hbm = space is None or space.group(1) == "0"
    order, _, rest = layout.partition(":")
    tile = re.match(r"T\(([\d,]+)\)", rest)
    if tile and order:
      minor_to_major = [int(d) for d in order.split(",")]
      tile_dims = [int(t) for t in tile.group(1).split(",")]
      for dim, multiple in zip(minor_to_major, reversed(tile_dims)):
        sizes[dim] = math.ceil(sizes[dim] / multiple) * multiple
  return math.prod(sizes) * _DTYPE_BYTES[dtype], in_hbm


def _type_bytes(text: str) -> float:
  return sum(b for b, hbm in (_shape_bytes(*m.groups()) for m in _SHAPE.finditer(text)) if hbm)


def _split_type(rest: str) -> tuple[str, str]:
  """'<type> <opcode>(...' -> (type, remainder); a tuple type is parenthesised."""
  if rest.startswith("("):
    depth = 0
    for i, char in enumerate(rest):
      depth += {"(": 1, ")": -1}.get(char, 0)
      if depth == 0:
        return rest[:i + 1], rest[i + 1:].lstrip()
  type_, _, remainder = rest.partition(" ")
  return type_, remainder


def _tables(text: str) -> dict[str, dict[int, str]]:
  tables, current = {}, None
  for line in text.splitlines():
    if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
      current = tables.setdefault(line, {})
      continue
    row = _TABLE_ROW.match(line)
    if current is not None and row:
      current[int(row.group(1))] = row.group(2)
    elif current is not None:
      current = None
  return tables


def _frames(tables: dict[str, dict[int, str]]) -> dict[int, str]:
  """stack_frame_id -> 'memjax/module.py:function' of its innermost memjax frame ('' if none)."""
  files = {k: v.strip('"') for k, v in tables.get("FileNames", {}).items()}
  functions = {k: v.strip('"') for k, v in tables.get("FunctionNames", {}).items()}
  locations = {}
  for key, row in tables.get("FileLocations", {}).items():
    fields = dict(re.findall(r"(\w+)=(\d+)", row))
    locations[key] = (files.get(int(fields["file_name_id"]), ""),
                      functions.get(int(fields["function_name_id"]), ""), int(fields["line"]))
  parents = {}
  for key, row in tables.get("StackFrames", {}).items():
    fields = dict(re.findall(r"(\w+)=(\d+)", row))
    parents[key] = (int(fields["file_location_id"]), int(fields.get("parent_frame_id", 0)))

  def innermost(frame: int) -> str:
    seen = set()
    while frame in parents and frame not in seen:
      seen.add(frame)
      location, parent = parents[frame]
      path, function, _ = locations.get(location, ("", "", 0))
      if "/memjax/" in path and "site-packages" not in path:
        return "memjax/" + path.rsplit("/memjax/", 1)[1] + ":" + function
      frame = parent
    return ""

  return {frame: innermost(frame) for frame in parents}


def _computations(hlo_text: str) -> dict[str, list[str]]:
  """Computation name -> its instructions, one string each (fused computations, loop bodies, the
  entry). A Pallas kernel's custom call spans several lines (its kernel metadata holds newlines, and
  a continuation line can start with '}'), so only a lone '}' closes a computation and a line that
  starts no instruction continues the one before."""
  found, name = {}, None
  for line in hlo_text.splitlines():
    if line.startswith("%") or line.startswith("ENTRY "):
      name = "ENTRY" if line.startswith("ENTRY ") else line[1:].split(" ", 1)[0]
      found[name] = []
    elif line.rstrip() == "}":
      name = None
    elif name is not None:
      if _INSTRUCTION.match(line) or not found[name]:
        found[name].append(line)
      else:
        found[name][-1] += "\n" + line
  return found


def _phase(op_names: list[str]) -> str:
  backward = sum("transpose(" in name for name in op_names)
  return "backward" if backward * 2 > len(op_names) else "forward"


def _argument(op_name: str) -> str:
  """'args[0].opt_state[1][0].mu[...]' -> 'step inputs: opt_state'."""
  field = re.match(r"args\[(\d+)\]\.?(\w*)", op_name)
  if field is None:
    return ""
  return "step inputs: " + (field.group(2) or ("batch" if field.group(1) != "0" else "state"))


def breakdown(hlo_text: str) -> dict[str, float]:
  """HBM bytes read and written per step, by '<memjax file:function> [forward|backward]'.

  An instruction is attributed to its own stack frame; a fusion without one to the most common
  frame inside its fused computation; a copy, slice or reshape without one to the instruction that
  produced its operand (a step input when it is one: parameters, optimizer state, batch)."""
  frames = _frames(_tables(hlo_text))
  computations = _computations(hlo_text)
  totals: dict[str, float] = collections.defaultdict(float)
  sizes: dict[str, float] = {}
  labels: dict[str, str] = {}

  def own_label(line: str) -> str:
    frame = re.search(r"stack_frame_id=(\d+)", line)
    op_name = re.search(r'op_name="([^"]*)"', line)
    if op_name and op_name.group(1).startswith("args["):
      return _argument(op_name.group(1))
    if frame and frames.get(int(frame.group(1))):
      return f"{frames[int(frame.group(1))]} [{_phase([op_name.group(1) if op_name else ''])}]"
    called = re.search(r"calls=%([\w.\-]+)", line)
    if called:
      inner = computations.get(called.group(1), [])
      sources = collections.Counter(frames.get(int(f), "") for l in inner
                                    for f in re.findall(r"stack_frame_id=(\d+)", l))
      sources.pop("", None)
      if sources:
        phase = _phase(re.findall(r'op_name="([^"]*)"', "\n".join(inner)))
        return f"{sources.most_common(1)[0][0]} [{phase}]"
    return ""

  for line in computations.get("ENTRY", []):
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name = match.group(1)
    type_, rest = _split_type(line[match.end():])
    opcode = rest.partition("(")[0]
    sizes[name] = _type_bytes(type_)
    operand_text = rest[len(opcode) + 1:].split(")", 1)[0] if opcode != "custom-call" else rest.split("),", 1)[0]
    operands = re.findall(r"%([\w.\-]+)", operand_text)
    labels[name] = own_label(line) or next((labels[o] for o in operands if labels.get(o)), "")
    if opcode in _FREE:
      continue
    totals[labels[name] or "unattributed"] += sizes[name] + sum(sizes.get(o, 0.0) for o in operands)
  return dict(sorted(totals.items(), key=lambda item: -item[1]))
