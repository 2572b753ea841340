"""Golden losses of the first train steps of the tiny causal LMs, computed without memjax's code.

Re-run (prints the literals of tests/test_golden_losses.py; needs torch and transformers, the
`parity` extra):

  PYTHONPATH=. python tests/goldens/first_steps.py

Only the inputs come from memjax: the tiny config (`configs/clm.py:tiny` with three changes, so
that every part of the update shows in the losses: warmup 0, else the first update has learning
rate 0; clip_norm 0.25, below the first gradients' norm of ~0.55, so clipping acts; weight decay
0.1, not 0) and the model's initial parameters for `cfg.seed`, read as numpy arrays. Everything
else is an independent path, in torch float64:
  - the forward pass: for the transformer, Hugging Face `LlamaForCausalLM` with those weights
    (memjax/models/hf_llama.py is used only to rename and transpose them); for the masked mixer, a
    torch module written from the reference's description (/work/shared/spec/reference-code.md
    §2.1, `LanguageMixer`: wte -> blocks [x + Conv1d_tril(LN(x)), x + FF(LN(x))] -> lm_head);
  - the loss: `F.cross_entropy` of the logits at t against the token at t + 1, all positions;
  - the update: torch autograd gradients, clipped to global norm `clip_norm`, then AdamW written out
    from its formula (optax.adamw's conventions: bias-corrected moments, eps outside the square
    root, decoupled weight decay) on the linear schedule lr(step) = lr * (1 - step / steps).
The batch is a fixed numpy draw, not the corpus, so the goldens depend on nothing downloaded.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

TESTS = pathlib.Path(__file__).resolve().parent.parent
STEPS = 3  # losses of steps 1, 2 and 3: at the initial parameters, after one update, after two


def config(family: str):
  """The tiny causal LM config of `family`: no warmup (lr(0) = lr), clipping that acts, weight decay."""
  sys.path.insert(0, str(TESTS))
  from conftest import load_config

  cfg = load_config(f"clm.py:tiny,family={family}")
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


def llama(cfg, params):
  """(module, tokens -> logits): transformers' LlamaForCausalLM (float64, eager attention) holding
  memjax's parameters."""
  import torch
  import transformers

  from memjax import models
  from memjax.models import hf_llama

  stack = models.encoder_config(cfg)
  hf_config = transformers.LlamaConfig(**hf_llama.write_config(stack, tie=False))
  hf_config._attn_implementation = "eager"
  model = transformers.LlamaForCausalLM(hf_config).double()
  weights = {k: torch.tensor(v, dtype=torch.float64) for k, v in hf_llama.hf_weights(params, stack, False).items()}
  missing, unexpected = model.load_state_dict(weights, strict=False)
  assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
  return model, lambda x: model(x).logits


def masked_mixer(cfg, params):
  """(module, tokens -> logits): the reference's `LanguageMixer` (n_heads 0, kernel 1) in torch
  float64 with memjax's parameters."""
  import torch
  from torch import nn
  from torch.nn import functional as F

  T, d, layers = cfg.data.n_ctx, cfg.model.d_model, cfg.model.n_layers
  t = lambda a: nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float64))
  enc, blocks = params["encoder"], params["encoder"]["stack"]["blocks"]

  class Block(nn.Module):
    def __init__(self, i):
      super().__init__()
      self.seq_norm, self.patch_norm = nn.LayerNorm(d).double(), nn.LayerNorm(d).double()
      self.conv = nn.Conv1d(T, T, 1).double()  # tokens are the channels, features the conv's axis
      self.up, self.down = nn.Linear(d, 4 * d).double(), nn.Linear(4 * d, d).double()
      self.seq_norm.weight, self.seq_norm.bias = t(blocks["mix_norm"]["scale"][i]), t(blocks["mix_norm"]["bias"][i])
      self.patch_norm.weight, self.patch_norm.bias = t(blocks["mlp_norm"]["scale"][i]), t(blocks["mlp_norm"]["bias"][i])
      # memjax's weight [maps=1, k=1, out T, in T] -> Conv1d's [out T, in T, k=1]
      self.conv.weight = t(blocks["mix"]["weight"][i][0].transpose(1, 2, 0))
      self.conv.bias = t(blocks["mix"]["bias"][i][0])
      self.up.weight, self.up.bias = t(blocks["mlp"]["up"]["kernel"][i].T), t(blocks["mlp"]["up"]["bias"][i])
      self.down.weight, self.down.bias = t(blocks["mlp"]["down"]["kernel"][i].T), t(blocks["mlp"]["down"]["bias"][i])

    def forward(self, x):
      mask = torch.tril(torch.ones(T, T, dtype=x.dtype))[:, :, None]  # functional tril (mixer_clm_compiled)
      x = x + F.conv1d(self.seq_norm(x), self.conv.weight * mask, self.conv.bias)
      return x + self.down(F.gelu(self.up(self.patch_norm(x))))  # exact (erf) GELU

  class LanguageMixer(nn.Module):
    def __init__(self):
      super().__init__()
      self.wte = nn.Embedding(cfg.data.vocab_size, d).double()
      self.wte.weight = t(enc["embed"]["embedding"])
      self.blocks = nn.ModuleList([Block(i) for i in range(layers)])
      self.lm_head = nn.Linear(d, cfg.data.vocab_size, bias=False).double()
      self.lm_head.weight = t(params["head"]["kernel"].T)

    def forward(self, x):
      x = self.wte(x)
      for block in self.blocks:
        x = block(x)
      return self.lm_head(x)  # no final norm in mixers

  model = LanguageMixer()
  return model, model


def first_losses(family: str, steps: int = STEPS) -> list[float]:
  """Losses of the first `steps` train steps on the fixed batch, by the independent torch path."""
  import torch
  from torch.nn import functional as F

  cfg = config(family)
  params = initial_params(cfg)
  module, model = llama(cfg, params) if family == "transformer" else masked_mixer(cfg, params)
  weights = list(module.parameters())
  x = torch.tensor(tokens(cfg), dtype=torch.long)
  train = cfg.train
  m = [torch.zeros_like(p) for p in weights]
  v = [torch.zeros_like(p) for p in weights]
  losses = []
  for step in range(steps):
    logits = model(x)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    losses.append(loss.item())
    grads = torch.autograd.grad(loss, weights)
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
  for family in ("transformer", "mixer"):
    print(f'"{family}": ({", ".join(f"{x:.7f}" for x in first_losses(family))}),')
