"""PyTorch eager baseline: train steps/s of Hugging Face `LlamaForCausalLM` on CPU.

This is the baseline that `python -m memjax.bench train --config=configs/clm.py:bench` is
compared against: the same shape (d=256, 4 layers, 4 heads, FFN 1024, vocab 8000,
n_ctx=256, batch 8, fp32, untied embeddings), AdamW(lr=2e-4) with gradient clipping at
norm 1.0 as the HF Trainer does, on a fixed seeded batch of random token ids. It prints
one JSON line with the median step time and tokens/s. It needs
`pip install torch transformers`; torch is NOT a memjax dependency.

COMMAND: python benchmarks/torch_baseline.py [--threads=N] [--steps=30] [--warmup=5]
"""

import argparse
import json
import statistics
import time

import torch
import transformers


def parse_args() -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--d_model", type=int, default=256)
  p.add_argument("--n_layers", type=int, default=4)
  p.add_argument("--n_heads", type=int, default=4)
  p.add_argument("--n_kv_heads", type=int, default=4)
  p.add_argument("--d_ff", type=int, default=1024)
  p.add_argument("--vocab", type=int, default=8000)
  p.add_argument("--n_ctx", type=int, default=256)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--lr", type=float, default=2e-4)
  p.add_argument("--warmup", type=int, default=5, help="untimed steps")
  p.add_argument("--steps", type=int, default=30, help="timed steps")
  p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
  p.add_argument("--seed", type=int, default=0)
  return p.parse_args()


def main() -> None:
  args = parse_args()
  if args.threads is not None:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)

  config = transformers.LlamaConfig(
      hidden_size=args.d_model,
      num_hidden_layers=args.n_layers,
      num_attention_heads=args.n_heads,
      num_key_value_heads=args.n_kv_heads,
      intermediate_size=args.d_ff,
      vocab_size=args.vocab,
      max_position_embeddings=args.n_ctx,
      tie_word_embeddings=False,
      rms_norm_eps=1e-6,
      rope_theta=10000.0,
      attn_implementation="sdpa",
  )
  model = transformers.LlamaForCausalLM(config).to(torch.float32)
  model.train()
  params = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
  input_ids = torch.randint(0, args.vocab, (args.batch, args.n_ctx), dtype=torch.long)

  def step() -> None:
    opt.zero_grad(set_to_none=True)
    loss = model(input_ids=input_ids, labels=input_ids).loss  # HF shifts labels internally.
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()

  for _ in range(args.warmup):
    step()
  times: list[float] = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)

  median = statistics.median(times)
  print(json.dumps({
      "impl": "torch_eager_hf_llama",
      "torch": torch.__version__,
      "transformers": transformers.__version__,
      "threads": torch.get_num_threads(),
      "tokens_per_s": round(args.batch * args.n_ctx / median, 1),
      "step_ms": round(1e3 * median, 2),
      "step_ms_mean": round(1e3 * statistics.mean(times), 2),
      "params": sum(p.numel() for p in model.parameters()),
      "d_model": args.d_model,
      "n_layers": args.n_layers,
      "n_ctx": args.n_ctx,
      "batch": args.batch,
      "vocab": args.vocab,
  }))


if __name__ == "__main__":
  main()
