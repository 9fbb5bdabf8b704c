"""Fused CuPy kernels for the ops a training step spends its launches on (opt-in, unmeasured on a GPU).

Owns: the CUDA C++ source of the fused kernels (`SOURCE`), the Python glue that launches them
for the core ops, and the switch `use_fused_kernels(on)`. Covered: GELU (tanh form, GPT-2's, and
the exact erf form), layer-norm forward and backward, softmax (the op and attention's masked
softmax, with its dropout), cross-entropy forward and backward, and the Adam/AdamW update (one
launch per parameter instead of about ten).

How it plugs in: the core never imports this module and holds no line for it (its budget is
3,000 lines). `use_fused_kernels(True)` wraps the forward and backward of the core's fused ops
and Adam's update, from outside, as compat.py attaches Tensor methods (the table `_ROUTES`, the
one place the switch lives); `use_fused_kernels(False)` puts the generic methods back, and
`TINYLM_FUSED=1` in the environment turns the kernels on when tinylm is imported. They serve
float32 CuPy arrays only; every other call takes the generic array code, the reference.

Every kernel is a plain CUDA C++ function in `SOURCE`, compiled by CuPy as one `RawModule`
with the options in `OPTIONS`. Nothing in it needs a GPU to be checked: tests/test_cuda_kernels.py
compiles `SOURCE` with NVRTC for sm_80 and sm_90 and runs every kernel on the CPU (g++ and
threads standing in for the GPU's, tests/cuda_harness/) against the generic NumPy path.
The launcher is a parameter for that reason: `use_fused_kernels(True, launcher=..., array_type=...)`
runs the same glue on another array type.

Leaves out: float16/bfloat16 kernels, fused attention matmuls (flash attention), CUDA graphs,
and multi-tensor (flat-buffer) Adam. Reference: CuPy's RawModule docs; the formulas are the
generic ones in tinylm/ops.py and tinylm/optim.py, written once more in C++.
"""
import math
import os
import re
import warnings

import numpy as np

from . import backend, ops, optim

# ---------------------------------------------------------------------------- the CUDA source
_K = math.sqrt(2.0 / math.pi)


def _f(value):
    """A float32 constant as a C++ literal that parses back to the same float32."""
    return f"{float(np.float32(value))!r}f"


SOURCE = r"""
// tinylm fused kernels. Grid-stride loops for elementwise kernels; one block per row for row
// kernels (blockDim.x a power of two <= 256, reductions through shared memory, no atomics, so
// every result is the same run to run).
#define TL_MAXT 256

__device__ __forceinline__ float tl_max(float a, float b) {
    return (a > b || a != a) ? a : b;           // NaN wins, as numpy.max
}

__device__ float tl_block_sum(float v, float* buf) {
    unsigned t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    float r = buf[0];
    __syncthreads();                            // buf is reused by the next reduction
    return r;
}

__device__ float tl_block_max(float v, float* buf) {
    unsigned t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] = tl_max(buf[t], buf[t + s]);
        __syncthreads();
    }
    float r = buf[0];
    __syncthreads();
    return r;
}

#define TL_FOR_EACH(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// GELU, tanh form as ops.Gelu: y = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
extern "C" __global__ void gelu_tanh_fwd(const float* x, float* y, long long n) {
    TL_FOR_EACH(i, n) {
        float v = x[i];
        float d = v * v;
        d = d * GELU_A;
        d = d - GELU_B;
        d = d * v;                              // -2u
        d = expf(fminf(d, 88.0f)) + 1.0f;       // 1 / sigmoid(2u)
        y[i] = v / d;
    }
}

extern "C" __global__ void gelu_tanh_bwd(const float* x, const float* g, float* gx, long long n) {
    TL_FOR_EACH(i, n) {
        float v = x[i];
        float d = v * v;
        d = d * GELU_A;
        d = d - GELU_B;
        d = d * v;
        d = expf(fminf(d, 88.0f)) + 1.0f;
        float y = v / d;
        float s = 1.0f / d;                     // sigmoid(2u)
        float a = fminf(v * v, 400.0f);
        a = a * GELU_C;
        a = a + GELU_D;
        a = a * y;
        a = a * (1.0f - s);
        a = a + s;
        gx[i] = a * g[i];
    }
}

// GELU, exact form: y = 0.5 x (1 + erf(x / sqrt 2)); dy/dx = Phi(x) + x phi(x)
extern "C" __global__ void gelu_erf_fwd(const float* x, float* y, long long n) {
    TL_FOR_EACH(i, n) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + erff(v * RSQRT2));
    }
}

extern "C" __global__ void gelu_erf_bwd(const float* x, const float* g, float* gx, long long n) {
    TL_FOR_EACH(i, n) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * RSQRT2));
        float pdf = RSQRT2PI * expf(-0.5f * v * v);
        gx[i] = g[i] * (cdf + v * pdf);
    }
}

// layer-norm over rows of C: y = (x - mean) * rstd * w + b; keeps mean and rstd (one float per row)
extern "C" __global__ void layer_norm_fwd(const float* x, const float* w, const float* b, float* y,
                                          float* mean, float* rstd, int C, float eps) {
    __shared__ float buf[TL_MAXT];
    const float* xr = x + (long long)blockIdx.x * C;
    float* yr = y + (long long)blockIdx.x * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
    float mu = tl_block_sum(s, buf) * (1.0f / C);
    float q = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) { float d = xr[c] - mu; q += d * d; }
    float var = tl_block_sum(q, buf) * (1.0f / C) + eps;
    float r = 1.0f / sqrtf(var);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float h = (xr[c] - mu) * r;
        if (w) h = h * w[c];
        if (b) h = h + b[c];
        yr[c] = h;
    }
    if (threadIdx.x == 0) { mean[blockIdx.x] = mu; rstd[blockIdx.x] = r; }
}

// dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)), gh = g * w
extern "C" __global__ void layer_norm_bwd(const float* x, const float* g, const float* w,
                                          const float* mean, const float* rstd, float* gx, int C) {
    __shared__ float buf[TL_MAXT];
    long long off = (long long)blockIdx.x * C;
    float mu = mean[blockIdx.x], r = rstd[blockIdx.x];
    float sa = 0.0f, sb = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float gh = w ? g[off + c] * w[c] : g[off + c];
        sa += gh;
        sb += gh * ((x[off + c] - mu) * r);
    }
    float a = tl_block_sum(sa, buf) * (1.0f / C);
    float bb = tl_block_sum(sb, buf) * (1.0f / C);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float gh = w ? g[off + c] * w[c] : g[off + c];
        float h = (x[off + c] - mu) * r;
        gx[off + c] = (gh - (h * bb + a)) * r;
    }
}

// partial sums over chunks of rows for the weight and bias gradients: pw[j, c] = sum g * xhat
extern "C" __global__ void layer_norm_bwd_params(const float* x, const float* g, const float* mean,
                                                 const float* rstd, float* pw, float* pb,
                                                 long long N, int C, int rows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    long long r0 = (long long)blockIdx.y * rows, r1 = r0 + rows < N ? r0 + rows : N;
    float sw = 0.0f, sb = 0.0f;
    for (long long i = r0; i < r1; i++) {
        float gi = g[i * C + c];
        sw += gi * ((x[i * C + c] - mean[i]) * rstd[i]);
        sb += gi;
    }
    pw[(long long)blockIdx.y * C + c] = sw;
    pb[(long long)blockIdx.y * C + c] = sb;
}

// softmax over rows of C, in place allowed (y == x); an additive mask of mask_rows rows repeats
// over the row index; with empty_zero a row that is -inf everywhere gives zeros (attention's rule)
extern "C" __global__ void softmax_fwd(const float* x, const float* mask, float* y, int C,
                                       int mask_rows, int empty_zero) {
    __shared__ float buf[TL_MAXT];
    long long off = (long long)blockIdx.x * C;
    const float* mr = mask ? mask + (long long)(blockIdx.x % mask_rows) * C : 0;
    float m = -__int_as_float(0x7f800000);
    for (int c = threadIdx.x; c < C; c += blockDim.x) m = tl_max(m, mr ? x[off + c] + mr[c] : x[off + c]);
    m = tl_block_max(m, buf);
    if (empty_zero && m == -__int_as_float(0x7f800000)) m = 0.0f;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float e = expf((mr ? x[off + c] + mr[c] : x[off + c]) - m);
        y[off + c] = e;
        s += e;
    }
    s = tl_block_sum(s, buf);
    if (empty_zero && s == 0.0f) s = 1.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) y[off + c] = y[off + c] / s;
}

// gx = y * (g' - sum(g' * y)), g' = g * drop (drop may be null); in place allowed (gx == g)
extern "C" __global__ void softmax_bwd(const float* y, const float* g, const float* drop, float* gx, int C) {
    __shared__ float buf[TL_MAXT];
    long long off = (long long)blockIdx.x * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float gi = drop ? g[off + c] * drop[off + c] : g[off + c];
        s += gi * y[off + c];
    }
    s = tl_block_sum(s, buf);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float gi = drop ? g[off + c] * drop[off + c] : g[off + c];
        float t = gi * y[off + c];
        gx[off + c] = t - y[off + c] * s;
    }
}

// inverted dropout from uniform draws u: drop = (u >= p) / (1 - p), written over u; used = att * drop
extern "C" __global__ void dropout_mask(const float* att, float* u, float* used, float p, float scale, long long n) {
    TL_FOR_EACH(i, n) {
        float d = u[i] >= p ? scale : 0.0f;
        u[i] = d;
        used[i] = att[i] * d;
    }
}

// cross-entropy rows: p = softmax(logits), nll = (log sum exp(z) - z[t]) * valid, z = logits - max;
// flag = 0 for an ignored row, 1 for a counted one, 2 for a target outside [0, V)
extern "C" __global__ void cross_entropy_fwd(const float* logits, const long long* targets, long long ignore_index,
                                             float* p, float* nll, int* flag, int V) {
    __shared__ float buf[TL_MAXT];
    long long off = (long long)blockIdx.x * V;
    long long t = targets[blockIdx.x];
    int valid = t != ignore_index;
    long long safe = valid ? t : 0;
    int bad = safe < 0 || safe >= V;
    float m = -__int_as_float(0x7f800000);
    for (int c = threadIdx.x; c < V; c += blockDim.x) m = tl_max(m, logits[off + c]);
    m = tl_block_max(m, buf);
    float s = 0.0f;
    for (int c = threadIdx.x; c < V; c += blockDim.x) {
        float e = expf(logits[off + c] - m);
        p[off + c] = e;
        s += e;
    }
    s = tl_block_sum(s, buf);
    for (int c = threadIdx.x; c < V; c += blockDim.x) p[off + c] = p[off + c] / s;
    if (threadIdx.x == 0) {
        float zt = bad ? 0.0f : logits[off + safe] - m;
        nll[blockIdx.x] = valid ? logf(s) - zt : 0.0f;
        flag[blockIdx.x] = bad ? 2 : valid;
    }
}

// gx = (p - onehot(target)) * g[row * g_stride] / denom on counted rows, 0 on ignored rows; gx may be p
extern "C" __global__ void cross_entropy_bwd(const float* p, const long long* targets, const int* flag,
                                             const float* g, long long g_stride, float denom, float* gx,
                                             int V, long long n) {
    TL_FOR_EACH(i, n) {
        long long row = i / V;
        int c = (int)(i - row * V);
        float scale = flag[row] == 1 ? g[row * g_stride] / denom : 0.0f;
        float v = p[i];
        if (flag[row] == 1 && targets[row] == c) v = v - 1.0f;
        gx[i] = v * scale;
    }
}

// one Adam/AdamW step as optim.Adam._update, in place on w, m, v:
// w *= decay; g += l2 w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= step * m / (sqrt(v) + eps_s)
extern "C" __global__ void adam_step(float* w, const float* g, float* m, float* v, float decay, float l2,
                                     float b1, float one_b1, float b2, float one_b2, float eps_s, float step,
                                     long long n) {
    TL_FOR_EACH(i, n) {
        float wi = w[i] * decay;
        float gi = l2 != 0.0f ? g[i] + l2 * wi : g[i];
        float mi = m[i] * b1 + gi * one_b1;
        float vi = v[i] * b2 + (gi * gi) * one_b2;
        m[i] = mi;
        v[i] = vi;
        float t = mi / (sqrtf(vi) + eps_s);
        w[i] = wi - t * step;
    }
}
"""
_CONSTANTS = {
    "GELU_A": _f(-2.0 * _K * 0.044715), "GELU_B": _f(2.0 * _K),
    "GELU_C": _f(6.0 * _K * 0.044715), "GELU_D": _f(2.0 * _K),
    "RSQRT2": _f(1.0 / math.sqrt(2.0)), "RSQRT2PI": _f(1.0 / math.sqrt(2.0 * math.pi)),
}
SOURCE = re.sub(r"\b(" + "|".join(_CONSTANTS) + r")\b", lambda m: _CONSTANTS[m.group(1)], SOURCE)

KERNELS = ("gelu_tanh_fwd", "gelu_tanh_bwd", "gelu_erf_fwd", "gelu_erf_bwd", "layer_norm_fwd",
           "layer_norm_bwd", "layer_norm_bwd_params", "softmax_fwd", "softmax_bwd", "dropout_mask",
           "cross_entropy_fwd", "cross_entropy_bwd", "adam_step")
OPTIONS = ()                         # CuPy adds its include paths, --std=c++17, -ftz=true and -arch=sm_XX

_BLOCK = 256                        # threads per block, elementwise kernels
_MAX_BLOCKS = 65536                 # grid-stride loops cover the rest
_PARAM_ROWS = 64                    # rows per chunk in layer_norm_bwd_params


def _rows_block(c):
    """Threads per block for a row kernel: a power of two, 32..256, about the row length."""
    return int(min(256, max(32, 1 << (int(c) - 1).bit_length())))


def _grid(n):
    return (int(min(_MAX_BLOCKS, max(1, -(-n // _BLOCK)))),)


# ---------------------------------------------------------------------------- launchers
class CupyLauncher:
    """Launches a kernel of SOURCE on the current CUDA device (compiled once per device by CuPy)."""

    def __init__(self):
        import cupy
        self._cupy, self._modules = cupy, {}

    def __call__(self, name, grid, block, args):
        device = self._cupy.cuda.runtime.getDevice()
        module = self._modules.get(device)
        if module is None:
            module = self._modules[device] = self._cupy.RawModule(code=SOURCE, options=OPTIONS)
        module.get_function(name)(grid, block, args)


def _i64(v):
    return np.int64(v)


def _i32(v):
    return np.int32(v)


def _f32(v):
    return np.float32(v)


# ---------------------------------------------------------------------------- the fused ops
class _Fused:
    """The fused ops of one launcher and array type: what `_ROUTES` sends the core's calls to."""

    def __init__(self, launch, array_type):
        self.launch, self.array_type = launch, array_type

    # ----------------------------------------------------------- GELU (ops.Gelu)
    def _elementwise(self, name, out_like, *arrays):
        xp = backend.get_array_module(out_like)
        out = xp.empty(out_like.shape, dtype=np.float32)
        n = out.size
        if n:
            self.launch(name, _grid(n), (_BLOCK,), (*arrays, out, _i64(n)))
        return out

    def gelu_forward(self, fn, x):
        xp = backend.get_array_module(x)
        fn._fused, fn.x = self, xp.ascontiguousarray(x)
        return self._elementwise("gelu_tanh_fwd", fn.x, fn.x)

    def gelu_backward(self, fn, g):
        xp = backend.get_array_module(g)
        return self._elementwise("gelu_tanh_bwd", fn.x, fn.x, xp.ascontiguousarray(g, dtype=np.float32))

    def gelu_erf(self, x):
        """The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), of a float32 array (no op uses it yet)."""
        return self._elementwise("gelu_erf_fwd", x, backend.get_array_module(x).ascontiguousarray(x))

    def gelu_erf_backward(self, x, g):
        """The exact GELU's input gradient for output gradient g."""
        xp = backend.get_array_module(x)
        return self._elementwise("gelu_erf_bwd", x, xp.ascontiguousarray(x), xp.ascontiguousarray(g))

    # ----------------------------------------------------------- layer-norm (ops.LayerNorm)
    def layer_norm_forward(self, fn, x, weight, bias):
        xp = backend.get_array_module(x)
        c = x.shape[-1]
        x2 = xp.ascontiguousarray(x).reshape(-1, c)                 # (N, C)
        n = x2.shape[0]
        y = xp.empty_like(x2)
        mean, rstd = xp.empty(n, dtype=np.float32), xp.empty(n, dtype=np.float32)
        if n:
            self.launch("layer_norm_fwd", (n,), (_rows_block(c),),
                        (x2, _weights(xp, weight), _weights(xp, bias), y, mean, rstd, _i32(c), _f32(fn.eps)))
        fn._fused, fn.x, fn.mean, fn.rstd, fn.weight = self, x2, mean, rstd, weight
        fn.shape, fn.has_bias = x.shape, bias is not None
        return y.reshape(x.shape)

    def layer_norm_backward(self, fn, g):
        xp = backend.get_array_module(g)
        x, w = fn.x, fn.weight
        n, c = x.shape
        g = xp.ascontiguousarray(g, dtype=np.float32).reshape(n, c)
        gx = xp.empty_like(x)
        gw = gb = None
        if n:
            self.launch("layer_norm_bwd", (n,), (_rows_block(c),),
                        (x, g, _weights(xp, w), fn.mean, fn.rstd, gx, _i32(c)))
        if w is not None or fn.has_bias:
            rows = max(_PARAM_ROWS, -(-n // 65535))                  # gridDim.y is at most 65535
            chunks = max(1, -(-n // rows))
            pw = xp.empty((chunks, c), dtype=np.float32)             # partial sums, one row per chunk
            pb = xp.empty((chunks, c), dtype=np.float32)
            if n:
                self.launch("layer_norm_bwd_params", (-(-c // 128), chunks), (128,),
                            (x, g, fn.mean, fn.rstd, pw, pb, _i64(n), _i32(c), _i32(rows)))
            else:
                pw[...] = 0
                pb[...] = 0
            gw = pw.sum(axis=0) if w is not None else None
            gb = pb.sum(axis=0) if fn.has_bias else None
        return gx.reshape(fn.shape), gw, gb

    # ----------------------------------------------------------- softmax (ops.Softmax, attention)
    def _softmax_rows(self, x2, mask, empty_zero):
        """Softmax over the rows of a C-contiguous (N, C) float32 array, in place."""
        n, c = x2.shape
        if n and c:
            self.launch("softmax_fwd", (n,), (_rows_block(c),),
                        (x2, mask, x2, _i32(c), _i32(mask.shape[0] if mask is not None else 1), _i32(empty_zero)))
        return x2

    def softmax_forward(self, fn, x):
        xp = backend.get_array_module(x)
        axis = fn.axis % x.ndim
        y = _contiguous_copy(xp, xp.moveaxis(x, axis, -1))          # the kernel writes in place
        self._softmax_rows(y.reshape(-1, y.shape[-1]) if y.size else y.reshape(0, 0), None, 0)
        fn._fused, fn.y = self, y                                    # kept with the axis last
        return xp.moveaxis(y, -1, axis)

    def softmax_backward(self, fn, g):
        xp = backend.get_array_module(g)
        axis = fn.axis % g.ndim
        y = fn.y
        gx = _contiguous_copy(xp, xp.moveaxis(g, axis, -1))
        n, c = (y.size // y.shape[-1], y.shape[-1]) if y.size else (0, 0)
        if n and c:
            self.launch("softmax_bwd", (n,), (_rows_block(c),), (y, gx, None, gx, _i32(c)))
        return xp.moveaxis(gx, -1, axis)

    def attend(self, q, k, v, mask, scale, dropout_p):
        """ops._attend fused: the mask, softmax and dropout of the scores in two launches."""
        xp = backend.get_array_module(q)
        qs = q * scale                                               # (B, nh, T, hs)
        att = xp.ascontiguousarray(qs @ xp.swapaxes(k, -1, -2))     # (B, nh, T, S)
        t, s = att.shape[-2], att.shape[-1]
        kernel_mask = None
        if mask is not None:
            if tuple(mask.shape) == (t, s) and mask.dtype == np.float32:
                kernel_mask = xp.ascontiguousarray(mask)
            else:
                att += mask
        self._softmax_rows(att.reshape(-1, s), kernel_mask, int(mask is not None))
        drop, used = None, att
        if dropout_p > 0.0:
            drop = backend.get_generator(backend.device_of(q)).uniform(att.shape, dtype=att.dtype)
            used = xp.empty_like(att)
            self.launch("dropout_mask", _grid(att.size), (_BLOCK,),
                        (att, drop, used, _f32(dropout_p), _f32(1.0 / (1.0 - dropout_p)), _i64(att.size)))
        return used @ v, att, drop, qs

    def attend_backward(self, g, qs, k, v, att, drop, scale):
        """ops._attend_backward fused: the softmax backward (and dropout's) in one launch."""
        xp = backend.get_array_module(g)
        used = att * drop if drop is not None else att
        gv = xp.swapaxes(used, -1, -2) @ g                           # (B, nh, S, hs)
        ga = xp.ascontiguousarray(g @ xp.swapaxes(v, -1, -2))       # (B, nh, T, S)
        s = ga.shape[-1]
        if ga.size:
            self.launch("softmax_bwd", (ga.size // s,), (_rows_block(s),), (att, ga, drop, ga, _i32(s)))
        gq = ga @ k                                                  # (B, nh, T, hs)
        gq *= scale
        gk = xp.swapaxes(ga, -1, -2) @ qs                            # (B, nh, S, hs)
        return gq, gk, gv

    # ----------------------------------------------------------- cross-entropy (ops.CrossEntropy)
    def cross_entropy_forward(self, fn, logits, targets):
        xp = backend.get_array_module(logits)
        n, v = logits.shape
        logits = xp.ascontiguousarray(logits)
        targets = xp.ascontiguousarray(targets, dtype=np.int64)
        p = xp.empty_like(logits)
        nll = xp.empty(n, dtype=np.float32)
        flag = xp.empty(n, dtype=np.int32)
        counts = np.zeros(3, dtype=np.int64)
        if n:
            self.launch("cross_entropy_fwd", (n,), (_rows_block(v),),
                        (logits, targets, _i64(fn.ignore_index), p, nll, flag, _i32(v)))
            counts = backend.to_numpy(xp.bincount(flag, minlength=3))   # one copy to the host
        if counts[2]:
            bad = backend.to_numpy(targets[flag == 2])
            raise ValueError(f"cross_entropy: target id {int(bad[0])} is outside the vocabulary [0, {v})")
        fn._fused, fn.p, fn.targets, fn.flag, fn.count = self, p, targets, flag, int(counts[1])
        if fn.reduction == "none":
            return nll
        total = nll.sum()
        return total if fn.reduction == "sum" else total / max(fn.count, 1)

    def cross_entropy_backward(self, fn, g):
        xp = backend.get_array_module(g)
        p = fn.p
        gx = p.copy() if fn.retained else p                          # reuse softmax's buffer when we may
        n, v = p.shape
        g = xp.ascontiguousarray(g, dtype=np.float32).reshape(-1)
        denom = max(fn.count, 1) if fn.reduction == "mean" else 1
        if p.size:
            self.launch("cross_entropy_bwd", _grid(p.size), (_BLOCK,),
                        (gx, fn.targets, fn.flag, g, _i64(1 if fn.reduction == "none" else 0), _f32(denom),
                         gx, _i32(v), _i64(p.size)))
        return gx, None

    # ----------------------------------------------------------- Adam / AdamW (optim.Adam)
    def adam_update(self, opt, group, p, w, g, state):
        xp = backend.get_array_module(w)
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(w), exp_avg_sq=xp.zeros_like(w))
        state["step"] += 1
        t = state["step"]
        bc1, s = 1.0 - b1 ** t, math.sqrt(1.0 - b2 ** t)
        decay = 1.0 - lr * wd if wd and opt.decoupled else 1.0
        l2 = wd if wd and not opt.decoupled else 0.0
        for key in ("exp_avg", "exp_avg_sq"):                       # e.g. loaded from a checkpoint
            state[key] = xp.ascontiguousarray(state[key], dtype=np.float32)
        flat = w if w.flags.c_contiguous else xp.ascontiguousarray(w)   # the kernel updates in place
        if w.size:
            self.launch("adam_step", _grid(w.size), (_BLOCK,),
                        (flat, xp.ascontiguousarray(g), state["exp_avg"], state["exp_avg_sq"], _f32(decay), _f32(l2),
                         _f32(b1), _f32(1.0 - b1), _f32(b2), _f32(1.0 - b2), _f32(eps * s), _f32(lr * s / bc1),
                         _i64(w.size)))
        if flat is not w:
            w[...] = flat


def _contiguous_copy(xp, a):
    """A new C-contiguous float32 array with a's values."""
    out = xp.empty(a.shape, dtype=np.float32)
    out[...] = a
    return out


def _weights(xp, w):
    """A weight or bias for a kernel: C-contiguous float32, or None (a null pointer)."""
    return None if w is None else xp.ascontiguousarray(w, dtype=np.float32)


# ---------------------------------------------------------------------------- the switch
# where the kernels plug in: (owner, attribute, the _Fused method serving it, how it picks the path).
# "array": the first array argument decides (float32, of the kernels' array type); "fused": the
# backward follows what its forward did (the forward marks the op `_fused`)
_ROUTES = (
    (ops.Gelu, "forward", "gelu_forward", "array"), (ops.Gelu, "backward", "gelu_backward", "fused"),
    (ops.Softmax, "forward", "softmax_forward", "array"), (ops.Softmax, "backward", "softmax_backward", "fused"),
    (ops.LayerNorm, "forward", "layer_norm_forward", "array"),
    (ops.LayerNorm, "backward", "layer_norm_backward", "fused"),
    (ops.CrossEntropy, "forward", "cross_entropy_forward", "array"),
    (ops.CrossEntropy, "backward", "cross_entropy_backward", "fused"),
    (ops, "_attend", "attend", "function"), (ops, "_attend_backward", "attend_backward", "function"),
    (optim.Adam, "_update", "adam_update", "update"),
)
_GENERIC = {(owner, attr): getattr(owner, attr) for owner, attr, _, _ in _ROUTES}  # the reference paths
_active = None                      # the _Fused in use, or None: off


def _takes(kernels, x):
    return isinstance(x, kernels.array_type) and x.dtype == np.float32


def _route(kernels, generic, serve, how):
    """The method or function that sends a call to `serve` when the kernels take it, else to `generic`."""
    if how == "array":
        def forward(self, x, *rest):
            return serve(self, x, *rest) if _takes(kernels, x) else generic(self, x, *rest)
        return forward
    if how == "fused":
        def backward(self, *grads):
            return serve(self, *grads) if getattr(self, "_fused", None) is kernels else generic(self, *grads)
        return backward
    if how == "update":
        def update(self, group, p, w, g, state):
            return serve(self, group, p, w, g, state) if _takes(kernels, w) else generic(self, group, p, w, g, state)
        return update

    def function(x, *rest):
        return serve(x, *rest) if _takes(kernels, x) else generic(x, *rest)
    return function


def enabled():
    """True while the fused kernels are switched on."""
    return _active is not None


def use_fused_kernels(on=True, *, launcher=None, array_type=None):
    """Switch the fused kernels on (float32 CuPy arrays take them) or off (the generic path).

    On, the forward and backward of the core's fused ops (Gelu, Softmax, LayerNorm,
    CrossEntropy, attention's `_attend`) and Adam's update are wrapped, as compat.py attaches
    Tensor methods from outside the core: a call with a float32 array of `array_type` goes to
    the kernels, any other to the generic code, which stays the reference; off puts the
    generic methods back. Switch between steps, not between a forward and its backward.
    `launcher(name, grid, block, args)` and `array_type` default to CuPy's RawModule and
    `cupy.ndarray`; the tests pass a CPU launcher and the strict device's array type.
    Returns the previous state (True when the kernels were on).
    """
    global _active
    was_on = _active is not None
    for (owner, attr), generic in _GENERIC.items():
        setattr(owner, attr, generic)
    _active = None
    if not on:
        return was_on
    if launcher is None or array_type is None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError(f"use_fused_kernels(True) needs CuPy, which is not installed ({e}); "
                               "install the gpu extra: pip install -e \".[gpu]\"") from None
        launcher = launcher or CupyLauncher()
        array_type = array_type or cupy.ndarray
    _active = _Fused(launcher, array_type)
    for owner, attr, method, how in _ROUTES:
        setattr(owner, attr, _route(_active, _GENERIC[(owner, attr)], getattr(_active, method), how))
    return was_on


def _from_environment():
    """TINYLM_FUSED=1 turns the kernels on at import; without CuPy it warns and stays off."""
    value = os.environ.get("TINYLM_FUSED", "").strip()
    if value in ("", "0"):
        return
    if value != "1":
        raise ValueError(f"TINYLM_FUSED must be 0 or 1, got {value!r}")
    try:
        use_fused_kernels(True)
    except RuntimeError as e:
        warnings.warn(f"TINYLM_FUSED=1 ignored: {e}", RuntimeWarning, stacklevel=2)


_from_environment()
