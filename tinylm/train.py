"""The training loop the examples use: TrainConfig, train(), estimate_loss(), the loss-curve plot.

Owns one run of AdamW on a GPT over token batches: warmup + cosine learning rate, gradient
clipping, a tqdm bar (loss, lr, tokens/s), an evaluation every `eval_interval` steps (mean
train and val loss over `eval_iters` batches, and val perplexity), checkpoints, a CSV log and a
loss-curve PNG. Files in `out_dir`:

    last.npz   the latest state (model, optimizer, config, tokenizer, step, seed): written at every
               evaluation, at the end, at an early stop and on Ctrl-C; `resume=True` continues from it
    best.npz   the state with the lowest val loss so far (what examples/generate.py should load),
               written before last.npz at an evaluation, so a kill between the two cannot lose it
    log.csv    one row per `log_interval` steps (step, train_loss of that batch, lr, grad_norm,
               tokens_per_s, elapsed) and one row per evaluation (val_loss and val_ppl filled in,
               train_loss the mean over eval batches)
    loss.png   the curves from log.csv, when matplotlib is installed (silently skipped without it)

Steps are counted from 0: step s trains on batch s with lr(s); "the evaluation at step s" and a
checkpoint's `step` mean "after s steps". Determinism: every step first calls
`tl.manual_seed(run_seed * 1_000_003 + step)`, so the batch and the dropout masks depend only on
(run seed, step). The same seed on the same device gives the same losses, and a resumed run,
whose checkpoint holds the step and the seed, continues bit-for-bit. Evaluations draw the same
batches each time (from their own seed) and touch no training state.

Safety: Ctrl-C finishes the current step, saves last.npz and returns (history.stopped is
"interrupted"); a KeyboardInterrupt raised between steps (e.g. by an `on_step` hook) does the
same, and one that cuts an evaluation short (in `on_eval`, or while saving) leaves it to be done
again by the resumed run, so best.npz still gets its model. A NaN/inf loss (or gradient norm, or
val loss) raises FloatingPointError naming the step, and nothing is saved after it: the
checkpoints of the last evaluation stay as they were. A run starts by deleting the temporary files
(.last.npz.XXXXXXXX.tmp) that saves cut short by a kill -9 left in out_dir, and a resume checks the
optimizer and train state it reads (a ValueError naming the file and the field, never a KeyError).

Data parallel (docs/12-distributed.md): started by `python -m tinylm.distributed.run
--nproc-per-node N`, train() runs on N processes with no new argument. `batch_size` is per rank:
every rank draws the same global batch of N * batch_size rows from the step seed and keeps its own
rows, then reseeds per rank (its dropout masks); DistributedDataParallel averages the gradients,
so N ranks of batch b take the steps one process of batch N * b takes. Losses and evaluations are
averaged over the ranks, so every stop (NaN, max_iters, early stop, Ctrl-C) is decided together;
rank 0 alone shows the bar and writes log.csv, loss.png and the checkpoints (the state is the same
on every rank); on resume every rank reads last.npz (a file system the ranks share).

Leaves out: gradient accumulation, mixed precision, learning-rate finders, wandb. Reference: nanoGPT's train.py (get_lr, estimate_loss, the loop, ckpt.pt).
"""
import csv
import math
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field


import numpy as np

from . import backend, optim
from . import distributed as dist
from .engine import no_grad
from .checkpoint import check_config, load_checkpoint, save_checkpoint
from .data import Splits, TokenDataset
from .model import from_table
from .nn.parallel import DistributedDataParallel
from .safetensors import remove_stale_temporaries
from .validate import check_dict, check_int, check_number

SEED_STRIDE = 1_000_003        # step seeds: run_seed * SEED_STRIDE + step
EVAL_STEP = SEED_STRIDE - 1    # evaluations use the seed of a step number no run reaches
LOG_FIELDS = ["step", "train_loss", "val_loss", "val_ppl", "lr", "grad_norm", "tokens_per_s", "elapsed"]


@dataclass
class TrainConfig:
    """How to train (defaults: the cpu-small run). Presets: `TrainConfig.from_preset(name, **overrides)`."""

    max_iters: int = 2000         # optimizer steps in all; the cosine schedule reaches min_lr here
    batch_size: int = 12          # sequences per step (B); each is the model's block_size long (T)
    lr: float = 3e-3              # peak learning rate, reached after warmup
    min_lr: float = 3e-4          # learning rate at the end of the cosine decay (lr / 10)
    warmup_iters: int = 100       # linear warmup steps (capped at max_iters - 1)
    weight_decay: float = 0.1     # AdamW decoupled decay, on matrices and embeddings only
    beta1: float = 0.9            # AdamW beta1
    beta2: float = 0.99           # AdamW beta2 (0.99 for small models and batches, as nanoGPT's char run)
    grad_clip: float = 1.0        # clip the global gradient norm to this; 0 = no clipping
    eval_interval: int = 250      # evaluate (and save last.npz, best.npz) every this many steps
    eval_iters: int = 50          # batches per split in one evaluation
    log_interval: int = 10        # write a log row and refresh the bar's numbers every this many steps
    out_dir: str = "out"          # checkpoints, log.csv and loss.png go here
    seed: int = 1337              # the run's seed: step s is seeded with seed * 1_000_003 + s
    patience: int = 0             # stop after this many evaluations without a better val loss; 0 = never
    plot: bool = True             # draw out_dir/loss.png at each evaluation (needs matplotlib)

    def __post_init__(self):
        for name in ("max_iters", "batch_size", "eval_interval", "eval_iters", "log_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("warmup_iters", "seed", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative int, got {value!r}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr {self.min_lr} is larger than lr {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")

    @classmethod
    def from_preset(cls, name, **overrides):
        """The config of a named preset (see PRESETS), with some fields overridden."""
        return from_table(cls, PRESETS, name, overrides, "training preset")


PRESETS = {
    # name:       sizes, length and lr (the other fields: TrainConfig's defaults; the model: tinylm.model.PRESETS)
    # cpu-small is nanoGPT's CPU run at 3x its lr: measured val loss 1.784 at lr 3e-3, 1.816 at 2e-3, 1.913 at 1e-3
    "cpu-small":  dict(batch_size=12, max_iters=2000, lr=3e-3, min_lr=3e-4, eval_interval=250, eval_iters=50),
    "char-6L":    dict(batch_size=64, max_iters=5000, lr=1e-3, min_lr=1e-4, eval_interval=250, eval_iters=200),
}


@dataclass
class History:
    """What `train` returns: this call's per-step rows, its evaluations, and how it ended."""

    steps: list = field(default_factory=list)   # {"step", "train_loss", "lr", "grad_norm", "tokens_per_s", "elapsed"}
    evals: list = field(default_factory=list)   # {"step", "train_loss", "val_loss", "val_ppl", "lr", "elapsed"}
    start_step: int = 0                         # the step this call began at (> 0 when resumed)
    step: int = 0                               # steps done when it returned
    best_val_loss: float = math.inf             # lowest val loss of the run (resumed runs included)
    stopped: str = ""                           # "max_iters", "early_stop" or "interrupted"

    @property
    def losses(self):
        """The training loss of every step this call ran, in order."""
        return [row["train_loss"] for row in self.steps]


def step_seed(run_seed, step):
    """The seed of one training step: run_seed * 1_000_003 + step."""
    return run_seed * SEED_STRIDE + step


# ---------------------------------------------------------------------------- evaluation
@no_grad()
def estimate_loss(model, data, batch_size, eval_iters, seed=None):
    """{"train": mean loss, "val": mean loss} over `eval_iters` batches of each split, in eval mode.

    In a process group each batch is the global one (world size x batch_size rows), each rank
    evaluating its own rows, and the means are averaged over the ranks.

    With `seed`, the device generators are reseeded first (the same seed, the same batches).
    The model's training mode is restored afterwards.
    """
    if seed is not None:
        backend.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        out = {}
        for split in ("train", "val"):
            total = 0.0
            for _ in range(eval_iters):
                x, y = _local_batch(data, split, batch_size, model.config.block_size)
                _, loss = model(x, y)
                total += loss.item()
            out[split] = total / eval_iters
        train_loss, val_loss = _mean_over_ranks(out["train"], out["val"])
        return {"train": train_loss, "val": val_loss}
    finally:
        model.train(was_training)


@no_grad()
def evaluate(model, dataset, batch_size=64, progress=False):
    """The mean loss per token over a whole dataset (every token a target once), in eval mode.

    Exact where `estimate_loss` samples: the same number every time, for final figures. Each
    token sees as much context as its place in its window gives it, 0 to block_size - 1 tokens,
    evenly spread as in random batches, so the two agree up to `estimate_loss`'s sampling noise.
    progress: a tqdm bar over the batches.
    """
    if not isinstance(dataset, TokenDataset):
        raise TypeError(f"dataset must be a tinylm.data.TokenDataset, got {type(dataset).__name__}")
    dataset = dataset.to(model.device)
    T = model.config.block_size
    batches = dataset.iter_batches(batch_size, T)
    if progress:
        from tqdm.auto import tqdm
        full, rest = divmod(len(dataset) - 1, T)          # full windows, and the targets of a shorter last one
        batches = tqdm(batches, total=-(-full // batch_size) + (rest > 0), unit="batch", desc="evaluate",
                       leave=False)
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for x, y in batches:
            _, loss = model(x, y)
            total += loss.item() * y.numel()
            count += y.numel()
        return total / count
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------- the log and its plot
def _read_log(path):
    """The rows of a log.csv as dicts of floats (empty cells dropped)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _trim_log(path, step, evaluated):
    """Drop the log rows a resumed run writes again: those from `step` on (but `step`'s evaluation if `evaluated`)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows
            if float(r["step"]) < step or (evaluated and r.get("val_loss") and float(r["step"]) == step)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, LOG_FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in LOG_FIELDS} for r in keep)


def _axes():
    """(figure, axes) of a new 7x4 in plot drawn off-screen; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, ax, png_path, ylabel, title=None):
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    return True


def plot_log(log_path, png_path):
    """Draw train (per-step and evaluated) and val loss against step from log.csv; False without matplotlib."""
    drawing = _axes()
    if drawing is None:
        return False
    fig, ax = drawing
    rows = _read_log(log_path)
    steps = [r for r in rows if "val_loss" not in r and "train_loss" in r]
    evals = [r for r in rows if "val_loss" in r]
    if steps:
        ax.plot([r["step"] for r in steps], [r["train_loss"] for r in steps], lw=0.8, alpha=0.4,
                label="train (one batch)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["train_loss"] for r in evals], "o-", ms=3, label="train (eval)")
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=3, label="val (eval)")
    return _save(fig, ax, png_path, "cross-entropy loss (nats/token)")


def plot_runs(runs, png_path, title=None, since_step=0, target=None):
    """Val loss against step for several runs on one plot, e.g. a learning-rate sweep.

    runs: {label: path of a run's log.csv or of its out_dir}; since_step: leave out the
    evaluations before this step (the first ones dwarf the differences at the end); target: a
    val loss to draw as a dashed line. Returns False without matplotlib.
    """
    drawing = _axes()
    if drawing is None:
        return False
    if not runs:
        raise ValueError("plot_runs needs at least one run")
    fig, ax = drawing
    for label, path in runs.items():
        path = os.path.join(path, "log.csv") if os.path.isdir(path) else path
        evals = [r for r in _read_log(path) if "val_loss" in r and r["step"] >= since_step]
        if not evals:
            raise ValueError(f"{path} has no evaluation rows (val_loss) from step {since_step} on")
        line, = ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", ms=3, label=label)
        ax.annotate(f"{evals[-1]['val_loss']:.3f}", (evals[-1]["step"], evals[-1]["val_loss"]),
                    textcoords="offset points", xytext=(4, 0), va="center", fontsize=8, color=line.get_color())
    if target is not None:
        ax.axhline(target, color="0.4", ls="--", lw=1, label=f"target {target:g}")
    return _save(fig, ax, png_path, "val loss (nats/token)", title)


# ---------------------------------------------------------------------------- resuming
def _train_state(extra):
    """(best val loss, bad evals, last eval step, elapsed, saved TrainConfig fields) from a checkpoint's
    `extra`, each checked: ValueError (TypeError for a wrong type) naming the field."""
    check_dict(extra, "extra")
    best = check_number(extra.get("best_val_loss", math.inf), "extra.best_val_loss", finite=False)
    bad_evals = check_int(extra.get("bad_evals", 0), "extra.bad_evals")
    last_eval = check_int(extra.get("last_eval_step", -1), "extra.last_eval_step", -1)
    elapsed0 = check_number(extra.get("elapsed", 0.0), "extra.elapsed", 0.0)
    saved = check_dict(extra.get("train_config", {}), "extra.train_config")
    return best, bad_evals, last_eval, elapsed0, {k: v for k, v in saved.items() if k not in ("out_dir", "plot")}


# ---------------------------------------------------------------------------- Ctrl-C
class _StopOnSigint:
    """While active, the first Ctrl-C only sets `requested` (the loop stops between steps); a second one raises."""

    def __init__(self):
        self.requested, self._previous = False, None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)   # a second Ctrl-C interrupts at once

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():   # signals can only be caught there
            self._previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler
            signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------- data parallel
def _ranks():
    """(rank, world size): (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _join_launched_group(device):
    """Initialize the process group when a launcher started this process as one of N > 1; (rank, world size)."""
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("mpi" if device in ("cpu", "strict") else "nccl")
    return _ranks()


def _local_batch(data, split, B, T):
    """This rank's B rows of the global batch (world size x B rows, the same draw on every rank)."""
    rank, world = _ranks()
    x, y = data.get_batch(split, B * world, T)            # (N*B, T), (N*B, T)
    if world == 1:
        return x, y
    return x[rank * B:(rank + 1) * B], y[rank * B:(rank + 1) * B]   # (B, T), (B, T)


def _mean_over_ranks(*values):
    """The mean of each float over the ranks (the values themselves outside a process group)."""
    rank, world = _ranks()
    if world == 1:
        return values
    buf = np.array(values, dtype=np.float64)
    dist.all_reduce(buf)
    return tuple(float(v) / world for v in buf)


def _any_rank(flag):
    """Whether `flag` is true on any rank (so that every rank stops at the same step)."""
    if _ranks()[1] == 1:
        return bool(flag)
    buf = np.array([1.0 if flag else 0.0])
    dist.all_reduce(buf, op=dist.ReduceOp.MAX)
    return bool(buf[0])


# ---------------------------------------------------------------------------- the loop
def train(model, data, cfg=None, tokenizer=None, resume=False, progress=True, on_step=None, on_eval=None):
    """Train `model` (a GPT) on `data` (tinylm.data.Splits) with AdamW; returns a History.

    tokenizer: saved in the checkpoints (its `to_dict()`), so generation needs nothing else.
    resume: continue from out_dir/last.npz (model, optimizer moments, step, seed and best val
    loss); changed settings in `cfg` (lr, weight_decay, betas, ...) apply from there on, with a warning.
    progress: show the tqdm bar and print each evaluation.
    on_step(row): called after every step with its row (a KeyboardInterrupt from it stops the
    run cleanly); on_eval(row): called after every evaluation, before the checkpoints are saved.
    On N processes both are called on every rank, and a KeyboardInterrupt from either, on any
    rank, stops all ranks together at the next step's check.
    """
    cfg = TrainConfig() if cfg is None else cfg
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(data, tuple) or len(data) != 2 or not all(isinstance(d, TokenDataset) for d in data):
        raise TypeError(f"data must be tinylm.data.Splits(train, val) of TokenDatasets, got {type(data).__name__}")
    device = model.device
    rank, world = _join_launched_group(device)   # data parallel: (0, 1) unless a launcher started N processes
    main = rank == 0                             # rank 0 alone shows progress and writes files
    progress = progress and main
    data = Splits(data[0].to(device), data[1].to(device))
    if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model's vocab_size is "
                         f"{model.config.vocab_size}")
    B, T = cfg.batch_size, model.config.block_size
    for name, split in zip(("train", "val"), data):     # say so before any file is touched
        if len(split) < T + 1:
            raise ValueError(f"the {name} split has {len(split)} tokens, too few for block_size {T} "
                             f"(needs at least {T + 1}): give more text or a smaller block_size")
    os.makedirs(cfg.out_dir, exist_ok=True)
    last_path, best_path = os.path.join(cfg.out_dir, "last.npz"), os.path.join(cfg.out_dir, "best.npz")
    if main:
        remove_stale_temporaries(cfg.out_dir, ["last.npz", "best.npz"])   # left by saves that a kill -9 cut short
    log_path, png_path = os.path.join(cfg.out_dir, "log.csv"), os.path.join(cfg.out_dir, "loss.png")

    opt = optim.AdamW(optim.param_groups(model.named_parameters(), cfg.weight_decay), lr=cfg.lr,
                      betas=(cfg.beta1, cfg.beta2))
    schedule = optim.CosineLR(cfg.lr, min(cfg.warmup_iters, cfg.max_iters - 1), cfg.max_iters, cfg.min_lr)
    run_seed, step, best, bad_evals, last_eval, elapsed0 = cfg.seed, 0, math.inf, 0, -1, 0.0
    if resume:
        ckpt = load_checkpoint(last_path, config=model.config)
        settings = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
        try:
            model.load_state_dict(ckpt.model)
            opt.load_state_dict(ckpt.optimizer)
            best, bad_evals, last_eval, elapsed0, saved_cfg = _train_state(ckpt.extra)
        except (ValueError, TypeError) as e:                      # a damaged or hand-edited file: name it
            raise type(e)(f"checkpoint {last_path}: {e}") from None
        for group, setting in zip(opt.param_groups, settings):   # the moments resume; cfg's settings hold
            group.update(setting)
        run_seed, step = ckpt.seed, ckpt.step
        try:
            check_config(saved_cfg, {k: v for k, v in asdict(cfg).items() if k in saved_cfg})
        except ValueError as e:
            warnings.warn(f"resuming with different training settings, so not bit-for-bit: {e}", stacklevel=2)
        if run_seed != cfg.seed:
            warnings.warn(f"resuming with the checkpoint's seed {run_seed}, not {cfg.seed}", stacklevel=2)
        if ckpt.extra.get("world_size", 1) != world and main:
            warnings.warn(f"resuming a run of {ckpt.extra.get('world_size', 1)} processes on {world}: the global batch "
                          f"changes, so not bit-for-bit", stacklevel=2)
        if main:
            _trim_log(log_path, step, evaluated=last_eval == step)
    history = History(start_step=step, step=step, best_val_loss=best)
    new_log = not (resume and os.path.isfile(log_path))
    log_file = open(log_path if main else os.devnull, "a" if not new_log else "w", newline="", encoding="utf-8")
    log = csv.DictWriter(log_file, LOG_FIELDS)
    if new_log:
        log.writeheader()

    def write_log(row):
        log.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in LOG_FIELDS})
        log_file.flush()

    def save(path, evaluated):
        if not main:
            return
        extra = {"best_val_loss": history.best_val_loss, "bad_evals": bad_evals, "elapsed": elapsed(),
                 "last_eval_step": step if evaluated else last_eval, "train_config": asdict(cfg), "world_size": world}
        save_checkpoint(path, model.state_dict(), opt.state_dict(), model.config,
                        tokenizer.to_dict() if tokenizer is not None else None, step=step, extra=extra, seed=run_seed)

    def last_good():
        if os.path.isfile(last_path):
            return f"the last good checkpoint, {last_path} (step {load_checkpoint(last_path).step}), is kept"
        return "no checkpoint had been saved yet"

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.max_iters, initial=step, unit="step", dynamic_ncols=True,
                   mininterval=0.1 if sys.stderr.isatty() else 5.0)

    def say(msg):
        if bar is not None:
            bar.write(msg)        # above the bar, which stays intact

    t_start = time.perf_counter()

    def elapsed():
        return elapsed0 + time.perf_counter() - t_start   # seconds, over all sessions of the run

    net = DistributedDataParallel(model) if world > 1 else model   # averages the gradients after backward
    model.train()
    clean = True   # False while the optimizer is changing the weights: an interrupt then must not save
    before = None  # (best val loss, bad evals, last eval step) before an evaluation still saving its checkpoints
    try:
        with _StopOnSigint() as sigint:
            while True:
                if _any_rank(sigint.requested):
                    raise KeyboardInterrupt
                # evaluate, log, save: at step 0, every eval_interval steps, and at the end
                if (step % cfg.eval_interval == 0 or step == cfg.max_iters) and step != last_eval:
                    losses = estimate_loss(model, data, B, cfg.eval_iters, seed=step_seed(run_seed, EVAL_STEP))
                    if not math.isfinite(losses["val"]):
                        raise FloatingPointError(f"the val loss is {losses['val']} at step {step}; stopping, "
                                                 f"{last_good()}")
                    before = history.best_val_loss, bad_evals, last_eval   # put back if an interrupt cuts it short
                    improved = losses["val"] < history.best_val_loss
                    history.best_val_loss = min(history.best_val_loss, losses["val"])
                    bad_evals = 0 if improved else bad_evals + 1
                    row = {"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
                           "val_ppl": math.exp(min(losses["val"], 700.0)), "lr": schedule(step), "elapsed": elapsed()}
                    history.evals.append(row)
                    write_log(row)
                    say(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                        f"(ppl {row['val_ppl']:.2f}){' *' if improved else ''}, {row['elapsed']:.0f} s")
                    if on_eval is not None:
                        try:
                            on_eval(row)
                        except KeyboardInterrupt:
                            if world == 1:
                                raise
                            sigint.requested = True   # N ranks: finish this evaluation, stop together after it
                    last_eval = step
                    if improved:              # best first: a kill between the two saves cannot lose it,
                        save(best_path, evaluated=True)   # since the resumed run, from the old last.npz,
                    save(last_path, evaluated=True)       # evaluates this step again
                    before = None
                    if cfg.plot and main:
                        plot_log(log_path, png_path)
                    if cfg.patience and bad_evals >= cfg.patience:
                        say(f"early stop: no better val loss in {bad_evals} evaluations "
                            f"(best {history.best_val_loss:.4f})")
                        history.stopped = "early_stop"
                        break
                if step >= cfg.max_iters:
                    history.stopped = "max_iters"
                    break

                # one training step: seeded from (run seed, step), so a resumed run repeats it exactly
                t0 = time.perf_counter()
                backend.manual_seed(step_seed(run_seed, step))
                x, y = _local_batch(data, "train", B, T)            # (B, T), (B, T): this rank's rows
                if world > 1:
                    backend.manual_seed(step_seed(run_seed, step) * 65536 + rank)   # each rank its own dropout
                _, loss = net(x, y)
                opt.zero_grad()
                loss.backward()
                grad_norm = optim.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
                loss_value, = _mean_over_ranks(loss.item())   # after backward: on a GPU, one wait per step
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"the training loss is {loss_value} at step {step}; stopping, "
                                             f"{last_good()}")
                if grad_norm is not None and not math.isfinite(grad_norm):
                    raise FloatingPointError(f"the gradient norm is {grad_norm} at step {step}; stopping, "
                                             f"{last_good()}")
                lr = schedule.apply(opt, step)
                clean = False
                opt.step()
                step += 1
                clean = True
                dt = time.perf_counter() - t0
                row = {"step": step - 1, "train_loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                       "tokens_per_s": world * B * T / dt, "elapsed": elapsed()}
                history.steps.append(row)
                history.step = step
                if bar is not None:
                    bar.update()
                if (step - 1) % cfg.log_interval == 0:
                    write_log(row)
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}",
                                        tok_s=f"{row['tokens_per_s']:,.0f}", refresh=False)
                if on_step is not None:
                    try:
                        on_step(row)
                    except KeyboardInterrupt:
                        if world == 1:
                            raise
                        sigint.requested = True   # the ranks stop together, at the next step's check
    except KeyboardInterrupt:
        if not clean:
            say(f"interrupted while updating the weights at step {step}; {last_good()}")
            raise
        if before is not None:   # an evaluation cut short (in on_eval, or saving): a resumed run does it again
            history.best_val_loss, bad_evals, last_eval = before
        save(last_path, evaluated=False)
        history.stopped = "interrupted"
        say(f"interrupted: saved {last_path} at step {step}; continue with resume=True (--resume)")
    finally:
        if bar is not None:
            bar.close()
        log_file.close()
    history.step = step
    if cfg.plot and main and history.stopped != "max_iters":
        plot_log(log_path, png_path)
    if world > 1:
        dist.barrier()   # every rank returns once rank 0 has saved: a rank that exits (e.g. 130 after Ctrl-C) ends the job
    return history


__all__ = ["TrainConfig", "PRESETS", "History", "train", "estimate_loss", "evaluate", "step_seed", "plot_log",
           "plot_runs"]
