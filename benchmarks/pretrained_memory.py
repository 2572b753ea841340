"""Peak host memory of converting and loading a pretrained causal LM (see pretrained_memory.sh).

  python benchmarks/pretrained_memory.py make DIR    # a random ~370M-parameter Llama (bfloat16, as
                                                     # published checkpoints), with an 8000-token BPE
  python benchmarks/pretrained_memory.py load DIR    # a memory model whose decoder is DIR (LoRA):
                                                     # the training state, initialized and loaded

Each prints one JSON line with the process's peak resident memory (getrusage ru_maxrss).
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHAPE = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
             num_key_value_heads=4, rope_theta=500000.0, max_position_embeddings=131072,
             rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})


def peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make(out: str) -> None:
  import torch
  import transformers

  sys.path.insert(0, str(ROOT))
  from memjax import config as mc, data as data_lib

  tokenizer = data_lib.prepare(mc.load(ROOT / "configs/clm.py", "bench").data).tokenizer
  config = transformers.LlamaConfig(vocab_size=tokenizer.get_vocab_size(), tie_word_embeddings=True,
                                    **SHAPE)
  with torch.device("meta"):
    model = transformers.LlamaForCausalLM(config)
  model = model.to_empty(device="cpu").to(torch.bfloat16)
  torch.manual_seed(0)
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0, 0.02)
  n = sum(p.numel() for p in model.parameters())
  model.save_pretrained(out)
  pathlib.Path(out, "tokenizer.json").write_text(tokenizer.to_str())
  print(json.dumps({"step": "make", "parameters": n, "float32_copy_mib": round(4 * n / 2**20),
                    "peak_rss_mib": round(peak_mib())}))


def load(converted: str) -> None:
  sys.path.insert(0, str(ROOT))
  from memjax import config as mc
  from memjax.training import loop, memory_report

  cfg = mc.load(ROOT / "configs/memory.py", f"tiny,decoder={converted},lora=64")
  cfg.data.n_ctx = 4 * 64
  cfg.train.batch_size = 1
  start = time.perf_counter()
  trainer = loop.Trainer(cfg)
  state = trainer.init_state()
  print(memory_report.report(state, trainer.shardings, trainer.mesh), file=sys.stderr)
  count = lambda tree: sum(x.size for x in __import__("jax").tree.leaves(tree))
  print(json.dumps({"step": "load", "trainable": count(state.params), "frozen": count(state.frozen),
                    "optimizer_values": count(state.opt_state), "seconds": round(time.perf_counter() - start, 1),
                    "peak_rss_mib": round(peak_mib())}))


if __name__ == "__main__":
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  {"make": make, "load": load}[sys.argv[1]](sys.argv[2])
