"""PyTorch eager baseline for decoding: Hugging Face `LlamaForCausalLM.generate` with its KV cache.

The shape of the full-context model of `python -m memjax.bench generate` (d=256, 4 layers, 4 heads,
FFN 1024, vocab 8000, fp32, batch 1): for each context length, a random prompt of that many tokens,
then greedy decoding of --new_tokens tokens with `generate` (its default dynamic KV cache). Prefill
is timed as `generate(max_new_tokens=1)`; decode tokens/s = (new_tokens - 1) / (time of the full
generate - prefill time). Median of --repeats runs after one warm-up. One JSON line per length.
torch and transformers are not memjax dependencies.

COMMAND: python benchmarks/torch_generate.py [--contexts=1024,4096,16384] [--new_tokens=256]
"""

import argparse
import json
import statistics
import time

import torch
import transformers


def parse_args() -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--contexts", default="1024,2048,4096,8192,16384")
  p.add_argument("--new_tokens", type=int, default=256)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--d_model", type=int, default=256)
  p.add_argument("--n_layers", type=int, default=4)
  p.add_argument("--n_heads", type=int, default=4)
  p.add_argument("--d_ff", type=int, default=1024)
  p.add_argument("--vocab", type=int, default=8000)
  p.add_argument("--threads", type=int, default=None)
  return p.parse_args()


def main() -> None:
  args = parse_args()
  if args.threads is not None:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  contexts = [int(c) for c in args.contexts.split(",")]
  config = transformers.LlamaConfig(
      hidden_size=args.d_model, num_hidden_layers=args.n_layers, num_attention_heads=args.n_heads,
      num_key_value_heads=args.n_heads, intermediate_size=args.d_ff, vocab_size=args.vocab,
      max_position_embeddings=max(contexts) + args.new_tokens, tie_word_embeddings=False,
      rms_norm_eps=1e-6, rope_theta=10000.0, attn_implementation="sdpa")
  model = transformers.LlamaForCausalLM(config).to(torch.float32).eval()
  for context in contexts:
    prompt = torch.randint(4, args.vocab, (1, context), dtype=torch.long)
    common = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

    def timed(new):
      start, cpu = time.perf_counter(), time.process_time()
      with torch.inference_mode():
        out = model.generate(prompt, max_new_tokens=new, min_new_tokens=new, **common)
      assert out.shape[1] == context + new
      return time.perf_counter() - start, time.process_time() - cpu

    prefill, total, prefill_cpu, total_cpu = [], [], [], []
    for repeat in range(args.repeats + 1):
      (p, p_cpu), (t, t_cpu) = timed(1), timed(args.new_tokens)
      if repeat:
        prefill.append(p), total.append(t), prefill_cpu.append(p_cpu), total_cpu.append(t_cpu)
    decode_s = (statistics.median(total) - statistics.median(prefill)) / (args.new_tokens - 1)
    decode_cpu_s = (statistics.median(total_cpu) - statistics.median(prefill_cpu)) / (args.new_tokens - 1)
    print(json.dumps({"benchmark": "generate", "model": "hf_llama_generate", "context_tokens": context,
                      "new_tokens": args.new_tokens, "prefill_s": round(statistics.median(prefill), 4),
                      "decode_ms_per_token": round(1e3 * decode_s, 3),
                      "decode_tokens_per_s": round(1 / decode_s, 1),
                      "decode_cpu_ms_per_token": round(1e3 * decode_cpu_s, 3),
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
  main()
