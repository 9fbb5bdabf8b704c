"""Numerical gradient checking: analytic gradients against float64 central differences.

Owns `gradcheck(fn, *inputs)`. The check contracts the outputs with a *random* upstream
gradient u, so it compares d(sum(u * fn(x)))/dx; checking through `.sum()` alone lets a wrong
backward pass (a softmax whose backward returns zeros passes, since the sum of a softmax is
constant). On failure it names the input, the worst element and both values.

Leaves out: higher-order gradients (tinylm has none).
Reference: Chainer's `check_backward`, PyTorch's `torch.autograd.gradcheck`.
"""
import numpy as np

from . import backend
from .engine import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError, RuntimeError):  # PyTorch raises a RuntimeError
    """Raised by `gradcheck` when an analytic gradient disagrees with the numerical one."""


def _outputs(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check `fn`'s gradients for every float64 input that requires grad; True or GradcheckError.

    `fn(*inputs)` returns a Tensor or a tuple of Tensors. Every input that requires grad must
    be float64 (float32 central differences are too coarse to judge a backward pass).
    """
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        inputs = tuple(inputs[0])                              # PyTorch's form: gradcheck(fn, (x, y))
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; use float64 inputs")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn(*inputs))
    us = [backend.to_device(rng.standard_normal(o.shape), o.device) for o in outs]

    def objective():
        with no_grad():
            total = 0.0
            for o, u in zip(_outputs(fn(*inputs)), us):
                total += float((o.data * u).sum())
            return total

    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    loss = None
    for o, u in zip(outs, us):
        if o.requires_grad:
            term = (o * Tensor(u, device=o.device)).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()

    for i in checked:
        x = inputs[i]
        analytic = backend.to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        x.data = x.data.copy()  # C-contiguous, same shape (0-d stays 0-d)
        flat = x.data.reshape(-1)  # a view of contiguous data: perturbing it perturbs x
        for j in range(x.numel()):
            orig = float(flat[j])
            flat[j] = orig + eps
            f_plus = objective()
            flat[j] = orig - eps
            f_minus = objective()
            flat[j] = orig
            numeric.reshape(-1)[j] = (f_plus - f_minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            k = np.unravel_index(int(err.argmax()), x.shape)
            raise GradcheckError(
                f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(v) for v in k)}: "
                f"analytic {analytic[k]:.6g} vs numeric {numeric[k]:.6g} "
                f"(max abs diff {np.abs(analytic - numeric).max():.3g}, atol {atol}, rtol {rtol})")
    return True
