"""Check tinylm's GPT-2 loading against Hugging Face transformers' own GPT-2, both ways.

    python benchmarks/compare_hf_gpt2.py
    python benchmarks/compare_hf_gpt2.py --write-fixture tests/fixtures/hf-gpt2-tiny

A random GPT-2 is built by `transformers.GPT2LMHeadModel` (every weight, LayerNorm and bias
moved off its initial value, so a swapped or untransposed tensor shows) and saved by its own
`save_pretrained`. tinylm loads that folder with `GPT.from_pretrained`, and the two must agree
on the logits, the loss, the gradients of a fine-tuning step and greedy generation (with and
without the KV cache). Then tinylm's `save_pretrained` writes a folder that transformers must
load with no missing or unexpected weights and the same logits.

`--write-fixture DIR` also writes HF's folder and HF's outputs (expected.npz) into DIR: the
test suite compares tinylm with them without transformers installed (tests/test_model.py).
Needs the `bench` extra (torch, transformers).
"""
import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--vocab-size", type=int, default=64)
p.add_argument("--block-size", type=int, default=16)
p.add_argument("--n-layer", type=int, default=2)
p.add_argument("--n-head", type=int, default=2)
p.add_argument("--n-embd", type=int, default=16)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--write-fixture", metavar="DIR", help="write HF's folder and outputs here for the tests")
args = p.parse_args()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import tinylm as tl  # noqa: E402
from tinylm.model import GPT  # noqa: E402

CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def hf_model():
    torch.manual_seed(args.seed)
    cfg = transformers.GPT2Config(vocab_size=args.vocab_size, n_positions=args.block_size, n_embd=args.n_embd,
                                  n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():                      # LayerNorm weights 1 and biases 0 would hide mistakes
        for p_ in model.parameters():
            p_.add_(0.1 * torch.randn_like(p_))
    return model


def hf_outputs(model, ids, targets, prompt, new):
    """HF's logits, loss, gradients (named as tinylm names them) and greedy continuations."""
    x, y = torch.from_numpy(ids), torch.from_numpy(targets)
    logits = model(x).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    model.zero_grad()
    loss.backward()
    grads = {}
    for name, p_ in model.named_parameters():
        name = name.removeprefix("transformer.")
        g = p_.grad.numpy()
        grads[name] = g.T if name.endswith(CONV1D) else g
    with torch.no_grad():
        greedy = model.generate(torch.from_numpy(prompt), max_new_tokens=new, do_sample=False,
                                pad_token_id=0, eos_token_id=None).numpy()
    return logits.detach().numpy(), loss.item(), grads, greedy


def tinylm_outputs(model, ids, targets, prompt, new):
    logits, loss = model(tl.tensor(ids), tl.tensor(targets))
    model.zero_grad()
    loss.backward()
    grads = {name: tl.backend.to_numpy(p_.grad) for name, p_ in model.named_parameters()}
    greedy = {cache: model.generate(prompt, max_new_tokens=new, temperature=0.0, use_cache=cache).numpy()
              for cache in (True, False)}
    return logits.numpy(), loss.item(), grads, greedy


def main():
    rng = np.random.default_rng(args.seed)
    T = min(args.block_size - 4, 28)
    ids = rng.integers(0, args.vocab_size, size=(2, T))
    targets = rng.integers(0, args.vocab_size, size=(2, T))
    prompt, new = ids[:1, :4], min(args.block_size - 4, 20)
    hf = hf_model()
    work = Path(tempfile.mkdtemp())
    try:
        hf.save_pretrained(work / "hf")
        h_logits, h_loss, h_grads, h_greedy = hf_outputs(hf, ids, targets, prompt, new)
        model = GPT.from_pretrained(work / "hf")
        t_logits, t_loss, t_grads, t_greedy = tinylm_outputs(model, ids, targets, prompt, new)
        worst_grad = max(np.abs(t_grads[k] - h_grads[k]).max() / (np.abs(h_grads[k]).max() + 1e-12)
                         for k in h_grads)
        print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
              f"GPT-2 {args.n_layer}L/{args.n_head}H/{args.n_embd}, vocab {args.vocab_size}")
        print(f"HF -> tinylm: logits max |diff| {np.abs(t_logits - h_logits).max():.2e} "
              f"(largest logit {np.abs(h_logits).max():.2f}), "
              f"loss {t_loss:.6f} vs {h_loss:.6f}, gradients max relative diff {worst_grad:.2e}")
        print(f"              greedy tokens equal: KV cache {np.array_equal(t_greedy[True], h_greedy)}, "
              f"recompute {np.array_equal(t_greedy[False], h_greedy)}")
        # float32 on both sides: differences grow with width and depth, so they are measured
        # against the logits' own scale (1e-5 of the largest logit; 2e-7 is float32's rounding)
        scale = np.abs(h_logits).max()
        assert np.abs(t_logits - h_logits).max() <= 1e-5 * scale, np.abs(t_logits - h_logits).max() / scale
        assert abs(t_loss - h_loss) <= 1e-5 * max(1.0, h_loss) and worst_grad < 1e-4, (t_loss, h_loss, worst_grad)
        assert set(t_grads) == set(h_grads), set(t_grads) ^ set(h_grads)
        assert np.array_equal(t_greedy[True], h_greedy) and np.array_equal(t_greedy[False], h_greedy)

        model.save_pretrained(work / "tinylm")
        back, info = transformers.GPT2LMHeadModel.from_pretrained(work / "tinylm", output_loading_info=True)
        with torch.no_grad():
            b_logits = back.eval()(torch.from_numpy(ids)).logits.numpy()
        problems = {k: v for k, v in info.items() if v}
        print(f"tinylm -> HF: logits max |diff| {np.abs(b_logits - t_logits).max():.2e}, "
              f"loading problems: {problems or 'none'}")
        assert np.abs(b_logits - t_logits).max() <= 1e-5 * scale, np.abs(b_logits - t_logits).max() / scale
        assert not problems, problems

        if args.write_fixture:
            out = Path(args.write_fixture)
            out.mkdir(parents=True, exist_ok=True)
            for f in ("config.json", "model.safetensors"):
                shutil.copyfile(work / "hf" / f, out / f)
            np.savez(out / "expected.npz", ids=ids, targets=targets, prompt=prompt, logits=h_logits,
                     loss=np.float32(h_loss), greedy=h_greedy,
                     **{"grad." + k: v for k, v in h_grads.items()})
            print(f"fixture written to {out}: {sorted(os.listdir(out))}")
        print("all checks passed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
