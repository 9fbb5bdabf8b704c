"""Tests for tinylm/model.py: GPTConfig, GPT forward (gradients, causality, an oracle), generation
with a KV cache, overfitting one batch, and Hugging Face GPT-2 checkpoint folders."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylm as tl
from tinylm import backend
from tinylm.model import GPT, GPTConfig, PRESETS
from tinylm.safetensors import read_safetensors, write_safetensors

REPO = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8)


def tiny(device="cpu", **kw):
    return GPT(GPTConfig(**{**TINY, **kw}), device=device)


def randomise(model, seed=0, scale=0.3):
    """Random values in every parameter (biases and LayerNorm too), so no term hides behind a zero."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = backend.to_device((rng.standard_normal(p.shape) * scale).astype(p.dtype), p.device)
    return model


# ---------------------------------------------------------------------------- config
def test_config_presets_and_validation():
    c = GPTConfig.from_preset("cpu-small")
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size) == (4, 4, 128, 64)
    c = GPTConfig.from_preset("char-6L", vocab_size=80)
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.dropout, c.vocab_size) == (6, 6, 384, 256, 0.2, 80)
    assert GPTConfig.from_preset("gpt2") == GPTConfig()
    assert {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"} <= set(PRESETS)
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="unknown preset"):
        GPTConfig.from_preset("gpt5")
    with pytest.raises(ValueError, match="unknown fields"):
        GPTConfig.from_dict({"n_layers": 3})


def gpt2_param_count(c):
    """The parameter count of GPT-2 by formula (head tied to wte)."""
    C = c.n_embd
    per_block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    return c.vocab_size * C + c.block_size * C + c.n_layer * per_block + 2 * C


def test_parameter_count_names_and_tying():
    m = GPT(GPTConfig.from_preset("cpu-small"))
    assert m.num_parameters() == gpt2_param_count(m.config)
    assert gpt2_param_count(GPTConfig.from_preset("gpt2")) == 124_439_808  # GPT-2 small's published size
    assert m.lm_head.weight is m.wte.weight
    names = list(m.state_dict())
    assert names[:2] == ["wte.weight", "wpe.weight"] and names[-2:] == ["ln_f.weight", "ln_f.bias"]
    assert "lm_head.weight" not in names and "h.3.mlp.c_proj.bias" in names


def test_gpt2_init(device):
    tl.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=100, block_size=32, n_layer=2, n_head=2, n_embd=64), device=device)
    sd = {k: backend.to_numpy(v) for k, v in m.state_dict().items()}
    assert abs(sd["wte.weight"].std() - 0.02) < 2e-3
    assert abs(sd["h.0.attn.c_proj.weight"].std() - 0.02 / math.sqrt(4)) < 1e-3
    assert abs(sd["h.1.mlp.c_proj.weight"].std() - 0.02 / math.sqrt(4)) < 1e-3
    assert abs(sd["h.0.mlp.c_fc.weight"].std() - 0.02) < 1e-3
    assert not sd["h.0.attn.c_attn.bias"].any() and (sd["ln_f.weight"] == 1).all()
    assert all(v.dtype == np.float32 for v in sd.values())
    tl.manual_seed(0)
    m2 = GPT(m.config, device=device)
    for k, v in m2.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(v), sd[k])  # the device RNG: same seed, same model


def test_forward_shapes_loss_and_inputs(device):
    m = tiny(device)
    idx = [[1, 2, 3], [4, 5, 6]]
    logits, loss = m(tl.tensor(idx, device=device), tl.tensor(idx, device=device))
    assert logits.shape == (2, 3, 7) and logits.dtype == np.float32 and logits.device == device
    assert abs(loss.item() - math.log(7)) < 0.1  # near-uniform at initialisation
    assert m(idx)[1] is None
    for other in (np.array(idx), backend.to_device(np.array(idx), device)):
        np.testing.assert_array_equal(m(other)[0].numpy(), logits.numpy())
    targets = np.array([[2, 3, -100], [5, 6, -100]])
    l2 = m(idx, targets)[1].item()
    want = -np.take_along_axis(logits.log_softmax().numpy()[:, :2], targets[:, :2, None], -1).mean()
    assert abs(l2 - want) < 1e-5  # -100 is ignored


def test_forward_errors_name_the_value(device):
    m = tiny(device)
    with pytest.raises(ValueError, match="length 5 is longer than block_size 4"):
        m([[1, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match="token id 7 is outside the vocabulary"):
        m([[1, 7]])
    with pytest.raises(ValueError, match="token id -1"):
        m([[-1, 2]])
    with pytest.raises(TypeError, match="integer"):
        m(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        m([1, 2])


def test_gradcheck_tiny_gpt(device):
    n_layer = 2 if device == "cpu" else 1  # two layers on cpu only (time)
    m = randomise(tiny(device, n_layer=n_layer)).to(dtype=np.float64)
    idx = np.array([[1, 2, 3, 0], [6, 5, 4, 4]])
    targets = np.array([[2, 3, 0, 6], [5, 4, 4, -100]])
    params = m.parameters()
    assert len(params) == 4 + 12 * n_layer  # every parameter, the tied head once
    assert tl.gradcheck(lambda *ps: m(idx, targets), *params, atol=1e-5, rtol=1e-3)


def test_causality(device):
    m = randomise(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16), device=device))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 11, (2, 8))
    base = m(idx)[0].numpy()
    for t in range(7):
        changed = idx.copy()
        changed[:, t + 1:] = rng.integers(0, 11, (2, 7 - t))
        out = m(changed)[0].numpy()
        np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:])


def test_oracle_picogpt_forward(device):
    """A plain-NumPy GPT-2 forward written from the formulas (picoGPT) equals GPT.forward."""
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16)
    m = randomise(GPT(cfg, device=device))
    p = {k: backend.to_numpy(v).astype(np.float64) for k, v in m.state_dict().items()}

    def ln(x, g, b):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return g * (x - mu) / np.sqrt(var + 1e-5) + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def mha(x, i, n_head):
        T = x.shape[0]
        qkv = x @ p[f"h.{i}.attn.c_attn.weight"].T + p[f"h.{i}.attn.c_attn.bias"]
        heads = [np.split(a, n_head, axis=-1) for a in np.split(qkv, 3, axis=-1)]
        causal = (1 - np.tri(T)) * -1e10
        out = [softmax(q @ k.T / np.sqrt(q.shape[-1]) + causal) @ v for q, k, v in zip(*heads)]
        return np.hstack(out) @ p[f"h.{i}.attn.c_proj.weight"].T + p[f"h.{i}.attn.c_proj.bias"]

    def gpt2(ids):
        x = p["wte.weight"][ids] + p["wpe.weight"][range(len(ids))]
        for i in range(cfg.n_layer):
            x = x + mha(ln(x, p[f"h.{i}.ln_1.weight"], p[f"h.{i}.ln_1.bias"]), i, cfg.n_head)
            h = ln(x, p[f"h.{i}.ln_2.weight"], p[f"h.{i}.ln_2.bias"])
            h = gelu(h @ p[f"h.{i}.mlp.c_fc.weight"].T + p[f"h.{i}.mlp.c_fc.bias"])
            x = x + h @ p[f"h.{i}.mlp.c_proj.weight"].T + p[f"h.{i}.mlp.c_proj.bias"]
        return ln(x, p["ln_f.weight"], p["ln_f.bias"]) @ p["wte.weight"].T

    idx = np.random.default_rng(1).integers(0, 13, (3, 8))
    got = m(idx)[0].numpy()
    want = np.stack([gpt2(row) for row in idx])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- generation
def test_kv_cache_logits_equal_full_recompute_across_the_window(device):
    m = randomise(GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=16), device=device))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, (2, 16))
    cache = m.new_kv_cache(2)
    for n in range(2, 17):  # prompt of 2, then one token at a time, sliding past block_size 6
        ctx = backend.to_device(ids[:, :n], device)
        got = backend.to_numpy(m.next_token_logits(ctx, cache))
        with tl.no_grad():
            want = m(ids[:, :n][:, -6:])[0].numpy()[:, -1]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert cache.length == min(n, 6)


def test_generate_cache_equals_recompute_and_seeds(device):
    m = randomise(GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=16), device=device),
                  scale=0.5)
    prompt = [[1, 2, 3]]
    a = m.generate(prompt, 12, seed=3)
    b = m.generate(prompt, 12, seed=3, use_cache=False)
    c = m.generate(np.array([1, 2, 3]), 12, seed=3)
    assert a.shape == (1, 15) and a.dtype == np.int64 and a.device == device
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(a.numpy()[0, :3], [1, 2, 3])
    long = [[1, 2, 3, 4, 5, 6, 7, 8, 9]]  # a prompt longer than block_size 6 slides at once
    np.testing.assert_array_equal(m.generate(long, 4, seed=1).numpy(),
                                  m.generate(long, 4, seed=1, use_cache=False).numpy())
    others = [m.generate(prompt, 12, seed=s).numpy() for s in range(4, 8)]
    assert any((o != a.numpy()).any() for o in others)
    # greedy is argmax at every step
    g = m.generate(prompt, 8, temperature=0).numpy()[0]
    for n in range(3, 11):
        with tl.no_grad():
            assert g[n] == m([g[max(0, n - 6):n]])[0].numpy()[0, -1].argmax()


def test_generate_num_samples_stop_token_and_mode(device):
    m = randomise(tiny(device), scale=0.5)
    m.train()
    out = m.generate([[1, 2], [3, 4]], 5, num_samples=3, seed=0, top_k=3, top_p=0.9)
    assert out.shape == (6, 7)
    np.testing.assert_array_equal(out.numpy()[:3, :2], [[1, 2]] * 3)
    np.testing.assert_array_equal(out.numpy()[3:, :2], [[3, 4]] * 3)
    assert m.training and m.drop.training  # training mode restored
    # a stop token ends rows; generation stops once every row has it
    first = m.generate([[1]], 1, temperature=0).numpy()[0, 1]
    out = m.generate([[1], [1]], 50, temperature=0, stop_token=int(first)).numpy()
    assert out.shape == (2, 2) and (out[:, 1] == first).all()
    with pytest.raises(ValueError, match="T >= 1"):
        m.generate([[]], 3)


def _adam(params, lr):
    """tinylm.optim.AdamW when present (another module), else a plain Adam written here."""
    try:
        from tinylm.optim import AdamW
        return AdamW(params, lr=lr, weight_decay=0.0)
    except ImportError:
        pass

    class Adam:
        def __init__(self):
            self.t, self.m, self.v = 0, [0.0] * len(params), [0.0] * len(params)

        def zero_grad(self):
            for p in params:
                p.grad = None

        def step(self):
            self.t += 1
            for i, p in enumerate(params):
                self.m[i] = 0.9 * self.m[i] + 0.1 * p.grad
                self.v[i] = 0.999 * self.v[i] + 0.001 * p.grad * p.grad
                mhat, vhat = self.m[i] / (1 - 0.9 ** self.t), self.v[i] / (1 - 0.999 ** self.t)
                p.data = p.data - lr * mhat / (vhat ** 0.5 + 1e-8)
    return Adam()


def test_overfits_one_batch(device):
    tl.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=32), device=device)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 11, (4, 9))
    x, y = tl.tensor(data[:, :-1], device=device), tl.tensor(data[:, 1:], device=device)
    opt = _adam(m.parameters(), lr=1e-2)
    for step in range(300):
        _, loss = m(x, y)
        if loss.item() < 0.1:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, f"loss {loss.item():.3f} after {step} steps"


# ---------------------------------------------------------------------------- GPT-2 checkpoints
def _hf_checkpoint(tmp_path, cfg, prefix="transformer.", extra=True, dtype=np.float32, seed=0):
    """A Hugging Face style GPT-2 folder with random weights in HF's layout (Conv1D: (in, out))."""
    rng = np.random.default_rng(seed)
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    shapes = {"wte.weight": (V, C), "wpe.weight": (cfg.block_size, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(L):
        shapes.update({f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_1.bias": (C,), f"h.{i}.ln_2.weight": (C,),
                       f"h.{i}.ln_2.bias": (C,), f"h.{i}.attn.c_attn.weight": (C, 3 * C),
                       f"h.{i}.attn.c_attn.bias": (3 * C,), f"h.{i}.attn.c_proj.weight": (C, C),
                       f"h.{i}.attn.c_proj.bias": (C,), f"h.{i}.mlp.c_fc.weight": (C, 4 * C),
                       f"h.{i}.mlp.c_fc.bias": (4 * C,), f"h.{i}.mlp.c_proj.weight": (4 * C, C),
                       f"h.{i}.mlp.c_proj.bias": (C,)})
    w = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
    tensors = {prefix + k: v.astype(dtype) if dtype != "bf16" else v for k, v in w.items()}
    if extra:
        tensors["lm_head.weight"] = w["wte.weight"]
        for i in range(L):
            tensors[f"{prefix}h.{i}.attn.bias"] = np.tril(np.ones((1, 1, cfg.block_size, cfg.block_size), np.float32))
            tensors[f"{prefix}h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    path = tmp_path / "hf"
    path.mkdir()
    write_safetensors(path / "model.safetensors", tensors, metadata={"format": "pt"},
                      bf16=set(tensors) if dtype == "bf16" else ())
    (path / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "vocab_size": V, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
        "n_embd": C, "n_layer": L, "n_head": cfg.n_head, "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new"}))
    return path, w


def _hf_oracle(w, cfg, ids):
    """GPT-2 forward in HF's layout (x @ W with W (in, out)), NumPy float64."""
    w = {k: v.astype(np.float64) for k, v in w.items()}

    def ln(x, n):
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w[n + ".weight"] \
            + w[n + ".bias"]

    def conv(x, n):
        return x @ w[n + ".weight"] + w[n + ".bias"]

    T, C, nh = len(ids), cfg.n_embd, cfg.n_head
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    for i in range(cfg.n_layer):
        q, k, v = np.split(conv(ln(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn"), 3, -1)
        q, k, v = (a.reshape(T, nh, -1).transpose(1, 0, 2) for a in (q, k, v))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(C // nh) + np.triu(np.full((T, T), -np.inf), 1)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + conv((a @ v).transpose(1, 0, 2).reshape(T, C), f"h.{i}.attn.c_proj")
        h = conv(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
        x = x + conv(h, f"h.{i}.mlp.c_proj")
    return ln(x, "ln_f") @ w["wte.weight"].T


CFG = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16)


@pytest.mark.parametrize("prefix,extra", [("transformer.", True), ("", False)])
def test_from_pretrained_matches_hf_layout_oracle(tmp_path, device, prefix, extra):
    path, w = _hf_checkpoint(tmp_path, CFG, prefix, extra)
    m = GPT.from_pretrained(path, device=device)
    assert m.config == CFG and m.device == device and m.lm_head.weight is m.wte.weight
    ids = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    np.testing.assert_allclose(m([ids])[0].numpy()[0], _hf_oracle(w, CFG, ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, "bf16"])
def test_from_pretrained_half_precision_becomes_float32(tmp_path, dtype):
    path, _ = _hf_checkpoint(tmp_path, CFG, dtype=dtype)
    m = GPT.from_pretrained(path)
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_save_pretrained_round_trip_is_exact(tmp_path, device):
    m = randomise(GPT(CFG, device=device))
    m.save_pretrained(tmp_path / "out")
    hf = json.loads((tmp_path / "out" / "config.json").read_text())
    assert hf["model_type"] == "gpt2" and hf["architectures"] == ["GPT2LMHeadModel"]
    assert (hf["n_embd"], hf["n_layer"], hf["n_head"], hf["n_positions"], hf["vocab_size"]) == (16, 2, 2, 8, 17)
    assert hf["layer_norm_epsilon"] == 1e-5
    assert hf["bos_token_id"] is None and hf["eos_token_id"] is None   # no <|endoftext|> in a 17-token vocab
    st = read_safetensors(tmp_path / "out" / "model.safetensors")
    assert st["transformer.h.0.mlp.c_fc.weight"].shape == (16, 64)  # HF's Conv1D layout, (in, out)
    m2 = GPT.from_pretrained(tmp_path / "out", device=device)
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))


HF_FIXTURE = REPO / "tests" / "fixtures" / "hf-gpt2-tiny"


def test_from_pretrained_matches_transformers_own_outputs(device):
    """A folder written by transformers' GPT2LMHeadModel.save_pretrained, and that model's own
    logits, loss, gradients and greedy generation (benchmarks/compare_hf_gpt2.py wrote them)."""
    hf = np.load(HF_FIXTURE / "expected.npz")
    m = GPT.from_pretrained(HF_FIXTURE, device=device)
    assert m.config == GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=16)
    logits, loss = m(tl.tensor(hf["ids"], device=device), tl.tensor(hf["targets"], device=device))
    np.testing.assert_allclose(logits.numpy(), hf["logits"], rtol=1e-5, atol=1e-5)
    assert abs(loss.item() - hf["loss"]) < 1e-5
    loss.backward()
    named = dict(m.named_parameters())
    assert set(named) == {k[len("grad."):] for k in hf.files if k.startswith("grad.")}
    for name, p in named.items():
        want = hf["grad." + name]
        np.testing.assert_allclose(backend.to_numpy(p.grad), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    for use_cache in (True, False):
        out = m.generate(hf["prompt"], max_new_tokens=hf["greedy"].shape[1] - hf["prompt"].shape[1],
                         temperature=0.0, use_cache=use_cache)
        np.testing.assert_array_equal(out.numpy(), hf["greedy"])


def test_from_pretrained_errors(tmp_path):
    path, w = _hf_checkpoint(tmp_path, CFG)
    st = read_safetensors(path / "model.safetensors")
    missing = {k: np.array(v) for k, v in st.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    write_safetensors(path / "model.safetensors", missing)
    with pytest.raises(ValueError, match="missing keys: h.1.mlp.c_fc.bias"):
        GPT.from_pretrained(path)
    wrong = {**missing, "transformer.h.1.mlp.c_fc.bias": np.zeros(5, np.float32)}
    write_safetensors(path / "model.safetensors", wrong)
    with pytest.raises(ValueError, match=r"h.1.mlp.c_fc.bias: checkpoint \(5,\) vs model \(64,\)"):
        GPT.from_pretrained(path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_pretrained(tmp_path)


def test_generate_example_end_to_end(tmp_path, shared_data):
    """examples/generate.py --pretrained DIR: a (tiny, random) GPT-2 folder with GPT-2's tokenizer files."""
    pytest.importorskip("tinylm.tokenizers")
    enc, bpe = shared_data / "gpt2" / "encoder.json", shared_data / "gpt2" / "vocab.bpe"
    if not enc.is_file() or not bpe.is_file():
        pytest.skip("GPT-2 tokenizer files not in shared data")
    d = tmp_path / "gpt2-tiny"
    GPT(GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=8)).save_pretrained(d)
    (d / "vocab.json").write_bytes(enc.read_bytes())
    (d / "merges.txt").write_bytes(bpe.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, str(REPO / "examples" / "generate.py"), "--pretrained", str(d),
                        "--prompt", "Once upon a time", "--max-new-tokens", "5", "--seed", "1", "--top-k", "5"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Once upon a time")


def test_generate_checks_its_counts_and_prompts():
    model = GPT(CFG)
    for kwargs in (dict(max_new_tokens=-1), dict(max_new_tokens=2, num_samples=0),
                   dict(max_new_tokens=2, seed=-1)):    # examples/generate.py --seed -1
        with pytest.raises(ValueError, match="generate: (max_new_tokens|num_samples|seed)"):
            model.generate([[1, 2]], **kwargs)
    with pytest.raises(TypeError, match="generate: max_new_tokens must be an int, got float"):
        model.generate([[1, 2]], max_new_tokens=2.5)
    with pytest.raises(ValueError, match="holds no tokens"):
        model(np.zeros((1, 0), np.int64))


def test_from_pretrained_refuses_an_untied_head_and_bad_json(tmp_path):
    path, w = _hf_checkpoint(tmp_path, CFG)
    st = read_safetensors(path / "model.safetensors")
    st["lm_head.weight"] = st["lm_head.weight"] + 1.0
    write_safetensors(path / "model.safetensors", st)
    cfg = json.loads((path / "config.json").read_text())
    GPT.from_pretrained(path)                                  # tied by default (HF's rule): the head is ignored
    (path / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": False}))
    with pytest.raises(ValueError, match="untied head"):
        GPT.from_pretrained(path)
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        GPT.from_pretrained(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        GPT.from_pretrained(path)


@pytest.mark.parametrize("key,value", [("n_inner", 32), ("scale_attn_weights", False),
                                       ("scale_attn_by_inverse_layer_idx", True), ("add_cross_attention", True)])
def test_from_pretrained_refuses_gpt2_variants_it_does_not_compute(tmp_path, key, value):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "model.safetensors").write_bytes((HF_FIXTURE / "model.safetensors").read_bytes())
    cfg = json.loads((HF_FIXTURE / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "n_inner": 64}))     # 4 * n_embd, written out: fine
    GPT.from_pretrained(d)
    (d / "config.json").write_text(json.dumps({**cfg, key: value}))
    with pytest.raises(ValueError, match=key):
        GPT.from_pretrained(d)


def test_hostile_calls_get_clear_errors_before_any_work():
    model = GPT(CFG)
    with pytest.raises(TypeError, match="idx must be token ids"):
        model(None)
    for kwargs, match in ((dict(stop_token=2**70), "stop_token must be an int in"),    # was an OverflowError
                          (dict(stop_token=CFG.vocab_size), "stop_token must be an int in"),
                          (dict(max_new_tokens=10**13), "max_new_tokens must be an int in"),   # was a 73 TiB allocation
                          (dict(max_new_tokens=10**9), "would take 7 GiB")):
        with pytest.raises(ValueError, match=match):
            model.generate([[1, 2]], **{"max_new_tokens": 2, **kwargs})
    for kwargs, match in ((dict(temperature="hot"), "temperature must be a number, got str"),
                          (dict(top_p="x"), "top_p must be a number, got str"),
                          (dict(top_k=2.5), "top_k must be an int")):
        with pytest.raises(TypeError, match=match):
            model.generate([[1, 2]], 2, **kwargs)
