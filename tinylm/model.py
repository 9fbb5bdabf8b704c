"""The GPT: GPTConfig, presets, GPT.forward -> (logits, loss), generate() with a KV cache.

GPT-2's decoder: token embeddings `wte` plus learned positions `wpe`, a stack `h` of pre-LN
Blocks, a final LayerNorm `ln_f` and a head `lm_head` tied to `wte`; GPT-2's initialisation.
Generation past block_size slides the context to the last block_size tokens, as nanoGPT; the
positions then move with the window, so the cache is rebuilt at every step.

Glossary for shape comments: B batch, T time, C channels (n_embd), nh heads, hs head size, V vocab.
Reference: nanoGPT `model.py`, picoGPT `gpt2.py`, Hugging Face `modeling_gpt2.py` (names).
"""
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import backend
from .functional import core as F
from .engine import no_grad
from .nn.attention import Block, KVCache
from .nn.layers import Dropout, Embedding, LayerNorm, Linear
from .nn.module import Module, ModuleList
from .sampling import sample_next
from .tensor import Tensor


@dataclass
class GPTConfig:
    """The shape of a GPT (defaults: GPT-2 small). Presets: `GPTConfig.from_preset(name, **overrides)`."""

    vocab_size: int = 50257   # number of token ids (GPT-2's BPE: 50257; characters: 65 for Shakespeare)
    block_size: int = 1024    # longest context, the number of learned positions
    n_layer: int = 12         # transformer blocks
    n_head: int = 12          # attention heads per block; n_embd must be divisible by it
    n_embd: int = 768         # channels C of the residual stream (head size hs = n_embd // n_head)
    dropout: float = 0.0      # dropout on embeddings, attention weights and residual branches
    bias: bool = True         # biases in Linear and LayerNorm layers (GPT-2: True)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_preset(cls, name, **overrides):
        """The config of a named preset (see PRESETS), with some fields overridden."""
        return from_table(cls, PRESETS, name, overrides)

    def to_dict(self):
        """The fields as a plain dict (JSON-able, for checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """A config from a dict; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"GPTConfig: unknown fields {extra}")
        return cls(**d)


def from_table(cls, presets, name, overrides, what="preset"):
    """cls(**presets[name]) with some fields overridden; an unknown name lists the known ones."""
    if name not in presets:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(presets)}")
    return cls(**{**presets[name], **overrides})


PRESETS = {
    # name:        the fields that differ from GPTConfig's defaults
    "cpu-small":   dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),    # char model, ~0.8M
    "char-6L":     dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),  # ~10.7M
    "gpt2":        dict(n_layer=12, n_head=12, n_embd=768),     # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),    # 350M
    "gpt2-large":  dict(n_layer=36, n_head=20, n_embd=1280),    # 774M
    "gpt2-xl":     dict(n_layer=48, n_head=25, n_embd=1600),    # 1558M
}


class GPT(Module):
    """GPT-2: forward(idx (B, T), targets=None) -> (logits (B, T, V), loss or None)."""

    def __init__(self, config, device="cpu"):
        if isinstance(config, str):
            config = GPTConfig.from_preset(config)
        self.config = c = config
        self.wte = Embedding(c.vocab_size, c.n_embd, device=device)        # (V, C)
        self.wpe = Embedding(c.block_size, c.n_embd, device=device)        # (block_size, C)
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(Block(c.n_embd, c.n_head, c.dropout, c.bias, device=device)
                               for _ in range(c.n_layer))
        self.ln_f = LayerNorm(c.n_embd, bias=c.bias, device=device)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False, device=device)
        self.lm_head.weight = self.wte.weight   # weight tying: the same Parameter object
        self.init_weights()

    @property
    def device(self):
        """The device the parameters live on."""
        return self.wte.weight.device

    def init_weights(self):
        """GPT-2 init from the device's generator: normal(0, 0.02), c_proj by 1/sqrt(2 n_layer), zero biases."""
        gen = backend.get_generator(self.device)
        xp = backend.array_module(self.device)
        proj_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if p.ndim >= 2:    # Linear and Embedding weights
                std = proj_std if name.endswith("c_proj.weight") else 0.02
                p.data = gen.normal(p.shape, p.dtype) * p.dtype.type(std)
            elif name.endswith(".bias"):
                p.data = xp.zeros(p.shape, dtype=p.dtype)
            else:              # LayerNorm weights
                p.data = xp.ones(p.shape, dtype=p.dtype)

    # ------------------------------------------------------------------ forward
    def _as_ids(self, x, what="idx"):
        """Token ids (Tensor, NumPy array, list or device array) -> an integer array on the model's device."""
        device = self.device
        if isinstance(x, Tensor):
            if x.device != device:
                raise ValueError(f"{what} is on '{x.device}' but the model is on '{device}'")
            arr = x.data
        elif isinstance(x, (list, tuple, int, np.ndarray, np.integer)):
            arr = backend.to_device(np.asarray(x), device)
        elif not hasattr(x, "dtype"):
            raise TypeError(f"{what} must be token ids (a Tensor, an array or a list), got {type(x).__name__}")
        else:
            if backend.device_of(x) != device:
                raise ValueError(f"{what} is on '{backend.device_of(x)}' but the model is on '{device}'")
            arr = x
        if arr.dtype.kind not in "iu" and arr.size:
            raise TypeError(f"{what} must hold integer token ids, got dtype {arr.dtype}")
        return arr.astype(np.int64, copy=False)

    def _trunk(self, ids, kv_cache=None):
        """Hidden states after ln_f, (B, T, C), for ids (B, T) at positions after the cached ones."""
        c = self.config
        if ids.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(ids.shape)}")
        B, T = ids.shape
        if B == 0 or T == 0:
            raise ValueError(f"idx of shape {tuple(ids.shape)} holds no tokens")
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > c.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size {c.block_size}")
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= c.vocab_size:
                raise ValueError(f"token id {lo if lo < 0 else hi} is outside the vocabulary [0, {c.vocab_size})")
        xp = backend.array_module(self.device)
        pos = xp.arange(start, start + T, dtype=np.int64)             # (T,) positions continue after the cache
        x = self.wte(ids) + self.wpe(pos)                             # (B, T, C) + (T, C) -> (B, T, C)
        x = self.drop(x)
        for i, block in enumerate(self.h):
            x = block(x, kv_cache=kv_cache, layer=i)                  # (B, T, C)
        if kv_cache is not None:
            kv_cache.advance(T)
        return self.ln_f(x)                                           # (B, T, C)

    def forward(self, idx, targets=None, kv_cache=None):
        """Logits (B, T, V) for token ids idx (B, T), and the mean cross-entropy against targets (B, T).

        Targets equal to -100 are ignored. With a `KVCache`, idx holds only the tokens after
        the cached ones (their positions continue from `kv_cache.length`).
        """
        x = self._trunk(self._as_ids(idx), kv_cache)                  # (B, T, C)
        logits = self.lm_head(x)                                      # (B, T, V) = x @ wte.weight.T
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, Tensor._make(self._as_ids(targets, "targets"), self.device))
        return logits, loss

    # ------------------------------------------------------------------ generation
    def new_kv_cache(self, batch):
        """An empty KVCache for `batch` sequences of up to block_size tokens."""
        c = self.config
        return KVCache(c.n_layer, batch, c.n_head, c.block_size, c.n_embd // c.n_head,
                          device=self.device, dtype=self.wte.weight.dtype)

    @no_grad()
    def next_token_logits(self, idx, kv_cache=None):
        """Logits (B, V) array for the token after idx (B, T), seeing its last block_size tokens.

        With a KVCache that holds the first `kv_cache.length` tokens of idx, only the others are
        fed; once the window slides past block_size the cache is rebuilt from the window.
        """
        ids = self._as_ids(idx)
        bs, T = self.config.block_size, ids.shape[-1]
        if kv_cache is not None and (T > bs or kv_cache.length >= T):
            kv_cache.reset()     # the window slid (positions shift) or the cache is not a prefix: rebuild
        start = kv_cache.length if kv_cache is not None else 0
        fed = ids[:, max(start, T - bs):]                              # (B, T') only the unseen tokens
        x = self._trunk(fed, kv_cache)                                 # (B, T', C)
        return self.lm_head(x[:, -1]).data                             # (B, V)

    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, num_samples=1,
                 seed=None, stop_token=None, use_cache=True):
        """Continue prompts idx (T,) or (B, T); returns an int64 Tensor (B * num_samples, T + new).

        Each prompt row is repeated num_samples times (row b's samples are rows b*n .. b*n+n-1).
        temperature 0 is greedy. A `seed` gives a private generator (the same seed, the same
        sample); without one the device's generator is used. With `stop_token`, a row that
        produced it is padded with it, and generation stops once every row has. Runs in eval
        mode under no_grad (the training mode is restored). `use_cache=False` recomputes the
        whole window at every step (the same result, slower).
        """
        for name, value, low, high in (("max_new_tokens", max_new_tokens, 0, 2**40), ("num_samples", num_samples, 1, 2**40),
                                       ("seed", seed, 0, 2**63), ("stop_token", stop_token, 0, self.config.vocab_size - 1)):
            if value is None and name in ("seed", "stop_token"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"generate: {name} must be an int, got {type(value).__name__} {value!r}")
            if not low <= value <= high:
                raise ValueError(f"generate: {name} must be an int in [{low}, {high}], got {value}")
        xp = backend.array_module(self.device)
        ids = self._as_ids(idx)
        if ids.ndim == 1:
            ids = ids[None]                                            # (1, T)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"generate needs a prompt of shape (T,) or (B, T) with T >= 1, got {tuple(ids.shape)}")
        if num_samples > 1:
            ids = xp.repeat(ids, num_samples, axis=0)                  # (B, T), B = rows * num_samples
        B, T0 = ids.shape
        if B * (T0 + max_new_tokens) > 2**28:                          # the ids alone would take over 2 GiB
            raise ValueError(f"generate: {B} rows of {T0 + max_new_tokens} token ids would take "
                             f"{B * (T0 + max_new_tokens) / 2**27:.0f} GiB; ask for fewer tokens or rows at a time")
        out = xp.zeros((B, T0 + max_new_tokens), dtype=np.int64)        # (B, T0 + new)
        out[:, :T0] = ids
        gen = backend.Generator(self.device, seed) if seed is not None else backend.get_generator(self.device)
        cache = self.new_kv_cache(B) if use_cache else None
        done = xp.zeros((B,), dtype=bool) if stop_token is not None else None
        was_training = self.training
        self.eval()
        try:
            n = T0
            for _ in range(max_new_tokens):
                logits = self.next_token_logits(out[:, :n], cache)     # (B, V)
                nxt = sample_next(logits, temperature, top_k, top_p, gen)  # (B,)
                if done is not None:
                    nxt = xp.where(done, stop_token, nxt)
                    done = done | (nxt == stop_token)
                out[:, n] = nxt
                n += 1
                if done is not None and bool(done.all()):
                    break
        finally:
            self.train(was_training)
        return Tensor(out[:, :n], device=self.device)
