"""Parallel encoder-decoder memory model and its baselines, on next-token, copy or combined objectives.

COMMAND: python -m memjax.train --config=configs/memory.py:small --workdir=runs/memory
Argument: a preset (tiny | small | paper | smoke | cpu | demo), then optional keys:
  family   transformer | mixer
  kind     parallel (the memory model) | none (constant memories) | full (full-context decoder)
           | recurrent (RMT, one carried memory, BPTT) | oracle (encoder sees the predicted text)
  stages   an objective or a curriculum: clm | copy | blank_copy | combined | retrieval |
           e.g. 'blank_copy:1000,copy:1000,combined', or user code 'package.module:attribute'
  encoding text | random (the random-encoding control, paper §5.8: the encoder embeds random tokens)
  quantize none | bf16 | int8 | int4 | binary: the precision memories are stored at (issue 21 §2);
           memory.quantize_noise=True trains with one quantisation step of noise instead of rounding
  decoder  a converted causal LM (python -m memjax.convert hf-llama SRC DIR) as the decoder, with its
           tokenizer and vocabulary; memories are projected to its width, slots are fixed (§2.6, §5.8)
  lora     with `decoder`: LoRA rank (0: full fine-tuning at lr 5e-6, as the paper; r > 0: adapters on
           decoder.lora_targets at lr 5e-5, as the reference, with lora_alpha = r / 2 unless given)
  steps    training steps (default: the preset's)
The combined objective's copy view is objective.combined_copy (copy | blank_copy), its weights
objective.clm_weight : objective.copy_weight; objective.restart_stages=True trains each curriculum
stage as a fresh run (new AdamW state, own warmup and decay). The paper preset follows the
reference: blank copy, weights 1 : 0.5, restarting stages (docs/differences.md). Its sizes are the
reference's drivers': next-token memory models (§5.5) have encoders half the decoder's width
(transformers 256 -> 512, mixers 512 -> 1024 with encoder kernel 8), the mixer oracle a d=1024 encoder
(§5.4), and a run whose stages include copy, blank_copy or combined is sized as the copy and
combined drivers (§5.7): encoder and decoder d=512 (mixer encoders kernel 4), batch 64.
For a frozen autoencoder encoder (the paper's curriculum), add
  --config.encoder.checkpoint=runs/autoencoder --config.encoder.frozen=True
with an autoencoder trained on chunk-length contexts (its data.n_ctx = this data.n_ctx / chunks).
A frozen encoder keeps its own token embedding frozen (encoder.frozen_scope='all'), except in the
paper preset, where a fresh trainable embedding feeds the frozen blocks ('blocks'), as the reference.
"""


from memjax import config as mc

# Steps by preset where a memory model's differ from the preset's (docs/results.md).
STEPS = {"cpu": 400}
COPY_OBJECTIVES = ("copy", "blank_copy", "combined")


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", kind="parallel", stages="clm", encoding="text", quantize="none",
                     decoder="", lora=0, lora_alpha=0.0, steps=0)
  size = mc.SIZES[arg.preset]
  cfg = mc.base("memory", arg.preset, stages=arg.stages, family=arg.family,
                steps=arg.steps or STEPS.get(arg.preset, 0))
  cfg.train.batch_size = size.get("memory_batch_size", size["batch_size"])
  cfg.memory = mc.memory(kind=arg.kind, encoding=arg.encoding, quantize=arg.quantize)
  cfg.encoder = mc.encoder(size, arg.family)
  cfg.decoder = mc.architecture(size, arg.family, checkpoint="", tie_embeddings=False, lora_rank=0,
                                lora_alpha=0.0, lora_targets="q,k,v,gate,up,down")
  cfg.data.n_ctx = 4 * size["n_ctx"]  # 4 chunks of the preset's context
  if arg.preset == "paper":  # paper §2.4 and §4: 4 x 256 tokens; mixer decoders twice as wide
    cfg.data.n_ctx = 1024
    cfg.objective.copy_delimiter_tokens = 3
    cfg.encoder.frozen_scope = "blocks"
    cfg.init = "reference"  # nn.Embedding N(0, 1) and nn.Linear heads around the Llama blocks
    cfg.data.pad_side = "right"  # the copy's first half is the document's start (padded as needed)
    # The reference's combined objective: blank copy, and copy at half the weight of next-token
    # prediction (its per-chunk normalization, reference-code.md §3.4); stages restart (mc.base).
    cfg.objective.update(combined_copy="blank_copy", copy_weight=0.5)
    # §5.5: encoders d/2 of the decoder (mixers 512 -> 1024 with kernel 8; transformers 256 -> 512)
    if arg.family == "mixer":
      cfg.decoder.d_model, cfg.encoder.mixer_kernel = 1024, 8
    else:
      cfg.encoder.d_model = 256
    if arg.kind == "oracle" and arg.family == "mixer":  # §5.4: a d=1024 encoder (capacity 4.08 BPB)
      cfg.encoder.d_model = 1024
    if copying(arg.stages):  # the reference's copy and combined drivers (reference-code.md §5):
      # encoder and decoder d=512 (mixer encoders kernel 4, decoders kernel 1), global batch 64
      cfg.encoder.d_model = cfg.decoder.d_model = 512
      if arg.family == "mixer":
        cfg.encoder.mixer_kernel = 4
      cfg.train.batch_size = 64
  if arg.decoder:
    with_pretrained_decoder(cfg, arg)
  return cfg


def copying(stages: str) -> bool:
  """Whether an objective or curriculum trains a copy objective (copy, blank_copy or combined)."""
  return any(stage.split(":")[0] in COPY_OBJECTIVES for stage in stages.split(","))


def with_pretrained_decoder(cfg, arg):
  lm = mc.pretrained(arg.decoder)
  if arg.kind not in ("parallel", "none"):
    raise ValueError(f"a pretrained decoder needs kind=parallel or none, got {arg.kind!r}")
  cfg.decoder.update(lm.architecture)
  # scan_layers: an unrolled layer loop keeps per-layer weight slices as temporaries (a copy).
  cfg.decoder.update(checkpoint=arg.decoder, tie_embeddings=lm.tie_embeddings, lora_rank=arg.lora,
                     lora_alpha=arg.lora_alpha or arg.lora / 2, scan_layers=True)
  cfg.data.update(vocab_size=lm.vocab_size, tokenizer=lm.tokenizer)
  cfg.memory.slots = "fixed"
  cfg.train.lr = 5e-5 if arg.lora else 5e-6
