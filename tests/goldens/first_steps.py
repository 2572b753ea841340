"""Golden losses of the first train steps of the tiny models, computed without memjax's code.

Re-run (prints the literals of tests/test_golden_losses.py; needs torch and transformers, the
`parity` extra):

  PYTHONPATH=. python tests/goldens/first_steps.py

Models: the causal LM (`configs/clm.py:tiny`), the autoencoder (`configs/autoencoder.py:tiny`:
unroll feed for the transformer, repeat for the mixer) and the parallel memory model
(`configs/memory.py:tiny`: 4 chunks of 32 tokens, fixed slots), each as a transformer and a masked
mixer.

Only the inputs come from memjax: the tiny config with three changes, so that every part of the
update shows in the losses (warmup 0, else the first update has learning rate 0; clip_norm 0.25,
below the first gradients' norm of ~0.55, so clipping acts; weight decay 0.1, not 0), and the
model's initial parameters for `cfg.seed`, read as numpy arrays. Everything else is an independent
path, in torch float64:
  - the forward pass, written from the reference's description (/work/shared/spec/reference-code.md):
    transformer towers are Hugging Face `LlamaForCausalLM` / `LlamaModel` holding those weights
    (memjax/models/hf_llama.py is used only to rename and transpose them); mixer towers are torch
    modules per §2.1 (`LanguageMixer`: wte -> blocks [x + Conv1d_tril(LN(x)), x + FF(LN(x))] ->
    lm_head, no final norm); autoencoders per §2.3 (the last token's final hidden state, repeated
    or unrolled into sliding half-width windows through Linear(d/2, d), a decoder tower, lm_head);
    the memory model per §2.5 with memjax's documented changes (memjax/models/memory.py,
    docs/differences.md): chunks 0..K-2 encoded to their last token's hidden state, chunk c decoded
    behind K-1 fixed slots [m_0 .. m_{c-1}, pad vectors of memory.pad_value], logits read at the
    chunk's token positions and concatenated;
  - the loss: `F.cross_entropy` of the logits at t against the token at t + 1 (causal LMs and
    memory models, across chunk boundaries too) or at t (autoencoders, no shift), over all positions;
  - the update: torch autograd gradients, clipped to global norm `clip_norm`, then AdamW written out
    from its formula (optax.adamw's conventions: bias-corrected moments, eps outside the square
    root, decoupled weight decay on every parameter) on the linear schedule
    lr(step) = lr * (1 - step / steps).
The batch is a fixed numpy draw, not the corpus, so the goldens depend on nothing downloaded.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

TESTS = pathlib.Path(__file__).resolve().parent.parent
STEPS = 3  # losses of steps 1, 2 and 3: at the initial parameters, after one update, after two
MODELS = tuple((task, family) for task in ("clm", "autoencoder", "memory") for family in ("transformer", "mixer"))
CONFIG_FILES = {"clm": "clm.py", "autoencoder": "autoencoder.py", "memory": "memory.py"}


def config(task: str, family: str):
  """The tiny config of `task` and `family`: no warmup (lr(0) = lr), clipping that acts, weight decay."""
  if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
  from conftest import load_config

  cfg = load_config(f"{CONFIG_FILES[task]}:tiny,family={family}")
  cfg.train.update(warmup_steps=0, clip_norm=0.25, weight_decay=0.1, progress=False, async_checkpoints=False)
  return cfg


def tokens(cfg) -> np.ndarray:
  """[batch_size, n_ctx] int32 token ids, a fixed draw over the whole vocabulary."""
  return np.random.default_rng(0).integers(0, cfg.data.vocab_size, (cfg.train.batch_size, cfg.data.n_ctx),
                                           dtype=np.int32)


def initial_params(cfg) -> dict:
  """memjax's initial parameters for `cfg.seed`, as a nested dict of numpy arrays."""
  import jax
  from flax import nnx

  from memjax import models

  model = models.build_model(cfg, nnx.Rngs(cfg.seed))
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


# ------------------------------------------------------------------------------ torch towers


def _parameter(array):
  import torch

  return torch.nn.Parameter(torch.tensor(np.asarray(array), dtype=torch.float64))


def _load(module, weights):
  """Loads float64 copies of `weights` (numpy) into `module`, refusing names either side lacks
  (but the rotary buffers, which transformers recomputes)."""
  import torch

  missing, unexpected = module.load_state_dict(
      {k: torch.tensor(v, dtype=torch.float64) for k, v in weights.items()}, strict=False)
  assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
  return module


def llama_lm(cfg, params):
  """transformers' LlamaForCausalLM (float64, eager attention) holding a causal LM's parameters."""
  import transformers

  from memjax import models
  from memjax.models import hf_llama

  stack = models.encoder_config(cfg)
  hf_config = transformers.LlamaConfig(**hf_llama.write_config(stack, tie=False))
  hf_config._attn_implementation = "eager"
  return _load(transformers.LlamaForCausalLM(hf_config).double(), hf_llama.hf_weights(params, stack, False))


def llama_trunk(stack, embedding, stack_params):
  """transformers' LlamaModel (float64, eager attention; blocks and final norm) holding one tower."""
  import transformers

  from memjax.models import hf_llama

  hf_config = transformers.LlamaConfig(**hf_llama.write_config(stack, tie=True))
  hf_config._attn_implementation = "eager"
  weights = hf_llama.hf_weights({"decoder": {"embed": {"embedding": embedding}, "stack": stack_params}}, stack,
                                True)
  return _load(transformers.LlamaModel(hf_config).double(), {k.removeprefix("model."): v for k, v in weights.items()})


def mixer_blocks(length, d_model, blocks):
  """The reference's causal `MixerBlock`s (n_heads 0, kernel 1) holding memjax's stacked blocks."""
  import torch
  from torch import nn
  from torch.nn import functional as F

  class MixerBlock(nn.Module):
    def __init__(self, i):
      super().__init__()
      p = lambda *path: _parameter(_get(blocks, path)[i])
      self.seq_norm, self.patch_norm = nn.LayerNorm(d_model).double(), nn.LayerNorm(d_model).double()
      self.conv = nn.Conv1d(length, length, 1).double()  # tokens are the channels, features the conv's axis
      self.up, self.down = nn.Linear(d_model, 4 * d_model).double(), nn.Linear(4 * d_model, d_model).double()
      self.seq_norm.weight, self.seq_norm.bias = p("mix_norm", "scale"), p("mix_norm", "bias")
      self.patch_norm.weight, self.patch_norm.bias = p("mlp_norm", "scale"), p("mlp_norm", "bias")
      # memjax's weight [maps=1, k=1, out T, in T] -> Conv1d's [out T, in T, k=1]
      self.conv.weight = _parameter(blocks["mix"]["weight"][i][0].transpose(1, 2, 0))
      self.conv.bias = _parameter(blocks["mix"]["bias"][i][0])
      self.up.weight, self.up.bias = _parameter(blocks["mlp"]["up"]["kernel"][i].T), p("mlp", "up", "bias")
      self.down.weight, self.down.bias = _parameter(blocks["mlp"]["down"]["kernel"][i].T), p("mlp", "down", "bias")

    def forward(self, x):
      mask = torch.tril(torch.ones(length, length, dtype=x.dtype))[:, :, None]  # functional tril
      x = x + F.conv1d(self.seq_norm(x), self.conv.weight * mask, self.conv.bias)
      return x + self.down(F.gelu(self.up(self.patch_norm(x))))  # exact (erf) GELU

  return nn.ModuleList([MixerBlock(i) for i in range(len(blocks["mix"]["bias"]))])


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def embedding_and_head(vocab, d_model, embedding, head_kernel):
  from torch import nn

  wte = nn.Embedding(vocab, d_model).double()
  wte.weight = _parameter(embedding)
  lm_head = nn.Linear(d_model, vocab, bias=False).double()
  lm_head.weight = _parameter(head_kernel.T)
  return wte, lm_head


def unroll(e_BxD, length):
  """Reference §2.3: position t reads the wrapped window e[(t mod d + j) mod d], j < d/2."""
  import torch

  d = e_BxD.shape[-1]
  return torch.stack([torch.roll(e_BxD, -(t % d), dims=-1)[:, :d // 2] for t in range(length)], dim=1)


def torch_model(task, family, cfg, params):
  """A torch module of the model with memjax's parameters, and its forward (tokens -> logits)."""
  from torch import nn

  from memjax import models

  V, T = cfg.data.vocab_size, cfg.data.n_ctx
  if task == "clm" and family == "transformer":
    model = llama_lm(cfg, params)
    return model, lambda x: model(x).logits
  enc = params["decoder" if task == "clm" else "encoder"]  # a causal LM's one tower, else the encoder
  model = nn.Module()
  if task == "clm":  # LanguageMixer
    model.wte, model.lm_head = embedding_and_head(V, cfg.model.d_model, enc["embed"]["embedding"],
                                                  params["head"]["kernel"])
    model.blocks = mixer_blocks(T, cfg.model.d_model, enc["stack"]["blocks"])

    def forward(x):
      h = model.wte(x)
      for block in model.blocks:
        h = block(h)
      return model.lm_head(h)
    return model, forward
  if task == "memory":
    return memory_model(family, cfg, params)
  # Autoencoders: encoder tower -> last token's hidden state -> repeat or unroll -> decoder tower -> head.
  d = cfg.encoder.d_model
  _, model.lm_head = embedding_and_head(V, d, enc["embed"]["embedding"], params["head"]["kernel"])
  if family == "transformer":
    model.encoder = llama_trunk(models.encoder_config(cfg), enc["embed"]["embedding"], enc["stack"])
    decoder_stack = models.stack_config(cfg.decoder, length=T, vocab_size=V)
    model.decoder = llama_trunk(decoder_stack, np.zeros((V, d)), params["decoder"])  # (embedding unused)
    encode = lambda x: model.encoder(x).last_hidden_state
    decode = lambda h: model.decoder(inputs_embeds=h).last_hidden_state
  else:
    model.wte, _ = embedding_and_head(V, d, enc["embed"]["embedding"], params["head"]["kernel"])
    model.encoder_blocks = mixer_blocks(T, d, enc["stack"]["blocks"])
    model.decoder_blocks = mixer_blocks(T, d, params["decoder"]["blocks"])

    def run(blocks, h):
      for block in blocks:
        h = block(h)
      return h
    encode = lambda x: run(model.encoder_blocks, model.wte(x))
    decode = lambda h: run(model.decoder_blocks, h)
  if cfg.decoder.feed == "unroll":
    model.projection = nn.Linear(d // 2, d).double()
    model.projection.weight = _parameter(params["unroll"]["proj"]["kernel"].T)
    model.projection.bias = _parameter(params["unroll"]["proj"]["bias"])
    feed = lambda e: model.projection(unroll(e, T))
  else:
    feed = lambda e: e[:, None, :].expand(-1, T, -1)
  return model, lambda x: model.lm_head(decode(feed(encode(x)[:, -1])))


def memory_model(family, cfg, params):
  """The parallel memory model (fixed slots, no bridge: encoder and decoder of one width)."""
  import torch
  from torch import nn

  from memjax import models

  V, N, K, d = cfg.data.vocab_size, cfg.data.n_ctx, cfg.memory.chunks, cfg.decoder.d_model
  L, S = N // K, K - 1
  enc, dec = params["encoder"], params["decoder"]
  model = nn.Module()
  _, model.lm_head = embedding_and_head(V, d, dec["embed"]["embedding"], params["head"]["kernel"])
  if family == "transformer":
    model.encoder = llama_trunk(models.encoder_config(cfg), enc["embed"]["embedding"], enc["stack"])
    decoder_stack = models.stack_config(cfg.decoder, length=S + L, vocab_size=V)
    model.decoder = llama_trunk(decoder_stack, dec["embed"]["embedding"], dec["stack"])
    encode = lambda x: model.encoder(x).last_hidden_state
    embed = model.decoder.embed_tokens
    decode = lambda h: model.decoder(inputs_embeds=h).last_hidden_state
  else:
    model.encoder_wte, _ = embedding_and_head(V, d, enc["embed"]["embedding"], params["head"]["kernel"])
    model.decoder_wte, _ = embedding_and_head(V, d, dec["embed"]["embedding"], params["head"]["kernel"])
    model.encoder_blocks = mixer_blocks(L, d, enc["stack"]["blocks"])
    model.decoder_blocks = mixer_blocks(S + L, d, dec["stack"]["blocks"])

    def run(blocks, h):
      for block in blocks:
        h = block(h)
      return h
    encode = lambda x: run(model.encoder_blocks, model.encoder_wte(x))
    embed = model.decoder_wte
    decode = lambda h: run(model.decoder_blocks, h)

  def forward(x):
    chunks = [x[:, c * L:(c + 1) * L] for c in range(K)]
    memories = [encode(chunk)[:, -1] for chunk in chunks[:-1]]  # the last chunk is never encoded
    pad = torch.full((x.shape[0], d), cfg.memory.pad_value, dtype=torch.float64)
    logits = []
    for c, chunk in enumerate(chunks):
      slots = torch.stack([memories[i] if i < c else pad for i in range(S)], dim=1)
      hidden = decode(torch.cat([slots, embed(chunk)], dim=1))
      logits.append(model.lm_head(hidden[:, S:]))
    return torch.cat(logits, dim=1)
  return model, forward


# ------------------------------------------------------------------------------ training


def first_losses(task: str, family: str, steps: int = STEPS) -> list[float]:
  """Losses of the first `steps` train steps on the fixed batch, by the independent torch path."""
  import torch
  from torch.nn import functional as F

  cfg = config(task, family)
  module, forward = torch_model(task, family, cfg, initial_params(cfg))
  weights = list(module.parameters())
  assert len({id(p) for p in weights}) == len(weights)
  x = torch.tensor(tokens(cfg), dtype=torch.long)
  train = cfg.train
  m = [torch.zeros_like(p) for p in weights]
  v = [torch.zeros_like(p) for p in weights]
  losses = []
  for step in range(steps):
    logits = forward(x)
    if task in ("clm", "memory"):  # position t predicts token t + 1
      loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    else:  # position t regenerates token t
      loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))
    losses.append(loss.item())
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(weights, grads)]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    scale = min(1.0, train.clip_norm / float(norm)) if train.clip_norm else 1.0
    lr = train.lr * (1 - step / train.steps)  # linear decay to 0 at train.steps, no warmup
    count = step + 1
    with torch.no_grad():
      for p, g, m_i, v_i in zip(weights, grads, m, v):
        g = g * scale
        m_i.mul_(train.b1).add_((1 - train.b1) * g)
        v_i.mul_(train.b2).add_((1 - train.b2) * g * g)
        m_hat, v_hat = m_i / (1 - train.b1 ** count), v_i / (1 - train.b2 ** count)
        p.sub_(lr * (m_hat / (v_hat.sqrt() + train.eps) + train.weight_decay * p))
  return losses


if __name__ == "__main__":
  for task, family in MODELS:
    print(f'("{task}", "{family}"): ({", ".join(f"{x:.7f}" for x in first_losses(task, family))}),')
