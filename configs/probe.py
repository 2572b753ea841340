"""Information probe (the paper's Fig. 1): a frozen encoder's single embedding, a fresh decoder
trained to regenerate the input from it. Reports CE, entropy proportion I_e and token accuracy.

COMMAND: python -m memjax.train --config=configs/probe.py:small \
             --config.encoder.checkpoint=runs/autoencoder --workdir=runs/probe_autoencoder
`encoder.checkpoint` is an exported encoder or the workdir of any trained run (causal LM,
autoencoder, memory model); leave it empty to probe an untrained encoder. The encoder section must
match the checkpoint's architecture (the presets match those of clm.py and autoencoder.py).
Argument: a preset (tiny | small | paper | smoke | cpu | demo), then optional keys: family, feed
(as configs/autoencoder.py's), steps, embed_index (-2 for causally trained encoders, whose last
position never received a loss), frozen_scope, quantize (none | bf16 | int8 | int4 | binary: the
decoder reads the embedding stored at that precision, as a memory model's memory.quantize stores
memories; issue 21 §2; sets encoder.quantize, absent at none), and `pretrained=DIR`: a
converted causal LM (python -m memjax.convert hf-llama SRC DIR) as the frozen encoder, whole (its
token embedding included), with its own tokenizer and vocabulary, read at the last token's last
hidden state, and an unrolled Llama-style decoder (paper §2.3, §5.2: d=512, 16 layers, 4 heads,
lr 2e-4; at the paper preset 40k steps of 32768 tokens, warmup 100, as the reference's LLM driver).
`python -m memjax.experiments.llm_probe` sweeps it over n_ctx.
What is frozen (`encoder.frozen_scope`, recorded in the run's config.json): `all` (the encoder's own
token embedding and its blocks; tiny and small) or `blocks` (a fresh trainable token embedding in
front of the frozen blocks, as the paper's probes; paper). A pretrained LLM is frozen whole.
"""

from memjax import config as mc

# Steps by preset where a probe's differ from the preset's: probes train shorter than the models
# they probe (docs/results.md, docs/headline.md).
STEPS = {"cpu": 300, "demo": 1000}
LLM_STEPS = mc.LLM_PROBE_STEPS  # the reference's LLM probes (§5.2): 40k steps of 32768 tokens


def get_config(arg=None):
  arg = mc.parse_arg(arg, family="transformer", feed="", steps=0, embed_index=-1, frozen_scope="",
                     pretrained="", quantize="none")
  size = mc.SIZES[arg.preset]
  llm = arg.pretrained and arg.preset == "paper"
  cfg = mc.base("autoencoder", arg.preset, stages="autoencode", family=arg.family,
                steps=arg.steps or (LLM_STEPS if llm else STEPS.get(arg.preset, 0)))
  scope = arg.frozen_scope or ("blocks" if arg.preset == "paper" else "all")
  cfg.encoder = mc.encoder(size, arg.family, frozen=True, embed_index=arg.embed_index, frozen_scope=scope)
  cfg.decoder = mc.decoder(size, arg.family, feed=arg.feed)
  if arg.preset == "paper":  # paper §2.3: probe decoders d=1024 (mixers) / 512 (transformers), 8 layers
    cfg.init = "reference"  # nn.Embedding N(0, 1) and nn.Linear heads around the Llama blocks
    cfg.decoder.n_layers = 8
    cfg.decoder.d_model = 1024 if arg.family == "mixer" else 512
  if arg.pretrained:  # the decoder and schedule of the reference's LLM driver (memjax/config.py)
    mc.probe_pretrained(cfg, mc.pretrained(arg.pretrained), arg.pretrained, arg.preset, feed=arg.feed,
                        frozen_scope=arg.frozen_scope)
  if arg.quantize != "none":  # absent at none: probes trained before the option read back unchanged
    cfg.encoder.quantize = arg.quantize
  return cfg
