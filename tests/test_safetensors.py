"""Tests for tinylm/safetensors.py: round trips per dtype, bfloat16, malformed files, and the reference library."""
import json
import os
import struct

import numpy as np
import pytest

from tinylm.safetensors import read_safetensors, write_safetensors


def test_round_trip_dtypes_shapes_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f16": rng.standard_normal((5,)).astype(np.float16),
        "f64": rng.standard_normal((2, 2)),
        "i64": rng.integers(-2**40, 2**40, (2, 3)),
        "i32": np.arange(6, dtype=np.int32).reshape(3, 2),
        "u8": np.arange(7, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(1.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "transposed": rng.standard_normal((4, 3)).astype(np.float32).T,  # not C-contiguous
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors, metadata={"format": "pt", "step": 3})
    out, meta = read_safetensors(path, return_metadata=True)
    assert meta == {"format": "pt", "step": "3"}
    assert set(out) == set(tensors)
    for k, v in tensors.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        np.testing.assert_array_equal(out[k], v)
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert n % 8 == 0  # buffers start aligned


def test_bf16_round_trip_and_rounding(tmp_path):
    exact = np.array([1.0, -2.5, 0.15625, 2.0 ** 127, -0.0, np.inf], np.float32)  # representable in bf16
    x = np.array([1.00390625, 1.01171875, 1.0 + 2**-9, np.nan], np.float32)  # ties to even, a tie up, nan
    path = tmp_path / "b.safetensors"
    write_safetensors(path, {"exact": exact, "x": x}, bf16={"exact", "x"})
    header = json.loads(path.read_bytes()[8:8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])
    assert header["exact"]["dtype"] == "BF16" and header["exact"]["data_offsets"] == [0, 12]
    out = read_safetensors(path)
    assert out["exact"].dtype == np.float32
    np.testing.assert_array_equal(out["exact"], exact)
    np.testing.assert_array_equal(out["x"][:3], [1.0, 1.015625, 1.0])
    assert np.isnan(out["x"][3])


def _write_raw(path, header, data=b""):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize("case,match", [
    ("short", "shorter than the 8-byte header"),
    ("huge_header", "header length"),
    ("not_json", "not valid JSON"),
    ("not_object", "not a JSON object"),
    ("bad_dtype", "unsupported dtype 'X9'"),
    ("bad_offsets", "data_offsets"),
    ("past_end", "data_offsets"),
    ("missing_field", "malformed entry"),
    ("list_dtype", "unsupported dtype"),
    ("string_shape", "malformed entry"),
    ("float_shape", "malformed entry"),
    ("bool_offsets", "malformed entry"),
    ("overlap", "overlap another tensor"),
    ("gap", "leave a gap"),
    ("trailing", "cover 8 of the 12 data bytes"),
    ("bad_metadata", "__metadata__ must map str to str"),
])
def test_malformed_files_name_the_file(tmp_path, case, match):
    p = tmp_path / f"{case}.safetensors"
    ok = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    if case == "short":
        p.write_bytes(b"\x01\x02")
    elif case == "huge_header":
        p.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    elif case == "not_json":
        _write_raw(p, b"{nope")
    elif case == "not_object":
        _write_raw(p, b"[1, 2]")
    elif case == "bad_dtype":
        _write_raw(p, {"w": {**ok, "dtype": "X9"}}, bytes(8))
    elif case == "bad_offsets":
        _write_raw(p, {"w": {**ok, "data_offsets": [0, 4]}}, bytes(8))
    elif case == "past_end":
        _write_raw(p, {"w": ok}, bytes(4))
    elif case == "missing_field":
        _write_raw(p, {"w": {"dtype": "F32"}}, bytes(8))
    elif case == "list_dtype":                                      # was TypeError: unhashable type: 'list'
        _write_raw(p, {"w": {**ok, "dtype": ["F32"]}}, bytes(8))
    elif case == "string_shape":                                    # was read as shape (1, 2)
        _write_raw(p, {"w": {"dtype": "U8", "shape": "12", "data_offsets": [0, 2]}}, bytes(2))
    elif case == "float_shape":                                     # was read as shape (2,)
        _write_raw(p, {"w": {"dtype": "U8", "shape": [2.7], "data_offsets": [0, 2]}}, bytes(2))
    elif case == "bool_offsets":
        _write_raw(p, {"w": {"dtype": "U8", "shape": [1], "data_offsets": [False, True]}}, bytes(1))
    elif case == "overlap":                                         # two tensors on the same bytes
        _write_raw(p, {"w": ok, "v": ok}, bytes(8))
    elif case == "gap":
        _write_raw(p, {"w": {**ok, "data_offsets": [4, 12]}}, bytes(12))
    elif case == "trailing":
        _write_raw(p, {"w": ok}, bytes(12))
    elif case == "bad_metadata":
        _write_raw(p, {"__metadata__": {"step": 3}, "w": ok}, bytes(8))
    with pytest.raises(ValueError, match=match) as e:
        read_safetensors(p)
    assert p.name in str(e.value)


def test_bf16_names_one_str_as_one_name(tmp_path):
    x = np.array([1.00390625], np.float32)                          # not representable in bf16
    write_safetensors(tmp_path / "a.safetensors", {"x": x, "xy": x}, bf16="xy")   # 'x' in 'xy' was true
    out = read_safetensors(tmp_path / "a.safetensors")
    assert out["x"][0] == x[0] and out["xy"][0] == 1.0
    with pytest.raises(ValueError, match=r"bf16 names \['z'\] are not among the tensors"):
        write_safetensors(tmp_path / "b.safetensors", {"x": x}, bf16={"z"})


def test_write_errors(tmp_path):
    with pytest.raises(TypeError, match="NumPy arrays"):
        write_safetensors(tmp_path / "x.safetensors", {"a": [1.0, 2.0]})
    with pytest.raises(TypeError, match="unsupported dtype"):
        write_safetensors(tmp_path / "x.safetensors", {"a": np.zeros(2, np.complex64)})


def test_agrees_with_the_reference_library(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    tensors = {"a": rng.standard_normal((3, 5)).astype(np.float32), "b": rng.integers(0, 9, (4,)),
               "c": rng.standard_normal(7).astype(np.float16)}
    st.save_file(tensors, str(tmp_path / "ref.safetensors"))
    ours = read_safetensors(tmp_path / "ref.safetensors")
    write_safetensors(tmp_path / "ours.safetensors", tensors)
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    for k, v in tensors.items():
        np.testing.assert_array_equal(ours[k], v)
        np.testing.assert_array_equal(theirs[k], v)


def test_bf16_agrees_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    x = torch.randn(64, generator=torch.Generator().manual_seed(0))
    st.save_file({"x": x.to(torch.bfloat16)}, str(tmp_path / "t.safetensors"))
    want = x.to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(read_safetensors(tmp_path / "t.safetensors")["x"], want)
    write_safetensors(tmp_path / "o.safetensors", {"x": x.numpy()}, bf16={"x"})
    back = st.load_file(str(tmp_path / "o.safetensors"))["x"]
    assert back.dtype == torch.bfloat16
    assert torch.equal(back, x.to(torch.bfloat16))  # the same rounding (nearest even) as torch


def test_write_converts_big_endian_and_refuses_bad_names(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", {"x": np.arange(3, dtype=">f4")})
    got = read_safetensors(tmp_path / "a.safetensors")["x"]
    assert got.dtype == np.float32 and got.tolist() == [0.0, 1.0, 2.0]
    for name in ("__metadata__", 3):
        with pytest.raises(ValueError, match="tensor names"):
            write_safetensors(tmp_path / "b.safetensors", {name: np.zeros(2, np.float32)})


def test_a_crash_while_writing_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"w": np.arange(4, dtype=np.float32)})
    calls = []

    def crash(*args):
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_safetensors(path, {"w": np.zeros(4, np.float32)})
    monkeypatch.undo()
    assert calls and os.listdir(tmp_path) == ["model.safetensors"]
    np.testing.assert_array_equal(read_safetensors(path)["w"], np.arange(4, dtype=np.float32))
