"""Tests for tinylm/nn.py: Module bookkeeping, state dicts, layers, attention (gradients and an oracle)."""
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm import backend, nn


class Tiny(nn.Module):
    def __init__(self, device="cpu"):
        self.emb = nn.Embedding(5, 4, device=device)
        self.layers = nn.ModuleList([nn.Linear(4, 4, device=device), nn.Linear(4, 3, bias=False, device=device)])
        self.head = nn.Linear(4, 5, bias=False, device=device)
        self.head.weight = self.emb.weight  # tied
        self.drop = nn.Dropout(0.5)

    def forward(self, idx):
        x = self.emb(idx)
        for layer in self.layers:
            x = layer(x)
        return x


def test_registration_order_names_and_tying():
    m = Tiny()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["emb.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight"]
    all_names = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    assert all_names[-1] == "head.weight"
    assert m.head.weight is m.emb.weight
    assert m.num_parameters() == 5 * 4 + 4 * 4 + 4 + 3 * 4
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert [n for n, _ in m.named_modules()] == ["", "emb", "layers", "layers.0", "layers.1", "head", "drop"]
    assert len(m.layers) == 2 and isinstance(m.layers[1], nn.Linear) and len(list(m.modules())) == 7


def test_plain_list_of_modules_is_refused():
    m = nn.Module()
    with pytest.raises(TypeError, match="ModuleList"):
        m.blocks = [nn.Linear(2, 2)]


def test_train_eval_and_zero_grad():
    m = Tiny()
    assert m.drop.training
    m.eval()
    assert not any(mod.training for mod in m.modules())
    x = tl.ones(4, 4)
    assert m.drop(x) is x
    m.train()
    assert all(mod.training for mod in m.modules())
    m(tl.tensor([[1, 2]])).sum().backward()
    assert m.emb.weight.grad is not None
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_device_keeps_tying(device):
    m = Tiny().to(device)
    assert all(p.device == device for p in m.parameters())
    assert m.head.weight is m.emb.weight
    assert backend.device_of(m.emb.weight.data) == device
    out = m(tl.tensor([[0, 4]], device=device))
    assert out.shape == (1, 2, 3) and out.device == device
    m.to(dtype=np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())


def test_state_dict_round_trip_is_exact(device):
    tl.manual_seed(1)
    a = Tiny(device)
    tl.manual_seed(2)
    b = Tiny(device)
    sd = a.state_dict()
    assert list(sd) == ["emb.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight"]
    assert all(backend.device_of(v) == device for v in sd.values())
    host = {k: backend.to_numpy(v).copy() for k, v in sd.items()}
    result = b.load_state_dict(host)  # NumPy arrays go to the module's device
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in b.state_dict().items():
        assert backend.device_of(v) == device
        np.testing.assert_array_equal(backend.to_numpy(v), host[k])
    assert b.head.weight is b.emb.weight
    # a copy, never an alias of the caller's array
    host["emb.weight"][0, 0] = 123.0
    assert backend.to_numpy(b.emb.weight.data)[0, 0] != 123.0
    # Tensors are accepted too, and the tied alias name
    b.load_state_dict({**{k: tl.tensor(v) for k, v in host.items() if k != "emb.weight"},
                       "head.weight": tl.tensor(host["emb.weight"])})
    assert backend.to_numpy(b.emb.weight.data)[0, 0] == 123.0


def test_state_dict_values_are_numpy_on_cpu():
    sd = Tiny().state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())


def test_load_state_dict_names_every_problem():
    m = Tiny()
    sd = {k: backend.to_numpy(v) for k, v in m.state_dict().items()}
    bad = dict(sd)
    del bad["layers.0.bias"]
    bad["layers.1.weight"] = np.zeros((4, 4), np.float32)
    bad["extra.weight"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert "layers.0.bias" in msg and "extra.weight" in msg
    assert "layers.1.weight: checkpoint (4, 4) vs model (3, 4)" in msg
    before = backend.to_numpy(m.emb.weight.data).copy()
    bad["emb.weight"] = np.ones((5, 4), np.float32)
    with pytest.raises(ValueError):
        m.load_state_dict(bad)
    np.testing.assert_array_equal(backend.to_numpy(m.emb.weight.data), before)  # nothing changed
    # strict=False tolerates missing and unexpected keys, never a wrong shape
    del bad["layers.1.weight"]
    res = m.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["layers.0.bias", "layers.1.weight"] and res.unexpected_keys == ["extra.weight"]


# ---------------------------------------------------------------------------- layers
def test_linear_matches_formula(device):
    lin = nn.Linear(3, 5, device=device)
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (5,)
    x = tl.randn(2, 4, 3, device=device)
    want = x.numpy() @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(lin(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert lin(x).dtype == np.float32


def test_embedding_padding_row_gets_no_gradient(device):
    emb = nn.Embedding(6, 3, padding_idx=2, device=device)
    assert not emb.weight.numpy()[2].any()
    ids = tl.tensor([[2, 1, 2], [1, 0, 5]], device=device)
    (emb(ids) * tl.randn(2, 3, 3, device=device)).sum().backward()
    g = backend.to_numpy(emb.weight.grad)
    assert not g[2].any() and g[1].any() and g[5].any() and not g[3].any()


def test_layer_norm_and_gelu_and_mlp(device):
    ln = nn.LayerNorm(6, device=device)
    ln.weight.data = ln.weight.data * 2.0
    x = tl.randn(3, 6, device=device)
    xn = x.numpy()
    want = (xn - xn.mean(-1, keepdims=True)) / np.sqrt(xn.var(-1, keepdims=True) + 1e-5) * 2.0
    np.testing.assert_allclose(ln(x).numpy(), want, rtol=1e-4, atol=1e-5)
    g = nn.GELU(approximate="tanh")(x).numpy()
    np.testing.assert_allclose(g, 0.5 * xn * (1 + np.tanh(math.sqrt(2 / math.pi) * (xn + 0.044715 * xn ** 3))),
                               rtol=1e-5, atol=1e-6)
    mlp = nn.MLP(6, device=device)
    assert mlp.c_fc.weight.shape == (24, 6) and mlp.c_proj.weight.shape == (6, 24)
    assert mlp(tl.randn(2, 3, 6, device=device)).shape == (2, 3, 6)


def test_dropout_module(device):
    d = nn.Dropout(0.5)
    x = tl.ones(1000, device=device)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 300 < (y == 0).sum() < 700
    assert d.eval()(x) is x


# ---------------------------------------------------------------------------- attention
def _attention_oracle(x, w_attn, b_attn, w_proj, b_proj, n_head, mask=None, causal=False):
    """Plain NumPy multi-head attention, one head at a time, straight from the formulas."""
    B, T, C = x.shape
    hs = C // n_head
    qkv = x @ w_attn.T + b_attn
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    out = np.zeros_like(x)
    for b in range(B):
        heads = []
        for h in range(n_head):
            sl = slice(h * hs, (h + 1) * hs)
            s = q[b, :, sl] @ k[b, :, sl].T / np.sqrt(hs)
            allowed = np.ones((T, T), bool)
            if causal:
                allowed &= np.tril(allowed)
            if mask is not None:
                allowed &= np.broadcast_to(mask, (B, n_head, T, T))[b, h]
            s = np.where(allowed, s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            heads.append(p @ v[b, :, sl])
        out[b] = np.concatenate(heads, -1) @ w_proj.T + b_proj
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_oracle(device, causal):
    attn = nn.MultiHeadAttention(8, 2, causal=causal, device=device)
    for p in attn.parameters():
        p.data = backend.to_device(np.random.default_rng(3).standard_normal(p.shape).astype(np.float32) * 0.3, device)
    x = tl.randn(2, 5, 8, device=device)
    mask = np.random.default_rng(0).random((2, 1, 5, 5)) < 0.7
    mask[..., 0] = True  # every query sees at least one key
    for m in (None, mask):
        got = attn(x, attn_mask=None if m is None else tl.tensor(m, device=device)).numpy()
        want = _attention_oracle(x.numpy(), attn.c_attn.weight.numpy(), attn.c_attn.bias.numpy(),
                                 attn.c_proj.weight.numpy(), attn.c_proj.bias.numpy(), 2, m, causal)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_attention_returns_weights(device):
    attn = nn.CausalSelfAttention(8, 2, device=device)
    y, w = attn(tl.randn(1, 4, 8, device=device), return_weights=True)
    assert y.shape == (1, 4, 8) and w.shape == (1, 2, 4, 4)
    w = w.numpy()
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert not np.triu(w[0, 0], 1).any()  # no weight on the future


@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_gradcheck(device, with_mask):
    attn = nn.MultiHeadAttention(4, 2, device=device).to(dtype=np.float64)
    x = tl.randn(2, 3, 4, dtype=np.float64, device=device, requires_grad=True)
    mask = None
    if with_mask:
        m = np.array([[True, False, True], [True, True, False], [False, True, True]])
        mask = tl.tensor(m, device=device)
    params = attn.parameters()
    assert tl.gradcheck(lambda x, *ps: attn(x, attn_mask=mask), x, *params)


def test_kv_cache_attention_equals_full(device):
    attn = nn.CausalSelfAttention(8, 2, device=device)
    x = tl.randn(2, 6, 8, device=device)
    full = attn(x).numpy()
    cache = nn.KVCache(1, 2, 2, 6, 4, device=device)
    parts = []
    with tl.no_grad():
        for t0, t1 in ((0, 3), (3, 4), (4, 6)):
            parts.append(attn(x[:, t0:t1], kv_cache=cache, layer=0).numpy())
            cache.advance(t1 - t0)
    np.testing.assert_allclose(np.concatenate(parts, 1), full, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="do not fit"), tl.no_grad():
        attn(x[:, :1], kv_cache=cache)
    with pytest.raises(RuntimeError, match="no_grad"):
        attn(x[:, :1], kv_cache=nn.KVCache(1, 2, 2, 6, 4, device=device))


def test_block_shapes_and_names(device):
    blk = nn.Block(8, 2, device=device)
    names = [n for n, _ in blk.named_parameters()]
    assert names[:4] == ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias"]
    assert "mlp.c_proj.weight" in names
    assert blk(tl.randn(2, 3, 8, device=device)).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiHeadAttention(10, 3)


# ---------------------------------------------------------------------------- constructor checks
@pytest.mark.parametrize("cls, args, kwargs, match", [
    (nn.Linear, (-1, 2), {}, "Linear: in_features must be a positive int, got -1"),
    (nn.Linear, (2, 0), {}, "out_features"),
    (nn.Embedding, (0, 4), {}, "num_embeddings"),
    (nn.Embedding, (10, 4), {"padding_idx": 10}, "padding_idx must be in"),
    (nn.Dropout, (1.5,), {}, r"Dropout: p must be in \[0, 1\), got 1.5"),
    (nn.Dropout, (-0.1,), {}, "p must be in"),
    (nn.MultiHeadAttention, (8, 0), {}, "n_head must be a positive int"),
    (nn.CausalSelfAttention, (8, 2), {"dropout": 1.0}, "CausalSelfAttention: dropout"),
])
def test_constructor_arguments_are_checked(cls, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(*args, **kwargs)


def test_constructor_argument_types_are_checked():
    with pytest.raises(TypeError, match="in_features must be an int, got float"):
        nn.Linear(2.5, 3)
    with pytest.raises(TypeError, match="p must be a number"):
        nn.Dropout("0.1")
    assert nn.Embedding(10, 4, padding_idx=-1).padding_idx == 9  # counted from the end, as in torch


def test_layer_reprs_name_their_arguments():
    assert repr(nn.Linear(4, 16)) == "Linear(in_features=4, out_features=16, bias=True)"
    assert repr(nn.Linear(4, 16, bias=False)) == "Linear(in_features=4, out_features=16, bias=False)"
    assert "bias=False" in repr(nn.LayerNorm(4, bias=False)) and "bias" not in repr(nn.LayerNorm(4))
    assert repr(nn.Embedding(10, 4, padding_idx=0)) == "Embedding(10, 4, padding_idx=0)"
    assert repr(nn.Embedding(10, 4)) == "Embedding(10, 4)"
    assert "(c_fc): Linear(in_features=8, out_features=32, bias=True)" in repr(nn.MLP(8))


def test_layer_norm_takes_torch_arguments(device):
    x = tl.randn(2, 3, 4, device=device)
    for shape in (4, (4,), [4]):
        ln = nn.LayerNorm(normalized_shape=shape, device=device)
        assert ln.normalized_shape == (4,) and ln.weight.shape == (4,)
    assert repr(ln) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
    plain = nn.LayerNorm(4, elementwise_affine=False, device=device)
    assert plain.weight is None and plain.bias is None and plain.parameters() == []
    np.testing.assert_allclose(plain(x).numpy(), ln(x).numpy(), rtol=1e-5, atol=1e-6)  # ones and zeros at first
    with pytest.raises(ValueError, match="last axis only"):
        nn.LayerNorm((3, 4))


def test_gelu_approximate_argument():
    assert repr(nn.GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.GELU()) == "GELU(approximate='none')"          # PyTorch's default: the exact erf form
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        nn.GELU(approximate="erf")


def test_attention_takes_one_positional_input(device):
    attn = nn.MultiHeadAttention(8, 2, device=device)
    x = tl.randn(1, 3, 8, device=device)
    with pytest.raises(TypeError, match="self-attention.*got 3 positional arguments"):
        attn(x, x, x)  # torch's mha(query, key, value)
    with pytest.raises(TypeError):
        nn.Block(8, 2, device=device)(x, nn.KVCache(1, 1, 2, 3, 4, device=device))  # kv_cache by keyword only


# ---------------------------------------------------------------------------- containers
def test_sequential_chains_and_indexes(device):
    seq = nn.Sequential(nn.Linear(4, 8, device=device), nn.ReLU(), nn.Linear(8, 3, device=device), nn.Tanh())
    x = tl.randn(2, 4, device=device)
    want = np.tanh(np.maximum(x.numpy() @ seq[0].weight.numpy().T + seq[0].bias.numpy(), 0)
                   @ seq[2].weight.numpy().T + seq[2].bias.numpy())
    np.testing.assert_allclose(seq(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert len(seq) == 4 and isinstance(seq[-1], nn.Tanh) and [type(m) for m in seq][1] is nn.ReLU
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and head(x).shape == (2, 8)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert nn.Identity(54, unused=1)(x) is x
    with pytest.raises(TypeError, match="one by one"):
        nn.Sequential([nn.ReLU(), nn.Tanh()])


def test_module_dict_registers_by_key():
    m = nn.Module()
    m.heads = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.Linear(2, 1, bias=False)})
    m.heads["c"] = nn.Identity()
    assert [n for n, _ in m.named_parameters()] == ["heads.a.weight", "heads.a.bias", "heads.b.weight"]
    assert list(m.heads) == ["a", "b", "c"] and len(m.heads) == 3 and "b" in m.heads
    assert m.heads["b"].out_features == 1 and [k for k, _ in m.heads.items()] == list(m.heads.keys())
    del m.heads["c"]
    assert list(m.heads.values())[-1] is m.heads["b"]
    with pytest.raises(ValueError, match="without '.'"):
        m.heads["x.y"] = nn.ReLU()
    with pytest.raises(TypeError, match="expected a Module"):
        m.heads["z"] = 3


def test_plain_dict_of_modules_is_refused():
    m = nn.Module()
    with pytest.raises(TypeError, match="ModuleDict"):
        m.heads = {"a": nn.Linear(2, 2)}
    m.config = {"n_embd": 4}  # a dict of plain values is fine


# ---------------------------------------------------------------------------- Module helpers
def test_apply_children_and_requires_grad():
    m = Tiny()
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ["Embedding", "Linear", "Linear", "ModuleList", "Linear", "Dropout", "Tiny"]  # children first
    assert [n for n, _ in m.named_children()] == ["emb", "layers", "head", "drop"]
    assert list(m.children())[1] is m.layers
    assert m.requires_grad_(False) is m and not any(p.requires_grad for p in m.parameters())
    m.layers.requires_grad_()
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["layers.0.weight", "layers.0.bias",
                                                                        "layers.1.weight"]
    assert m(tl.tensor([[1, 2]])).requires_grad


def test_parameters_recurse_false_lists_own_only():
    m = Tiny()
    m.scale = nn.Parameter(tl.ones(3))
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert m.parameters(recurse=False) == [m.scale]
    assert [n for n, _ in m.layers.named_parameters(prefix="layers")][0] == "layers.0.weight"


def test_module_list_extend_insert_setitem():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.extend([nn.ReLU(), nn.Linear(2, 3)])
    ml.insert(0, nn.Tanh())
    ml[1] = nn.Linear(2, 4)
    assert [type(m).__name__ for m in ml] == ["Tanh", "Linear", "ReLU", "Linear"]
    assert [n for n, _ in ml.named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert ml[1].out_features == 4
    with pytest.raises(TypeError, match=r"ModuleList\[0\]: expected a Module, got int"):
        ml[0] = 3
    with pytest.raises(TypeError, match="expected a Module"):
        nn.ModuleList([nn.ReLU(), "relu"])


def test_to_takes_a_dtype_like_torch(device):
    m = Tiny()
    assert m.to(tl.float64) is m and all(p.dtype == np.float64 for p in m.parameters())
    m.to(device, np.float32)
    assert all(p.dtype == np.float32 and p.device == device for p in m.parameters())
    m.double().to(device=device)
    assert all(p.dtype == np.float64 for p in m.parameters())
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters()) and m.head.weight is m.emb.weight
    assert m.cpu() is m and all(p.device == "cpu" and type(p.data) is np.ndarray for p in m.parameters())
    with pytest.raises(TypeError, match="floating-point"):
        m.to(tl.int64)
    with pytest.raises(TypeError, match="device name"):
        m.to(3.5)


# ---------------------------------------------------------------------------- buffers
class WithBuffers(nn.Module):
    def __init__(self):
        self.lin = nn.Linear(3, 3)
        self.register_buffer("scale", tl.full((3,), 2.0))
        self.register_buffer("steps", np.zeros((), np.int64))                 # a raw array is fine too
        self.register_buffer("cache", tl.zeros(2, 3), persistent=False)

    def forward(self, x):
        return self.lin(x) * self.scale


def test_buffers_are_attributes_state_and_not_parameters():
    m = nn.Sequential(WithBuffers())
    assert [n for n, _ in m.named_buffers()] == ["0.scale", "0.steps", "0.cache"]
    assert m.buffers()[0] is m[0].scale and not m[0].scale.requires_grad
    assert [n for n, _ in m.named_parameters()] == ["0.lin.weight", "0.lin.bias"]     # not parameters
    # persistent buffers only; a module's own entries before its submodules', as torch
    assert list(m.state_dict()) == ["0.scale", "0.steps", "0.lin.weight", "0.lin.bias"]
    m(tl.randn(2, 3)).sum().backward()
    assert m[0].scale.grad is None and m[0].lin.weight.grad is not None
    with pytest.raises(TypeError, match="is a buffer"):
        m[0].scale = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="already has an attribute 'lin'"):
        m[0].register_buffer("lin", tl.zeros(1))
    with pytest.raises(TypeError, match="Parameter"):
        m[0].register_buffer("w", nn.Parameter(tl.zeros(1)))


def test_buffers_move_cast_and_load(device, tmp_path):
    m = WithBuffers().to(device).double()
    assert all(b.device == device for b in m.buffers()) and backend.device_of(m.scale.data) == device
    assert m.scale.dtype == m.cache.dtype == np.float64 and m.steps.dtype == np.int64  # ints stay ints
    assert m(tl.randn(2, 3, device=device, dtype=np.float64)).shape == (2, 3)
    other = WithBuffers()
    other.scale.data[...] = 5.0
    other.steps.data[...] = 7
    sd = {k: backend.to_numpy(v) for k, v in other.state_dict().items()}
    assert m.load_state_dict(sd) == ([], [])
    np.testing.assert_array_equal(m.scale.numpy(), [5.0, 5.0, 5.0])
    assert m.scale.dtype == np.float64 and m.steps.item() == 7 and m.scale.device == device
    with pytest.raises(ValueError, match="missing keys: steps"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "steps"})
    # through a checkpoint file, as the training loop saves them
    from tinylm.checkpoint import load_checkpoint, save_checkpoint
    save_checkpoint(tmp_path / "ckpt.npz", other.state_dict(), config={})
    fresh = WithBuffers().to(device)
    fresh.load_state_dict(load_checkpoint(tmp_path / "ckpt.npz").model)
    assert fresh.steps.item() == 7 and fresh.scale.numpy()[0] == 5.0


# ---------------------------------------------------------------------------- nn.init
def _init_weights(module):
    """nanoGPT's GPT._init_weights, written for tinylm."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def test_init_with_apply_like_nanogpt(device):
    def make():
        tl.manual_seed(3)
        return nn.Sequential(nn.Embedding(300, 64, device=device), nn.Linear(64, 64, device=device)).double()
    m = make()
    arrays = [p.data for p in m.parameters()]
    m.apply(_init_weights)
    assert all(p.data is a for p, a in zip(m.parameters(), arrays))  # written in place: the same arrays
    assert all(p.dtype == np.float64 and p.device == device for p in m.parameters())
    w = m[0].weight.numpy()
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    assert not m[1].bias.numpy().any()
    again = make().apply(_init_weights)  # same seed, same numbers
    np.testing.assert_array_equal(again[1].weight.numpy(), m[1].weight.numpy())


def test_init_functions(device):
    t = tl.zeros(1000, device=device)
    assert nn.init.uniform_(t, -0.5, 0.25) is t
    u = t.numpy()
    assert u.min() >= -0.5 and u.max() < 0.25 and u.std() > 0.1 and t.dtype == np.float32
    np.testing.assert_array_equal(nn.init.constant_(t, 3.5).numpy(), np.full(1000, 3.5, np.float32))
    assert nn.init.ones_(t).numpy().sum() == 1000 and not nn.init.zeros_(t).numpy().any()
    with pytest.raises(TypeError, match="expected a Tensor"):
        nn.init.normal_(np.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        nn.init.normal_(tl.zeros(3, dtype=tl.int64))
    with pytest.raises(ValueError, match="std must be >= 0"):
        nn.init.normal_(t, std=-1.0)


def test_shared_modules_are_visited_once_and_buffers_can_be_deleted():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, lin)
    seen = []
    seq.apply(seen.append)
    assert len(seen) == 2 and list(seq.children()) == [lin]
    m = nn.Linear(2, 2)
    m.register_buffer("tmp", tl.zeros(2))
    del m.tmp
    assert "tmp" not in m.state_dict() and list(m.named_buffers()) == []
    d = nn.ModuleDict({"a": nn.Linear(1, 1)})
    d.update(nn.ModuleDict({"b": nn.Linear(1, 1)}))
    assert len(list(d.children())) == 2


def test_zero_grad_without_none_zeroes_in_place_and_moduledict_del():
    lin = nn.Linear(2, 2)
    g = np.array([[np.inf, 1.0], [np.nan, -1.0]], np.float32)
    lin.weight.grad = g
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad is g and (g == 0).all() and not np.signbit(g).any()
    d = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.Linear(1, 1)})
    del d.a
    assert len(list(d.children())) == 1
