"""Optimizers: SGD (momentum), Adam, AdamW, RMSprop; gradient clipping; LR schedules (warmup + cosine).

Owns the parameter update. An optimizer holds `param_groups`, a list of dicts with "params"
(a list of Tensors), "lr", "weight_decay" and the algorithm's other settings, as in PyTorch,
plus "initial_lr" (the lr the group was created with, which LR schedules scale from), and
per-parameter `state` (moment buffers and a step count). `step()` updates every parameter
that has a gradient, in place, with whole-array ops on the parameter's own device and in its
own dtype (float32 stays float32: the scalars are Python floats, which never upcast). The only
Python loop is over parameters; the bias corrections are folded into two scalars, so AdamW is
a handful of passes over each parameter:

    p = p (1 - lr wd)                      (AdamW only: decoupled weight decay)
    m = b1 m + (1 - b1) g                  v = b2 v + (1 - b2) g^2
    p -= lr m_hat / (sqrt(v_hat) + eps)    computed as  p -= (lr s / bc1) m / (sqrt(v) + eps s)

with bc1 = 1 - b1^t, bc2 = 1 - b2^t and s = sqrt(bc2) at step t: the same numbers as
m_hat = m / bc1, v_hat = v / bc2, with no pass over the arrays spent on the corrections.

`state_dict()` is plain data: raw arrays plus JSON-able scalars, the per-parameter state as a
list in parameter order, so tinylm/checkpoint.py can store it in an .npz without pickle.
The LR schedule is a pure function of the step (`cosine_lr`). The schedulers (PyTorch's API:
`sched.step()` after `opt.step()`, `get_last_lr()`; also found as `tinylm.optim.lr_scheduler`):
`CosineLR`, and PyTorch's `LambdaLR`, `StepLR`, `MultiStepLR`, `ExponentialLR`,
`CosineAnnealingLR`, `LinearLR`, `OneCycleLR` and `SequentialLR`. Each sets each group's lr from
its initial_lr by PyTorch's closed form (the documented formula, which its recursive updates
follow), so their whole state is the step count, and a resumed run needs only the step to get
its learning rates back.

Leaves out: AMSGrad, centered RMSprop, fused multi-tensor (flat-buffer) kernels, closures in `step()`,
PyTorch's rarer schedulers (ConstantLR, PolynomialLR, CyclicLR, ReduceLROnPlateau, ...: each
but the last is a LambdaLR one-liner), a list of lambdas in LambdaLR, `step(epoch)`, and
`last_epoch=` in scheduler constructors (load_state_dict resumes instead).
Reference: PyTorch's torch.optim docs (SGD, Adam, AdamW, RMSprop; clip_grad_norm_; lr_scheduler),
and nanoGPT's train.py (`get_lr`) and model.py (`configure_optimizers`).
"""
import bisect
import math
import numbers
import sys
import types

from . import backend
from .engine import raw_grad as _raw_grad
from .tensor import Tensor
from .validate import check_optimizer_state


# ---------------------------------------------------------------------------- helpers
def _check(name, value, low=0.0, high=None, high_open=False):
    """A hyperparameter must be a real number in [low, high] (or [low, high)); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < low or (high is not None and (value >= high if high_open else value > high)):
        bound = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")
        raise ValueError(f"invalid {name} {value!r}: must be >= {low}{bound}")
    return value


def _refuse_module(params, where):
    """Passing the model instead of model.parameters() is an easy slip: say so, not 'not iterable'."""
    if callable(getattr(params, "parameters", None)):
        raise TypeError(f"{where}: got a {type(params).__name__} module, not its parameters; "
                        f"pass {where}(model.parameters())")


def _as_params(params, where):
    """A list of Tensors from a Tensor or an iterable of Tensors; TypeError naming anything else."""
    if isinstance(params, Tensor):
        return [params]
    _refuse_module(params, where)
    if isinstance(params, (str, bytes, dict)):
        raise TypeError(f"{where}: params must be an iterable of Tensors, got {type(params).__name__}")
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: params[{i}] is a {type(p).__name__}, not a Tensor")
    return out


def _check_optimizer(optimizer, where):
    """What a schedule drives must be an Optimizer; TypeError naming anything else."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{where}: expected an optimizer such as AdamW(model.parameters()), "
                        f"got {type(optimizer).__name__}")
    return optimizer


def _grad(p):
    """p.grad as an array: a Tensor set by hand (p.grad = tl.ones(2)) counts by its data."""
    return _raw_grad(p.grad)


def param_groups(named_parameters, weight_decay):
    """nanoGPT's two groups: tensors with ndim >= 2 (matmul weights, embeddings) decay; biases and norms don't."""
    items = named_parameters.items() if isinstance(named_parameters, dict) else named_parameters
    params = [p for _, p in items if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------- base class
class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad(), state_dict()/load_state_dict()."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.param_groups = []
        self.state = {}  # Tensor -> dict of arrays and a Python int "step"
        self._scratch = {}  # Tensor -> one work buffer of its shape (not part of the state)
        _refuse_module(params, type(self).__name__)
        params = list(params) if not isinstance(params, Tensor) else [params]
        groups = params if params and all(isinstance(g, dict) for g in params) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)
        if not any(g["params"] for g in self.param_groups):
            raise ValueError(f"{type(self).__name__} got an empty parameter list")

    def add_param_group(self, group):
        """Add a dict with "params" and optional settings (missing ones take the defaults)."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with a 'params' entry, got {group!r:.80}")
        name = type(self).__name__
        group = {**self.defaults, **group, "params": _as_params(group["params"], name)}
        group.setdefault("initial_lr", group["lr"])            # what LR schedules scale from (PyTorch's key)
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {sorted(unknown)} in a parameter group")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if id(p) in seen:
                raise ValueError(f"{name}: a parameter of shape {p.shape} appears in more than one group")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimise floating-point tensors, got dtype {p.dtype}")
            seen.add(id(p))
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group):
        for key in ("lr", "initial_lr", "weight_decay"):
            group[key] = _check(key, group[key])               # a plain float (a 0-d Tensor lr would not do)

    def __repr__(self):
        """The settings of each group, not the parameters (PyTorch's layout)."""
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient (None by default; zeros in place with set_to_none=False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    _grad(p)[...] = 0

    def _buffer(self, p):
        """A reusable work array shaped like p (saves an allocation per parameter per step)."""
        buf = self._scratch.get(p)
        if buf is None or buf.shape != p.data.shape or backend.device_of(buf) != p.device:
            buf = self._scratch[p] = backend.array_module(p.device).empty_like(p.data)
        return buf

    def _params_with_grad(self, group):
        for p in group["params"]:
            g = _grad(p)
            if g is None:
                continue
            if tuple(g.shape) != p.shape or backend.device_of(g) != p.device:
                raise ValueError(f"{type(self).__name__}: gradient of shape {tuple(g.shape)} on "
                                 f"'{backend.device_of(g)}' for a parameter of shape {p.shape} on '{p.device}'")
            yield p, p.data, g.astype(p.dtype, copy=False)

    def step(self):
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            for p, w, g in self._params_with_grad(group):
                state = self.state.setdefault(p, {})
                # the model may have moved (model.to(device)) since the last step: the state follows it
                for key, value in state.items():
                    if key != "step" and backend.device_of(value) != p.device:
                        state[key] = backend.to_device(value, p.device)
                self._update(group, p, w, g, state)
                p._version += 1                                # a graph built on the old values is refused

    def _update(self, group, p, w, g, state):
        raise NotImplementedError

    # ------------------------------------------------------------------ (de)serialisation
    def state_dict(self):
        """{"state": [per-parameter dict of arrays and ints, in parameter order], "param_groups": [settings + param indices]}.

        The arrays are the live buffers (as in PyTorch): save or copy them before stepping again.
        A group's initial_lr is left out: like the defaults, it is how the optimizer was built, so a
        resumed run scales its lrs from the ones it is built with now (and old checkpoints still load).
        """
        flat = [p for g in self.param_groups for p in g["params"]]
        groups, start = [], 0
        for g in self.param_groups:
            settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()
                        if k not in ("params", "initial_lr")}
            groups.append({**settings, "params": list(range(start, start + len(g["params"])))})
            start += len(g["params"])
        return {"state": [dict(self.state.get(p, {})) for p in flat], "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore settings and buffers saved by `state_dict()`; arrays move to each parameter's device."""
        name = type(self).__name__
        check_optimizer_state(state_dict, self)                # a file's state: types and fields, up front
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: saved state has {len(saved_groups)} parameter group(s), "
                             f"this optimizer has {len(self.param_groups)}")
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{name}.load_state_dict: group {i} has {len(sg['params'])} saved parameters, "
                                 f"{len(g['params'])} here")
        flat = [p for g in self.param_groups for p in g["params"]]
        if len(saved_state) != len(flat):
            raise ValueError(f"{name}.load_state_dict: {len(saved_state)} saved parameter states for {len(flat)} parameters")
        new_state = {}
        for i, (p, saved) in enumerate(zip(flat, saved_state)):
            if not saved:
                continue
            st = {}
            for key, value in saved.items():
                if key == "step":                              # the only scalar; every other entry is an array
                    st[key] = int(value)
                    continue
                if tuple(getattr(value, "shape", ())) != p.shape or not hasattr(value, "dtype"):
                    raise ValueError(f"{name}.load_state_dict: state '{key}' of parameter {i} has shape "
                                     f"{tuple(getattr(value, 'shape', ()))}, the parameter has shape {p.shape}")
                arr = backend.to_device(value, p.device)
                st[key] = arr.astype(p.dtype, copy=True)       # own copy: never alias the caller's arrays
            new_state[p] = st
        settings = []
        for i, sg in enumerate(saved_groups):
            unknown = set(sg) - set(self.defaults) - {"params", "initial_lr"}
            if unknown:
                raise ValueError(f"{name}.load_state_dict: group {i} has unknown setting(s) {sorted(unknown)}")
            s = {k: tuple(v) if isinstance(self.defaults[k], tuple) else v for k, v in sg.items()
                 if k not in ("params", "initial_lr")}                # a saved initial_lr: see state_dict
            self._validate({**self.param_groups[i], **s})      # check everything before changing anything
            settings.append(s)
        for g, s in zip(self.param_groups, settings):
            g.update(s)
            self._validate(g)
        self.state = new_state
        self._scratch = {}


# ---------------------------------------------------------------------------- algorithms
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay (PyTorch's SGD)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, group):
        super()._validate(group)
        _check("momentum", group["momentum"])
        _check("dampening", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening 0, "
                             f"got momentum {group['momentum']} and dampening {group['dampening']}")

    def _update(self, group, p, w, g, state):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd:
            g = g + wd * w                                     # L2 penalty in the gradient (out of place)
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()      # first step: the buffer is the gradient
            else:
                buf *= mu
                buf += (1.0 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        state["step"] = state.get("step", 0) + 1
        tmp = self._buffer(p)
        backend.get_array_module(w).multiply(g, lr, out=tmp)
        w -= tmp


class Adam(Optimizer):
    """Adam with bias correction; weight_decay is the L2 kind, added to the gradient (PyTorch's Adam)."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _validate(self, group):
        super()._validate(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_check("beta1", betas[0], 0.0, 1.0, True), _check("beta2", betas[1], 0.0, 1.0, True))
        _check("eps", group["eps"])

    def _update(self, group, p, w, g, state):
        xp = backend.get_array_module(w)
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(w), exp_avg_sq=xp.zeros_like(w))
        state["step"] += 1
        t, m, v, tmp = state["step"], state["exp_avg"], state["exp_avg_sq"], self._buffer(p)
        if wd and self.decoupled:
            w *= 1.0 - lr * wd                                 # AdamW: decay the weights, not the gradient
        elif wd:
            g = g + wd * w                                     # Adam: L2 penalty in the gradient
        m *= b1                                                # m = b1 m + (1 - b1) g
        xp.multiply(g, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2                                                # v = b2 v + (1 - b2) g^2
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # m_hat / (sqrt(v_hat) + eps) = (s / bc1) * m / (sqrt(v) + eps s), s = sqrt(bc2): one pass fewer
        bc1, s = 1.0 - b1 ** t, math.sqrt(1.0 - b2 ** t)
        xp.sqrt(v, out=tmp)
        tmp += eps * s
        xp.divide(m, tmp, out=tmp)
        tmp *= lr * s / bc1
        w -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay, p *= 1 - lr * wd before the Adam step (Loshchilov & Hutter)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running RMS of its recent magnitudes; optional momentum (PyTorch's)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum))

    def _validate(self, group):
        super()._validate(group)
        _check("alpha", group["alpha"], 0.0, 1.0)
        _check("eps", group["eps"])
        _check("momentum", group["momentum"])

    def _update(self, group, p, w, g, state):
        xp = backend.get_array_module(w)
        lr, alpha, eps, wd, mu = (group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum"))
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(w))
            if mu:
                state["momentum_buffer"] = xp.zeros_like(w)
        state["step"] += 1
        if wd:
            g = g + wd * w
        sq, tmp = state["square_avg"], self._buffer(p)
        sq *= alpha                                            # sq = alpha sq + (1 - alpha) g^2
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - alpha
        sq += tmp
        xp.sqrt(sq, out=tmp)
        tmp += eps
        xp.divide(g, tmp, out=tmp)                             # g / (sqrt(sq) + eps)
        if mu:
            buf = state["momentum_buffer"]
            buf *= mu
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
        else:
            tmp *= lr
        w -= tmp


# ---------------------------------------------------------------------------- clipping
def clip_grad_norm_(params, max_norm, eps=1e-6):
    """Scale all gradients together so their global L2 norm is at most max_norm; return the norm before clipping."""
    max_norm = _check("max_norm", max_norm)
    grads = [_grad(p) for p in _as_params(params, "clip_grad_norm_") if p.grad is not None]
    if not grads:
        return 0.0
    devices = {backend.device_of(g) for g in grads}
    if len(devices) > 1:
        raise ValueError(f"clip_grad_norm_: gradients on several devices {sorted(devices)}")
    xp = backend.get_array_module(grads[0])
    # one 0-d sum of squares each, in float32 at least (a float16 sum of squares overflows at a norm of 256)
    wide = [g if g.dtype.itemsize >= 4 else g.astype(backend.DEFAULT_DTYPE) for g in grads]
    sq = [xp.vdot(g.ravel(), g.ravel()) if g.ndim else g * g for g in wide]
    total = float(xp.sqrt(xp.stack(sq).sum()))                # one device -> host sync
    coef = max_norm / (total + eps)
    if coef < 1.0:                                             # inf: gradients zeroed (as PyTorch); nan: left alone
        for g in grads:
            g *= coef
    return total


# ---------------------------------------------------------------------------- LR schedule
def cosine_lr(step, max_lr, warmup, total, min_lr=0.0):
    """Linear warmup to max_lr over `warmup` steps, cosine decay to min_lr at `total`, then min_lr (nanoGPT's get_lr).

    Step 0 gets max_lr / (warmup + 1), step warmup - 1 gets max_lr * warmup / (warmup + 1),
    step warmup gets max_lr, step total and later get min_lr.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"cosine_lr: step must be a non-negative int, got {step!r}")
    if not 0 <= warmup < total:
        raise ValueError(f"cosine_lr: need 0 <= warmup < total, got warmup {warmup} and total {total}")
    if step < warmup:
        return max_lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    ratio = (step - warmup) / (total - warmup)                 # 0 at the peak, 1 at the end
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


class LRScheduler:
    """Base of the schedulers tied to an optimizer (PyTorch's lr_scheduler.LRScheduler).

    Making one sets every group's lr for step 0; `step()`, called after each `optimizer.step()`,
    moves on one step and sets that step's lrs. A subclass gives each group's lr at a step
    (`_lrs`), scaled from the group's "initial_lr". The state is the step count alone, JSON-able.
    """

    def __init__(self, optimizer):
        self.optimizer = _check_optimizer(optimizer, type(self).__name__)
        self.last_epoch = -1                                   # PyTorch's name: step() calls so far
        self.step()                                            # as in PyTorch: step 0's lrs at once

    def _lrs(self, optimizer, step):
        """[the lr of each parameter group of `optimizer` at `step`]."""
        raise NotImplementedError

    def _tied(self):
        if self.optimizer is None:                             # only the stateless CosineLR(max_lr=...) has none
            name = type(self).__name__
            raise RuntimeError(f"this {name} was made without an optimizer: make it with {name}(optimizer, ...) "
                               "to step it, or set the lrs with apply(optimizer, step)")
        return self.optimizer

    def _set_lrs(self, step):
        optimizer = self._tied()
        self._last_lr = self._lrs(optimizer, step)
        for group, lr in zip(optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def step(self):
        """Move on one step and set its lr in every group: call it after `optimizer.step()`."""
        self._set_lrs(self.last_epoch + 1)                     # first, so that an error changes nothing
        self.last_epoch += 1

    def get_last_lr(self):
        """[the lr last set in each group]."""
        self._tied()
        return list(self._last_lr)

    def state_dict(self):
        """{"last_epoch": steps so far}: the lrs are a function of the step, so that is all a resume needs."""
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict):
        """Continue from a saved `state_dict()`: the step count comes back and that step's lrs are set."""
        last = state_dict.get("last_epoch") if isinstance(state_dict, dict) else None
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected {{'last_epoch': int >= 0}}, "
                             f"got {state_dict!r:.80}")
        self.last_epoch = last
        self._set_lrs(last)


class LambdaLR(LRScheduler):
    """Each group's lr is its initial lr times lr_lambda(step) (PyTorch's LambdaLR).

    E.g. 100 steps of warmup, then constant: `LambdaLR(opt, lambda step: min(1.0, (step + 1) / 100))`.
    The function is code, not state: `state_dict()` holds the step count only.
    """

    def __init__(self, optimizer, lr_lambda):
        if not callable(lr_lambda):
            raise TypeError(f"LambdaLR: lr_lambda must be a function of the step, got {type(lr_lambda).__name__}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def _lrs(self, optimizer, step):
        factor = _check(f"lr_lambda({step})", self.lr_lambda(step))
        return [group["initial_lr"] * factor for group in optimizer.param_groups]


class CosineLR(LRScheduler):
    """Linear warmup, then cosine decay to min_lr (`cosine_lr`, nanoGPT's get_lr), as a scheduler.

    `CosineLR(opt, warmup, total, min_lr)` peaks at the optimizer's lr (the lr= it was built with,
    or max_lr=); `step()` after each optimizer step moves on. A group created with its own lr keeps
    its ratio to the optimizer's lr at every step (a tenth of the lr stays a tenth).
    Made without an optimizer, `CosineLR(max_lr=..., warmup=..., total=..., min_lr=...)` is the
    stateless form: `sched(step)` is the lr at a step and `sched.apply(opt, step)` sets it, so a
    resumed run needs only the step (tinylm/train.py works this way).
    """

    def __init__(self, optimizer=None, warmup=0, total=None, min_lr=0.0, *, max_lr=None):
        if isinstance(optimizer, numbers.Real) and not isinstance(optimizer, bool) and max_lr is None:
            optimizer, max_lr = None, optimizer                # the stateless form, CosineLR(max_lr, warmup, total)
        if optimizer is None and max_lr is None:
            raise TypeError("CosineLR needs an optimizer, CosineLR(optimizer, warmup, total, min_lr), or max_lr=")
        if total is None:
            raise TypeError("CosineLR needs total, the step at which the lr reaches min_lr")
        if max_lr is None:
            max_lr = _check_optimizer(optimizer, "CosineLR").defaults["lr"]
        cosine_lr(0, max_lr, warmup, total, min_lr)            # validate now, not at the first step
        self.max_lr, self.warmup, self.total, self.min_lr = max_lr, warmup, total, min_lr
        if optimizer is None:
            self.optimizer, self.last_epoch = None, -1
        else:
            super().__init__(optimizer)

    def __call__(self, step):
        """The learning rate at `step` (that of a group at the optimizer's lr)."""
        return cosine_lr(step, self.max_lr, self.warmup, self.total, self.min_lr)

    def _lrs(self, optimizer, step):
        # relative to the largest initial lr among the groups (the optimizer's lr when no group sets
        # its own): a group at it gets cosine_lr's value bit for bit (x * 1.0 == x), a group at a
        # tenth of it a tenth; all at 0 gives no ratio, and every group gets the schedule's lr
        lr, base = self(step), max(group["initial_lr"] for group in optimizer.param_groups)
        return [lr * (group["initial_lr"] / base) if base else lr for group in optimizer.param_groups]

    def apply(self, optimizer, step):
        """Set each group's lr for `step` in proportion to its initial lr; return the schedule's lr at `step`.

        Stateless: it neither reads nor moves this scheduler's own step count.
        """
        _check_optimizer(optimizer, "CosineLR.apply")
        for group, lr in zip(optimizer.param_groups, self._lrs(optimizer, step)):
            group["lr"] = lr
        return self(step)


def _count(name, value, where, low=1):
    """An int >= low (a step count); else TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{where}: {name} must be >= {low}, got {value}")
    return int(value)


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (step // step_size): decay by gamma every step_size steps (PyTorch's StepLR)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _count("step_size", step_size, "StepLR")
        self.gamma = _check("gamma", gamma)
        super().__init__(optimizer)

    def _lrs(self, optimizer, step):
        return [g["initial_lr"] * self.gamma ** (step // self.step_size) for g in optimizer.param_groups]


class MultiStepLR(LRScheduler):
    """lr = initial_lr * gamma ** (number of milestones <= step) (PyTorch's MultiStepLR).

    A milestone given twice decays twice there, as in PyTorch (which counts them).
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"MultiStepLR: milestones must be a list of steps, got {milestones!r}")
        self.milestones = sorted(_count("a milestone", m, "MultiStepLR", 0) for m in milestones)
        self.gamma = _check("gamma", gamma)
        super().__init__(optimizer)

    def _lrs(self, optimizer, step):
        factor = self.gamma ** bisect.bisect_right(self.milestones, step)
        return [g["initial_lr"] * factor for g in optimizer.param_groups]


class ExponentialLR(LRScheduler):
    """lr = initial_lr * gamma ** step (PyTorch's ExponentialLR)."""

    def __init__(self, optimizer, gamma):
        self.gamma = _check("gamma", gamma)
        super().__init__(optimizer)

    def _lrs(self, optimizer, step):
        return [g["initial_lr"] * self.gamma ** step for g in optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) (1 + cos(pi step / T_max)) / 2 (PyTorch's CosineAnnealingLR).

    No warmup and no restarts; past T_max the cosine goes on, back up towards initial_lr at
    2 T_max, as PyTorch's does (keep stepping within T_max, or use CosineLR, which stays at min_lr).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _count("T_max", T_max, "CosineAnnealingLR")
        self.eta_min = _check("eta_min", eta_min)
        super().__init__(optimizer)

    def _lrs(self, optimizer, step):
        cos = (1.0 + math.cos(math.pi * step / self.T_max)) / 2
        return [self.eta_min + (g["initial_lr"] - self.eta_min) * cos for g in optimizer.param_groups]


class LinearLR(LRScheduler):
    """lr = initial_lr * factor, the factor going linearly from start_factor to end_factor over
    total_iters steps and staying there (PyTorch's LinearLR; a linear warmup by default)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        if not isinstance(start_factor, numbers.Real) or not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        self.start_factor = float(start_factor)
        self.end_factor = _check("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _count("total_iters", total_iters, "LinearLR")
        super().__init__(optimizer)

    def _lrs(self, optimizer, step):
        done = min(step, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [g["initial_lr"] * factor for g in optimizer.param_groups]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (PyTorch's OneCycleLR): up from max_lr / div_factor to max_lr over the first
    pct_start of total_steps, then down to that / final_div_factor; three_phase=True comes back
    down to the start before the final descent. anneal_strategy "cos" or "linear".

    With cycle_momentum (the default) the momentum (SGD, RMSprop) or beta1 (Adam, AdamW) moves the
    other way, between max_momentum and base_momentum. Stepping past total_steps is a ValueError,
    as in PyTorch. The lrs come from max_lr, not from the optimizer's lr; as in PyTorch, each group's
    initial_lr becomes max_lr / div_factor (what a scheduler beside it in a SequentialLR scales from).
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        where = "OneCycleLR"
        groups = _check_optimizer(optimizer, where).param_groups
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{where}: give total_steps, or both epochs and steps_per_epoch")
            total_steps = _count("epochs", epochs, where) * _count("steps_per_epoch", steps_per_epoch, where)
        self.total_steps = _count("total_steps", total_steps, where)
        pct_start = _check("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{where}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"{where}: {len(max_lrs)} values of max_lr for {len(groups)} parameter groups")
        max_lrs = [_check("max_lr", lr) for lr in max_lrs]
        div, final_div = _check("div_factor", div_factor), _check("final_div_factor", final_div_factor)
        if not div or not final_div:
            raise ValueError(f"{where}: div_factor and final_div_factor must be > 0, got {div} and {final_div}")
        # per group: (start, peak, end) of the lr; momentum goes max -> base -> max
        self._lr_points = [(lr / div, lr, lr / div / final_div) for lr in max_lrs]
        for group, points in zip(groups, self._lr_points):
            group["initial_lr"] = points[0]                     # as PyTorch: what other schedulers now scale from
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{where}: {type(optimizer).__name__} has no momentum or beta1 to cycle; "
                                 "pass cycle_momentum=False")
            self.base_momentum = _check("base_momentum", base_momentum, 0.0, 1.0)
            self.max_momentum = _check("max_momentum", max_momentum, 0.0, 1.0)
        # (end step of the phase, lr from -> to as indices into (start, peak, end), momentum from -> to)
        up = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._phases = [(up, 0, 1, "max", "base"), (2 * up, 1, 0, "base", "max"),
                            (self.total_steps - 1, 0, 2, "max", "max")]
        else:
            self._phases = [(up, 0, 1, "max", "base"), (self.total_steps - 1, 1, 2, "base", "max")]
        super().__init__(optimizer)

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _phase(self, step):
        """(phase, fraction of it done) at `step`; a ValueError past total_steps."""
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; total_steps is {self.total_steps}")
        start = 0.0
        for i, phase in enumerate(self._phases):
            if step <= phase[0] or i == len(self._phases) - 1:
                return phase, (step - start) / (phase[0] - start)
            start = phase[0]

    def _lrs(self, optimizer, step):
        (_, a, b, _, _), pct = self._phase(step)
        return [self._anneal(points[a], points[b], pct) for points in self._lr_points]

    def _set_lrs(self, step):
        super()._set_lrs(step)
        if self.cycle_momentum:
            (_, _, _, a, b), pct = self._phase(step)
            m = self._anneal(getattr(self, a + "_momentum"), getattr(self, b + "_momentum"), pct)
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (m, *group["betas"][1:])
                else:
                    group["momentum"] = m


class SequentialLR(LRScheduler):
    """Schedulers one after another (PyTorch's SequentialLR): schedulers[i] runs from milestones[i-1]
    on, each starting again from its own step 0 there. E.g. a linear warmup, then a cosine:
    `SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=100), CosineAnnealingLR(opt, 900)], [100])`.
    """

    def __init__(self, optimizer, schedulers, milestones):
        where = "SequentialLR"
        _check_optimizer(optimizer, where)
        schedulers, milestones = list(schedulers), [_count("a milestone", m, where, 0) for m in milestones]
        if not schedulers:
            raise ValueError(f"{where}: needs at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or s.optimizer is not optimizer:
                raise ValueError(f"{where}: schedulers[{i}] ({type(s).__name__}) is not a scheduler of this optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{where}: {len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                             f"got {len(milestones)}")
        if milestones != sorted(milestones):
            raise ValueError(f"{where}: milestones must be in increasing order, got {milestones}")
        self._schedulers, self._milestones = schedulers, milestones
        super().__init__(optimizer)

    def _active(self, step):
        """(the scheduler in charge at `step`, its own step)."""
        i = bisect.bisect_right(self._milestones, step)
        return self._schedulers[i], step - (self._milestones[i - 1] if i else 0)

    def _lrs(self, optimizer, step):
        scheduler, local = self._active(step)
        return scheduler._lrs(optimizer, local)

    def _set_lrs(self, step):
        self._tied()
        scheduler, local = self._active(step)
        scheduler._set_lrs(local)                              # its lrs (and OneCycleLR's momentum) at its own step
        scheduler.last_epoch, self._last_lr = local, list(scheduler._last_lr)   # its get_last_lr() agrees


# PyTorch keeps its schedulers in torch.optim.lr_scheduler; the same path works here, both as
# tl.optim.lr_scheduler.LambdaLR and as `from tinylm.optim.lr_scheduler import LambdaLR`.
lr_scheduler = types.ModuleType(f"{__name__}.lr_scheduler", "The LR schedulers of tinylm.optim, under PyTorch's path.")
_SCHEDULERS = ["LRScheduler", "LambdaLR", "CosineLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
               "LinearLR", "OneCycleLR", "SequentialLR"]
for _name in _SCHEDULERS:
    setattr(lr_scheduler, _name, globals()[_name])
lr_scheduler.__all__ = list(_SCHEDULERS)
del _name
sys.modules[lr_scheduler.__name__] = lr_scheduler              # what the `from ... import` form looks up


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "param_groups", "clip_grad_norm_",
           "cosine_lr", *_SCHEDULERS, "lr_scheduler"]
