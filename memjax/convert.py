"""Convert pretrained causal LMs between Hugging Face and memjax.

  python -m memjax.convert hf-llama SRC DST   # HF Llama folder (config.json, *.safetensors,
                                              # tokenizer.json) -> memjax checkpoint folder
  python -m memjax.convert to-hf SRC DST      # converted model, clm run or memory-model decoder
                                              # (LoRA merged) -> config.json, model.safetensors,
                                              # tokenizer.json that transformers loads

The memjax folder (see memjax/training/pretrained.py) is named in configs as a probe's frozen
encoder (configs/probe.py:PRESET,pretrained=DST) or a memory model's decoder
(configs/memory.py:PRESET,decoder=DST), and scored with `python -m memjax.score`.
"""

from __future__ import annotations

import argparse

COMMANDS = ("hf-llama", "to-hf")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m memjax.convert", description=__doc__.split("\n")[0])
  parser.add_argument("command", choices=COMMANDS)
  parser.add_argument("src", help="the folder to convert")
  parser.add_argument("dst", help="a new (or empty) folder for the result")
  args = parser.parse_args(argv)
  from memjax import cli
  from memjax.training import pretrained

  with cli.user_errors("memjax.convert"):
    if args.command == "hf-llama":
      out = pretrained.convert_hf_llama(args.src, args.dst)
    else:
      out = pretrained.to_hf(args.src, args.dst)
  print(f"converted {args.src} to {out}")


if __name__ == "__main__":
  main()
