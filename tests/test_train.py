"""Tests for tinylm/train.py and examples/train_shakespeare.py: determinism, resume, NaN, the example end to end."""
import csv
import importlib.util
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylm as tl
from tinylm.backend import to_numpy
from tinylm.checkpoint import load_checkpoint
from tinylm.data import TokenDataset
from tinylm.model import GPT, GPTConfig
from tinylm.train import TrainConfig, estimate_loss, evaluate, plot_runs, train

REPO = Path(__file__).resolve().parents[1]
TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 40


def _setup(device, tmp_path, init_seed=0, **overrides):
    tl.manual_seed(init_seed)
    model = GPT(TINY, device=device)
    data = TokenDataset((np.arange(600) * 7) % 11, device=device).split(0.9)
    cfg = TrainConfig(**{**dict(max_iters=6, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_iters=2, eval_interval=2,
                                eval_iters=2, log_interval=1, out_dir=str(tmp_path), seed=3, plot=False), **overrides})
    return model, data, cfg


def _weights(model):
    return {k: to_numpy(v).copy() for k, v in model.state_dict().items()}


def test_same_seed_same_losses(device, tmp_path):
    runs = []
    for i in range(2):
        model, data, cfg = _setup(device, tmp_path / str(i), max_iters=4)
        h = train(model, data, cfg, progress=False)
        runs.append((h.losses, [e["val_loss"] for e in h.evals], _weights(model)))
    assert len(runs[0][0]) == 4 and all(math.isfinite(x) for x in runs[0][0])
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    for k in runs[0][2]:
        np.testing.assert_array_equal(runs[0][2][k], runs[1][2][k])
    model, data, cfg = _setup(device, tmp_path / "other", max_iters=4, seed=4)  # another run seed: other batches
    assert train(model, data, cfg, progress=False).losses != runs[0][0]


def test_evaluate_is_the_exact_mean_over_every_target(device, tmp_path):
    model, data, _ = _setup(device, tmp_path)
    model.train()
    val = data.val                                          # 60 tokens: 59 targets in 7 windows of 8 + 1 of 3
    exact = evaluate(model, val, batch_size=3)
    assert model.training and isinstance(exact, float)      # eval mode only inside
    # by hand, one window at a time, weighted by its number of targets
    ids = to_numpy(val.ids).astype(np.int64)
    model.eval()
    total = 0.0
    for lo in range(0, 59, 8):
        hi = min(lo + 8, 59)
        _, loss = model(tl.tensor(ids[lo:hi][None], device=device), tl.tensor(ids[lo + 1:hi + 1][None], device=device))
        total += loss.item() * (hi - lo)
    assert exact == pytest.approx(total / 59, rel=1e-6)
    assert evaluate(model, val, batch_size=64) == pytest.approx(exact, rel=1e-6)  # batching changes nothing
    assert evaluate(model, val, batch_size=3, progress=True) == exact              # the bar changes nothing
    # the sampled estimate aims at the same number
    sampled = estimate_loss(model, data, batch_size=16, eval_iters=40, seed=0)["val"]
    assert abs(sampled - exact) < 0.05 * exact
    with pytest.raises(TypeError, match="dataset must be a tinylm.data.TokenDataset, got Splits"):
        evaluate(model, data)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        evaluate(model, val, batch_size=0, progress=True)   # examples/evaluate.py --batch-size 0


def test_plot_runs_draws_each_run_or_says_what_is_missing(tmp_path):
    pytest.importorskip("matplotlib")
    for lr in (1e-2, 3e-3):
        model, data, cfg = _setup("cpu", tmp_path / f"lr{lr}", lr=lr, min_lr=lr / 10)
        train(model, data, cfg, progress=False)
    png = tmp_path / "sweep.png"
    assert plot_runs({"lr 1e-2": tmp_path / "lr0.01", "lr 3e-3": tmp_path / "lr0.003" / "log.csv"}, png,
                     title="a sweep", since_step=2, target=2.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no evaluation rows"):
        plot_runs({"late": tmp_path / "lr0.01"}, png, since_step=99)
    with pytest.raises(ValueError, match="at least one run"):
        plot_runs({}, png)


def test_interrupt_then_resume_matches_an_unbroken_run(device, tmp_path):
    model, data, cfg = _setup(device, tmp_path / "straight")
    want = train(model, data, cfg, progress=False)
    want_weights = _weights(model)

    def interrupt(row):
        if row["step"] == 2:          # Ctrl-C after 3 steps (between evaluations)
            raise KeyboardInterrupt
    model, data, cfg = _setup(device, tmp_path / "broken")
    h = train(model, data, cfg, progress=False, on_step=interrupt)
    assert h.stopped == "interrupted" and h.step == 3 and h.losses == want.losses[:3]
    assert load_checkpoint(tmp_path / "broken" / "last.npz").step == 3

    model, data, cfg = _setup(device, tmp_path / "broken", init_seed=99)  # other init: the file supplies all
    h = train(model, data, cfg, resume=True, progress=False)
    assert h.start_step == 3 and h.stopped == "max_iters"
    assert h.losses == want.losses[3:]
    assert h.best_val_loss == want.best_val_loss
    for k, v in _weights(model).items():
        np.testing.assert_array_equal(v, want_weights[k])
    with open(tmp_path / "broken" / "log.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if not r["val_loss"]]
    assert steps == list(range(6))    # one row per step, none repeated by the resume
    assert load_checkpoint(tmp_path / "broken" / "best.npz").extra["best_val_loss"] == want.best_val_loss


def test_resume_with_changed_settings_uses_them(tmp_path):
    model, data, cfg = _setup("cpu", tmp_path, max_iters=2)
    train(model, data, cfg, progress=False)
    model, data, cfg = _setup("cpu", tmp_path, max_iters=4, weight_decay=0.0, beta2=0.9)
    with pytest.warns(UserWarning, match="weight_decay: saved 0.1, current 0.0"):
        train(model, data, cfg, resume=True, progress=False)
    ck = load_checkpoint(tmp_path / "last.npz")     # the optimizer ran with the new settings, as recorded
    assert [(g["weight_decay"], g["betas"]) for g in ck.optimizer["param_groups"]] == [(0.0, [0.9, 0.9])] * 2
    assert ck.extra["train_config"]["weight_decay"] == 0.0 and ck.optimizer["state"][0]["step"] == 4


def test_interrupt_during_an_evaluation_keeps_its_best_checkpoint(tmp_path):
    model, data, cfg = _setup("cpu", tmp_path / "straight", max_iters=4)
    want = train(model, data, cfg, progress=False)
    assert want.evals[-1]["val_loss"] == want.best_val_loss          # step 4's evaluation is the best

    def interrupt(row):
        if row["step"] == 4:          # a second Ctrl-C while the example prints its sample
            raise KeyboardInterrupt
    model, data, cfg = _setup("cpu", tmp_path / "broken", max_iters=4)
    assert train(model, data, cfg, progress=False, on_eval=interrupt).stopped == "interrupted"
    model, data, cfg = _setup("cpu", tmp_path / "broken", max_iters=4)
    h = train(model, data, cfg, resume=True, progress=False)
    assert [e["step"] for e in h.evals] == [4] and h.best_val_loss == want.best_val_loss
    best = load_checkpoint(tmp_path / "broken" / "best.npz")
    assert best.step == 4 and best.extra["best_val_loss"] == want.best_val_loss


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model, data, cfg = _setup("cpu", tmp_path, max_iters=10, eval_interval=2)
    saved = {}

    def snapshot(row):
        saved[row["step"]] = _weights(model)

    def poison(row):
        if row["step"] == 2:          # after the evaluation (and checkpoint) at step 2
            model.wte.weight.data[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3.*last\.npz \(step 2\), is kept"):
        train(model, data, cfg, progress=False, on_step=poison, on_eval=snapshot)
    ck = load_checkpoint(tmp_path / "last.npz")
    assert ck.step == 2 and ck.extra["last_eval_step"] == 2
    for k, v in ck.model.items():
        assert np.isfinite(v).all()
        np.testing.assert_array_equal(v, saved[2][k])
    # a resumed run starts from the good state
    model, data, cfg = _setup("cpu", tmp_path, max_iters=10, eval_interval=2)
    assert all(math.isfinite(x) for x in train(model, data, cfg, resume=True, progress=False).losses)


def test_early_stopping_and_config_checks(tmp_path):
    model, data, cfg = _setup("cpu", tmp_path, max_iters=50, eval_interval=1, patience=2, lr=0.0, min_lr=0.0)
    h = train(model, data, cfg, progress=False)      # lr 0: the val loss never improves after step 0
    assert h.stopped == "early_stop" and h.step == 2 and len(h.evals) == 3
    with pytest.raises(ValueError, match="max_iters must be a positive int, got 0"):
        TrainConfig(max_iters=0)
    with pytest.raises(ValueError, match="min_lr 0.1 is larger than lr 0.01"):
        TrainConfig(lr=0.01, min_lr=0.1)
    with pytest.raises(ValueError, match="unknown training preset 'big'"):
        TrainConfig.from_preset("big")
    with pytest.raises(TypeError, match="data must be tinylm.data.Splits"):
        train(model, [1, 2, 3], cfg)
    short = TokenDataset(np.arange(40) % 11).split(0.9)     # val: 4 tokens, block_size 8
    with pytest.raises(ValueError, match="the val split has 4 tokens, too few for block_size 8"):
        train(model, short, TrainConfig(out_dir=str(tmp_path / "short")), progress=False)
    assert not (tmp_path / "short").exists()
    other = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=32))
    with pytest.raises(ValueError, match="n_embd: saved 16, current 32"):
        train(other, data, cfg, resume=True, progress=False)


# ---------------------------------------------------------------------------- the example
def _example():
    spec = importlib.util.spec_from_file_location("train_shakespeare", REPO / "examples" / "train_shakespeare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_ARGS = ["--max-iters", "3", "--eval-interval", "2", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16",
             "--n-head", "2", "--block-size", "16", "--batch-size", "2", "--sample-chars", "20", "--no-plot"]


@pytest.mark.parametrize("dev", ["cpu", "strict"])
def test_example_end_to_end(dev, tmp_path, capsys):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    args = TINY_ARGS + ["--device", dev, "--data", str(tmp_path / "text.txt"), "--out-dir", str(tmp_path / "out")]
    h = _example().main(args)
    assert h.stopped == "max_iters" and h.step == 3 and [e["step"] for e in h.evals] == [0, 2, 3]
    out = capsys.readouterr().out
    assert "cpu-small on " + dev in out and "done at step 3" in out and out.count("-" * 40) == 6  # 3 samples
    assert "val loss over all " in out and " val targets (every one once): " in out
    ck = load_checkpoint(tmp_path / "out" / "last.npz")
    assert ck.step == 3 and ck.tokenizer["type"] == "char" and ck.config["n_layer"] == 1
    assert ck.extra["train_config"]["batch_size"] == 2 and ck.extra["train_config"]["lr"] == 3e-3
    # resuming a finished run trains nothing more and says so
    h = _example().main(args + ["--resume"])
    assert h.step == 3 and h.evals == [] and load_checkpoint(tmp_path / "out" / "last.npz").step == 3
    assert "nothing to do: the run in" in capsys.readouterr().out


@pytest.mark.skipif(tl.gpu_available(), reason="a GPU is present")
def test_examples_say_in_one_line_that_there_is_no_gpu(tmp_path):
    with pytest.raises(SystemExit, match="--device gpu: device 'gpu'"):
        _example().main(TINY_ARGS + ["--device", "gpu", "--out-dir", str(tmp_path / "out")])
    spec = importlib.util.spec_from_file_location("generate_example", REPO / "examples" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with pytest.raises(SystemExit, match="--device gpu: device 'gpu'"):
        gen.main(["--checkpoint", str(tmp_path / "none.npz"), "--device", "gpu"])
    with pytest.raises(SystemExit, match="--device tpu: unknown device 'tpu'"):
        gen.main(["--checkpoint", str(tmp_path / "none.npz"), "--device", "tpu"])
    assert not (tmp_path / "out").exists()                   # nothing was started


@pytest.mark.parametrize("script,args,message", [
    ("train_shakespeare.py", ["--data", "missing.txt"], "error: Shakespeare text not found at missing.txt"),
    ("generate.py", ["--checkpoint", "missing.npz"], "error: checkpoint missing.npz does not exist"),
    ("evaluate.py", ["--checkpoint", "missing.npz"], "error: checkpoint missing.npz does not exist"),
])
def test_examples_report_bad_input_in_one_line(tmp_path, script, args, message):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith(message) and "Traceback" not in proc.stderr


def test_evaluate_example_scores_a_checkpoint_exactly(tmp_path, capsys):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    out_dir = tmp_path / "out"
    _example().main(TINY_ARGS + ["--device", "cpu", "--data", str(tmp_path / "text.txt"), "--out-dir", str(out_dir)])
    spec = importlib.util.spec_from_file_location("evaluate_example", REPO / "examples" / "evaluate.py")
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)
    capsys.readouterr()
    loss = ev.main(["--checkpoint", str(out_dir / "last.npz"), "--data", str(tmp_path / "text.txt"),
                    "--batch-size", "3"])
    # the same number as the library call on the same split
    ck = load_checkpoint(out_dir / "last.npz")
    model = GPT(GPTConfig.from_dict(ck.config))
    model.load_state_dict(ck.model)
    tok = tl.tokenizers.tokenizer_from_dict(ck.tokenizer)
    val = TokenDataset(np.asarray(tok.encode(TEXT), dtype=np.int64)).split(0.9).val
    assert loss == pytest.approx(evaluate(model, val, batch_size=64), rel=1e-6)
    out = capsys.readouterr().out
    assert out.startswith(f"val: loss {loss:.4f} (perplexity ") and f"over {len(val) - 1:,} targets" in out


@pytest.mark.skipif(shutil.which("timeout") is None or shutil.which("bash") is None, reason="needs bash and timeout")
def test_gpu_checklist_train_stage_stops_and_resumes(tmp_path):
    """benchmarks/gpu_session.sh train, dry-run on the CPU: stopped by its time budget, then resumed."""
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "OUT": str(tmp_path / "logs"), "RUN_DIR": str(run_dir),
           "DATA": str(tmp_path / "text.txt"), "TRAIN_BUDGET_S": "6",
           "TRAIN_ARGS": " ".join(TINY_ARGS[2:] + ["--max-iters", "1000000", "--eval-interval", "50",
                                                   "--sample-chars", "0"])}
    steps = []
    for _ in range(2):
        proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "train"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        steps.append(load_checkpoint(run_dir / "last.npz").step)
    assert 0 < steps[0] < steps[1] < 1000000                  # the second call went on from the first
    log = (tmp_path / "logs" / "train.log").read_text()
    assert log.count("interrupted: saved") == 2 and (tmp_path / "logs" / "train_log.csv").is_file()


def test_example_bpe_resume_and_generate(tmp_path, capsys):
    ex = _example()
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    out_dir = tmp_path / "out"
    args = TINY_ARGS + ["--device", "cpu", "--data", str(tmp_path / "text.txt"), "--out-dir", str(out_dir),
                        "--tokenizer", "bpe", "--vocab-size", "280", "--plot"]
    ex.main(args)
    ck = load_checkpoint(out_dir / "last.npz")
    assert ck.tokenizer["type"] == "bpe" and ck.config["vocab_size"] == 280
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out_dir / "loss.png").stat().st_size > 0

    with pytest.warns(UserWarning, match="max_iters: saved 3, current 6"):
        h = ex.main(args[:1] + ["6"] + args[2:] + ["--resume"])  # --max-iters 6, resumed from step 3
    assert h.start_step == 3 and h.step == 6 and [e["step"] for e in h.evals] == [4, 6]

    spec = importlib.util.spec_from_file_location("generate", REPO / "examples" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    capsys.readouterr()
    gen.main(["--checkpoint", str(out_dir / "best.npz"), "--prompt", "First", "--max-new-tokens", "5", "--seed", "1"])
    assert capsys.readouterr().out.startswith("First")
    prompt = TEXT[:200]                                      # longer than block_size 16: printed whole
    gen.main(["--checkpoint", str(out_dir / "best.npz"), "--prompt", prompt, "--max-new-tokens", "5", "--seed", "1"])
    assert capsys.readouterr().out.startswith(prompt)


def test_example_fine_tunes_a_gpt2_folder(shared_data, tmp_path, capsys):
    """--init-from: a Hugging Face GPT-2 folder (here tiny random weights with GPT-2's real
    tokenizer files) is loaded with its own tokenizer, cropped to --block-size and fine-tuned."""
    import shutil
    gpt2_files = shared_data / "gpt2"
    if not (gpt2_files / "encoder.json").is_file():
        pytest.skip("GPT-2's tokenizer files are not in ../shared/data/gpt2")
    folder = tmp_path / "tiny-gpt2"
    tl.manual_seed(0)
    pretrained = GPT(GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=8))
    pretrained.save_pretrained(folder)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(gpt2_files / name, folder / name)  # a temporary copy for this test only
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    out_dir = tmp_path / "out"
    h = _example().main(["--init-from", str(folder), "--device", "cpu", "--data", str(tmp_path / "text.txt"),
                         "--out-dir", str(out_dir), "--block-size", "16", "--batch-size", "2", "--max-iters", "2",
                         "--eval-interval", "2", "--eval-iters", "1", "--sample-chars", "10", "--no-plot"])
    assert h.step == 2 and all(math.isfinite(e["val_loss"]) for e in h.evals)
    ck = load_checkpoint(out_dir / "last.npz")
    assert ck.config["block_size"] == 16 and ck.config["vocab_size"] == 50257 and ck.config["n_embd"] == 8
    assert ck.tokenizer["type"] == "bpe" and ck.extra["train_config"]["lr"] == 3e-5
    # the fine-tuned weights started from the pretrained ones (cropped positions, same rows)
    np.testing.assert_allclose(ck.model["wpe.weight"], pretrained.wpe.weight.numpy()[:16], atol=1e-3)
    assert "tiny-gpt2 on cpu" in capsys.readouterr().out
    # an --lr below the default stays constant (min_lr follows it) instead of failing
    _example().main(["--init-from", str(folder), "--device", "cpu", "--data", str(tmp_path / "text.txt"),
                     "--out-dir", str(tmp_path / "out2"), "--block-size", "16", "--batch-size", "2",
                     "--max-iters", "1", "--eval-interval", "1", "--eval-iters", "1", "--sample-chars", "0",
                     "--no-plot", "--lr", "1e-5"])
    tc = load_checkpoint(tmp_path / "out2" / "last.npz").extra["train_config"]
    assert tc["lr"] == tc["min_lr"] == 1e-5


def test_crop_block_size_keeps_the_first_positions():
    tl.manual_seed(0)
    model = GPT(TINY)
    before = model.wpe.weight.numpy()
    model.crop_block_size(4)
    assert model.config.block_size == 4 and model.wpe.weight.shape == (4, 16)
    np.testing.assert_array_equal(model.wpe.weight.numpy(), before[:4])
    logits, _ = model(np.zeros((1, 4), dtype=np.int64))
    assert logits.shape == (1, 4, 11)
    with pytest.raises(ValueError, match="longer than block_size 4"):
        model(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="crop_block_size"):
        model.crop_block_size(9)
