"""Convert pretrained causal LMs (and BERT encoders) between Hugging Face and memjax.

  python -m memjax.convert hf-llama SRC DST   # HF Llama folder (config.json, *.safetensors,
                                              # tokenizer.json) -> memjax checkpoint folder
  python -m memjax.convert bert SRC DST       # HF BERT folder (BertModel / BertForMaskedLM) -> the
                                              # same kind of folder holding a bidirectional encoder
                                              # (frozen encoders only: pretrained=DST)
  python -m memjax.convert to-hf SRC DST      # converted model, clm run or memory-model decoder
                                              # (LoRA merged) -> config.json, model.safetensors,
                                              # tokenizer.json that transformers loads

The memjax folder (see memjax/training/pretrained.py) is named in configs as a frozen encoder
(configs/probe.py:PRESET,pretrained=DST, or any config's --config.encoder.checkpoint=DST: its
trunk, LM head left out) or a memory model's decoder (configs/memory.py:PRESET,decoder=DST), and
scored with `python -m memjax.score`.
"""

from __future__ import annotations

import sys

from memjax import cli

COMMANDS = ("hf-llama", "bert", "to-hf")
USAGE = f"usage: python -m memjax.convert {{{','.join(COMMANDS)}}} SRC DST"


def define_flags() -> None:
  """None: the command and both folders are positional."""


def main(argv: list[str]) -> None:
  if len(argv) != 4 or argv[1] not in COMMANDS:
    sys.exit(f"memjax.convert: error: expected a command ({', '.join(COMMANDS)}) and two folders, "
             f"got {argv[1:]}\n{USAGE}")
  command, src, dst = argv[1:]
  from memjax.training import pretrained

  with cli.user_errors("memjax.convert"):
    if command == "hf-llama":
      out = pretrained.convert_hf_llama(src, dst)
    elif command == "bert":
      out = pretrained.convert_hf_bert(src, dst)
    else:
      out = pretrained.to_hf(src, dst)
  print(f"converted {src} to {out}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
