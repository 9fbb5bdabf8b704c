"""Chapter 2 exercises, solved.

1. Write `Exp` and `Sigmoid` as tinylm Functions (forward and backward on raw arrays, by the
   `xp` rule) and check both with `tl.gradcheck` in float64.
2. Give the chapter's mini engine a `Tanh` op and check d/dx of tanh(x * x + x) against tinylm.
3. Show that the mini engine needs accumulation: with `x.grad = g` instead of adding, the
   diamond x * x + x gets a wrong gradient.
"""
import numpy as np

import tinylm as tl


class Exp(tl.Function):
    def forward(self, x):
        self.y = tl.get_array_module(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y                      # d e^x / dx = e^x: reuse the output


class Sigmoid(tl.Function):
    def forward(self, x):
        xp = tl.get_array_module(x)
        self.y = 0.5 * (1 + xp.tanh(0.5 * x))  # = 1 / (1 + e^-x), with no overflow for large -x
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)       # sigma' = sigma (1 - sigma)


# ---- the chapter's mini engine, with one more op (Tanh) and a switch to break accumulation
class Tensor:
    def __init__(self, data, fn=None):
        self.data, self.grad, self.fn = np.asarray(data, dtype=np.float64), None, fn

    def __add__(self, other):
        return Add.apply(self, other)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def tanh(self):
        return Tanh.apply(self)

    def backward(self, accumulate=True):
        order, visited = [], set()

        def visit(t):
            if id(t) not in visited:
                visited.add(id(t))
                for x in (t.fn.inputs if t.fn else ()):
                    visit(x)
                order.append(t)

        visit(self)
        self.grad = np.ones_like(self.data)
        for t in reversed(order):
            if t.fn is None:
                continue
            for x, g in zip(t.fn.inputs, t.fn.backward(t.grad)):
                x.grad = g if (x.grad is None or not accumulate) else x.grad + g


class Function:
    @classmethod
    def apply(cls, *inputs):
        fn = cls()
        fn.inputs = inputs
        return Tensor(fn.forward(*(t.data for t in inputs)), fn)


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.a


class Tanh(Function):
    def forward(self, a):
        self.y = np.tanh(a)
        return self.y

    def backward(self, g):
        return (g * (1 - self.y ** 2),)        # a tuple: one gradient per input


def check():
    tl.manual_seed(0)
    x = tl.randn(3, 4, dtype=tl.float64, requires_grad=True)
    assert tl.gradcheck(lambda v: Exp.apply(v), x)
    assert tl.gradcheck(lambda v: Sigmoid.apply(v), x)
    assert np.allclose(Sigmoid.apply(x).numpy(), 1 / (1 + np.exp(-x.numpy())))
    big = tl.tensor([-800.0, 0.0, 800.0], dtype=tl.float64)
    assert Sigmoid.apply(big).tolist() == [0.0, 0.5, 1.0]

    values = np.array([-1.5, 0.3, 2.0])
    m = Tensor(values)
    (m * m + m).tanh().backward()
    t = tl.tensor(values, dtype=tl.float64, requires_grad=True)
    (t * t + t).tanh().sum().backward()
    assert np.allclose(m.grad, t.grad)

    d = Tensor(values)
    (d * d + d).backward()
    assert np.allclose(d.grad, 2 * values + 1)   # the diamond: x reaches the output three ways
    d.grad = None
    (d * d + d).backward(accumulate=False)
    assert not np.allclose(d.grad, 2 * values + 1)


if __name__ == "__main__":
    check()
    print("ch02_autograd: all checks passed")
