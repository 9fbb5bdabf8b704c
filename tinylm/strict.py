"""A strict test device that behaves like CuPy, so the GPU code path is tested without a GPU.

Owns: `StrictArray`, an array that lives on the pretend device "strict", and `xp`, the
array module for it (a thin wrapper over NumPy, like `cupy` is a NumPy look-alike).

The two CuPy rules it enforces, so that code which would break on a real GPU breaks here:
  1. no implicit conversion to NumPy: `np.asarray(a)`, `np.exp(a)`, `np.concatenate([a])`
     raise TypeError; use `a.get()` (as in CuPy) or `tinylm.backend.to_numpy(a)`;
  2. no mixing with NumPy arrays: `a + np.ones(3)` or `xp.where(c, a, np.zeros(3))` raise
     TypeError. Python scalars and NumPy scalars mix freely, as in CuPy.
Full reductions return 0-d StrictArrays (as CuPy does), not NumPy scalars. Where NumPy and
CuPy agree, so does it: `xp.array` copies, in-place operators stay in place, `xp.ndarray` is
the array type, and submodules (`xp.linalg`, `xp.random`) take and give strict arrays. NumPy names that
CuPy lacks (`xp.errstate`, `xp.insert`, `a.resize`, ...) raise AttributeError here too.

Leaves out: speed (it is NumPy underneath) and CuPy-only APIs (`cupyx`, `RawKernel`).
Reference: CuPy's "Differences between CuPy and NumPy" page.
"""
import types

import numpy as np

from . import backend


# NumPy names that CuPy does not have (checked against CuPy 14.2's namespace and its ndarray):
# code that reaches for one of them works on NumPy and fails on a GPU, so it fails here too
NOT_IN_CUPY = frozenset(
    "errstate seterr geterr seterrcall geterrcall setbufsize getbufsize insert block bmat asmatrix "
    "matrix nditer ndenumerate nested_iters spacing vecdot matvec vecmat unstack einsum_path "
    "frompyfunc fromregex geomspace histogram_bin_edges nanquantile nanpercentile polyder polydiv "
    "polyint isnat longdouble float128 clongdouble complex256 object_ str_ bytes_ void character "
    "flexible datetime64 timedelta64 datetime_as_string datetime_data busday_count busday_offset "
    "busdaycalendar is_busday memmap recarray record rec char ma emath ctypeslib strings dtypes "
    "typecodes ScalarType sctypeDict".split())
NDARRAY_NOT_IN_CUPY = frozenset("ctypes getfield setfield resize setflags to_device".split())


def _missing(name, where):
    return AttributeError(f"{where}.{name} exists in NumPy but not in CuPy, so the 'strict' device "
                          "refuses it too; find a way that both have")


class StrictArray:
    """An array on the "strict" device: NumPy data behind CuPy's interoperability rules."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # numpy ufuncs and numpy binary operators refuse us

    def __init__(self, a):
        self._a = a

    # ------------------------------------------------------------------ conversions
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion of a 'strict' device array to a NumPy array is not allowed "
            "(as with CuPy); call .get() or tinylm.backend.to_numpy() explicitly")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a 'strict' device array; "
                        "use the device's array module (tinylm.backend.get_array_module)")

    def get(self):
        """Copy to a NumPy array (CuPy's `.get()`)."""
        return self._a.copy()

    def __repr__(self):
        return "strict." + repr(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield self[i]

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __getattr__(self, name):
        # attributes (shape, dtype, ndim, size, T, ...) and methods (reshape, sum, ...); never
        # the NumPy protocols (__array_interface__, __array_struct__, __dlpack__), which
        # would let NumPy read the data behind our back
        if name.startswith("__"):
            raise AttributeError(name)
        if name in NDARRAY_NOT_IN_CUPY:
            raise _missing(name, "ndarray")
        value = getattr(self._a, name)
        if callable(value):
            def method(*args, **kwargs):
                return _wrap(value(*_unwrap(args), **_unwrap(kwargs)), kwargs)
            return method
        return _wrap(value)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)


def _wrap(x, kwargs=None):
    """NumPy results -> StrictArray (0-d for NumPy scalars); the `out=` array keeps its wrapper."""
    if kwargs and "out" in kwargs:
        out = kwargs["out"]
        out = out[0] if isinstance(out, tuple) else out
        if isinstance(out, StrictArray) and x is out._a:
            return out
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic) and not isinstance(x, (np.str_, np.bytes_)):
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x):
    """StrictArray -> NumPy for the call underneath; a NumPy array here is a mixing error."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(
            f"a NumPy array (shape {x.shape}, dtype {x.dtype}) was mixed with 'strict' device "
            "arrays; move it to the device first (as CuPy requires)")
    if isinstance(x, tuple):
        return tuple(_unwrap(v) for v in x)
    if isinstance(x, list):
        return [_unwrap(v) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _binary(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        if isinstance(other, np.ndarray):
            _unwrap(other)  # raises the mixing error
        result = op(self._a, _unwrap(other))
        if result is NotImplemented:
            return NotImplemented
        return _wrap(result)
    method.__name__ = name
    return method


for _name in ("add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow divmod rdivmod "
              "matmul rmatmul and rand or ror xor rxor lshift rlshift rshift rrshift lt le gt ge eq ne").split():
    _dunder = f"__{_name}__"
    setattr(StrictArray, _dunder, _binary(_dunder))


def _inplace(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        if isinstance(other, np.ndarray):
            _unwrap(other)
        op(self._a, _unwrap(other))
        return self
    method.__name__ = name
    return method


for _name in ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
              "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__"):
    setattr(StrictArray, _name, _inplace(_name))

for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(StrictArray, _name, (lambda op: lambda self: _wrap(op(self._a)))(getattr(np.ndarray, _name)))

StrictArray.__hash__ = None


class _Callable:
    """A NumPy function or ufunc seen through the strict rules (ufunc methods too: `xp.add.at`)."""

    __slots__ = ("_f",)

    def __init__(self, f):
        self._f = f

    def __call__(self, *args, **kwargs):
        return _wrap(self._f(*_unwrap(args), **_unwrap(kwargs)), kwargs)

    def __getattr__(self, name):
        attr = getattr(self._f, name)
        return _Callable(attr) if callable(attr) else attr


class _Namespace:
    """A NumPy module seen through the strict rules: its functions wrapped, its submodules too
    (`xp.linalg.norm(a)`, `xp.random.standard_normal(3)` take and give strict arrays, as in CuPy)."""

    def __init__(self, module, name):
        self._module, self.__name__ = module, name

    def __getattr__(self, name):
        if name in NOT_IN_CUPY:
            raise _missing(name, "xp")
        attr = getattr(self._module, name)
        if isinstance(attr, types.ModuleType):
            wrapped = _Namespace(attr, f"{self.__name__}.{name}")
        elif isinstance(attr, type) or not callable(attr):  # dtypes, constants (xp.float32, xp.inf)
            return attr
        else:
            wrapped = _Callable(attr)
        setattr(self, name, wrapped)
        return wrapped


class _StrictModule(_Namespace):
    """The array module of the "strict" device: `xp.exp(a)`, `xp.zeros(...)`, `xp.float32`."""

    ndarray = StrictArray  # isinstance(a, xp.ndarray), as with cupy.ndarray

    def __init__(self):
        super().__init__(np, "tinylm.strict.xp")

    def asarray(self, a, dtype=None):
        if isinstance(a, StrictArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        if isinstance(a, np.ndarray):
            raise TypeError("xp.asarray of a NumPy array on the 'strict' device: use "
                            "tinylm.backend.to_device(array, 'strict') to move it explicitly")
        return StrictArray(np.asarray(a, dtype=dtype))

    def array(self, a, dtype=None, copy=True):
        """A new array by default (as `cupy.array`); `copy=False` is `asarray`."""
        out = self.asarray(a, dtype)
        return out.copy() if copy and out is a else out

    @staticmethod
    def from_numpy(a):
        """Explicit host -> device copy (what `cupy.asarray(numpy_array)` does)."""
        return StrictArray(np.array(a, copy=True))


xp = _StrictModule()
backend.register_host_device("strict", xp, StrictArray)
