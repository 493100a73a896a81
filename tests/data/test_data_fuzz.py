"""Hypothesis fuzzing of the amat and IDX parsers, gzip reading, user data files (``.npy``, ``.npz``, ``.pt``
through ``read_split``) and the parse cache: bad input is always a DataError naming the file (or, for
the cache, parsing again), never another exception or a hang."""

from __future__ import annotations

import gzip
import io
import math
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ppl_data_helpers import amat_bytes, idx_bytes

from ppl_models.data import DataError, Split, read_split
from ppl_models.data.amat import parse_amat
from ppl_models.data.cache import cache_path, cached_bits
from ppl_models.data.datadir import decompress
from ppl_models.data.idx import IDX_TYPES, parse_idx

FUZZ = settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
VALID_AMAT = amat_bytes(np.random.default_rng(0).integers(0, 2, (4, 6)))
VALID_IDX = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
amat_alphabet = st.sampled_from(list(b"01 \n\t\r2.-a\x00"))


def _check_amat(raw: bytes, ncols: int) -> None:
    try:
        out = parse_amat(raw, "fuzz.amat", ncols=ncols)
    except DataError as exc:
        assert "fuzz.amat" in str(exc)
        return
    assert out.dtype == np.uint8 and out.ndim == 2 and out.shape[1] == ncols and out.shape[0] >= 1
    assert set(np.unique(out).tolist()) <= {0, 1}


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 8))
def test_amat_random_bytes(raw, ncols):
    _check_amat(raw, ncols)


@FUZZ
@given(st.lists(amat_alphabet, max_size=200).map(bytes), st.integers(1, 6))
def test_amat_near_valid_alphabet(raw, ncols):
    _check_amat(raw, ncols)


@FUZZ
@given(st.integers(0, len(VALID_AMAT)))
def test_amat_truncations(cut):
    raw = VALID_AMAT[:cut]
    expected = parse_amat(VALID_AMAT, "full", ncols=6)
    try:
        out = parse_amat(raw, "fuzz.amat", ncols=6)
    except DataError as exc:
        assert "fuzz.amat" in str(exc)
        return
    assert np.array_equal(out, expected[: len(out)])  # a clean cut between rows is a shorter valid file


@FUZZ
@given(st.integers(0, len(VALID_AMAT) - 1), st.integers(0, 255))
def test_amat_single_byte_mutations(pos, value):
    raw = bytearray(VALID_AMAT)
    raw[pos] = value
    _check_amat(bytes(raw), 6)


def _check_idx(raw: bytes) -> None:
    try:
        out = parse_idx(raw, "fuzz-idx")
    except DataError as exc:
        assert "fuzz-idx" in str(exc)
        return
    header = 4 + 4 * raw[3]
    assert out.dtype == IDX_TYPES[raw[2]] and math.prod(out.shape) * out.itemsize == len(raw) - header


@FUZZ
@given(st.binary(max_size=200))
def test_idx_random_bytes(raw):
    _check_idx(raw)


@FUZZ
@given(st.integers(0, len(VALID_IDX) - 1))
def test_idx_truncations_always_fail(cut):
    try:
        parse_idx(VALID_IDX[:cut], "fuzz-idx", ndim=3)
    except DataError as exc:
        assert "fuzz-idx" in str(exc)
    else:
        raise AssertionError("a truncated IDX file was accepted")


@FUZZ
@given(st.binary(min_size=4, max_size=4), st.lists(st.integers(0, 2**32 - 1), max_size=5))
def test_idx_malformed_headers(magic, dims):
    raw = magic + b"".join(d.to_bytes(4, "big") for d in dims) + VALID_IDX[16:]
    _check_idx(raw)


@FUZZ
@given(st.integers(0, 200), st.binary(max_size=50))
def test_gzip_truncated_or_garbage(cut, garbage):
    good = gzip.compress(VALID_AMAT)
    truncated = good[: min(cut, len(good) - 1)]
    try:
        decompress(truncated, Path("fuzz.amat.gz"))
    except DataError as exc:
        assert "fuzz.amat.gz" in str(exc)
    else:
        raise AssertionError("a truncated gzip stream was accepted")
    try:
        decompress(b"\x1f\x8b" + garbage, Path("fuzz.amat.gz"))
    except DataError as exc:
        assert "fuzz.amat.gz" in str(exc)


# --- user data files (.npy, .npz, .pt) through read_split -----------------------------------------

LOADER_FUZZ = settings(max_examples=100, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
_rng = np.random.default_rng(0)
_X, _Y = _rng.random((5, 3)).astype(np.float32), np.arange(5)


def _file_bytes(save) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()


VALID_FILES = {  # kind -> (suffix, bytes of a valid file)
    "npy": (".npy", _file_bytes(lambda f: np.save(f, _X))),
    "npz": (".npz", _file_bytes(lambda f: np.savez(f, x=_X, y=_Y))),
    "npz-compressed": (".npz", _file_bytes(lambda f: np.savez_compressed(f, x=_X, y=_Y))),
    "pt": (".pt", _file_bytes(lambda f: torch.save({"x": torch.from_numpy(_X), "y": torch.from_numpy(_Y)}, f))),
}
_kinds = st.sampled_from(sorted(VALID_FILES))


def _read_user_file(raw: bytes, suffix: str) -> Split | None:
    """read_split of ``raw``: a Split meeting its invariants, or None after a DataError naming the file."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(raw)
        try:
            split = read_split(path)
        except DataError as exc:
            assert str(path) in str(exc)
            return None
    x, y = split.x, split.y
    assert x.dtype == torch.float32 and x.dim() >= 2 and x.shape[0] >= 1 and bool(torch.isfinite(x).all())
    assert y is None or (y.dtype == torch.int64 and tuple(y.shape) == (x.shape[0],))
    return split


@LOADER_FUZZ
@given(st.sampled_from(sorted({s for s, _ in VALID_FILES.values()})),
       st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"PK\x03\x04", b"\x80\x02"]),
       st.binary(max_size=300))
def test_user_file_random_bytes(suffix, magic, tail):
    assert _read_user_file(magic + tail, suffix) is None


@LOADER_FUZZ
@given(_kinds, st.data())
def test_user_file_truncations_always_fail(kind, data):
    suffix, raw = VALID_FILES[kind]
    assert _read_user_file(raw[: data.draw(st.integers(0, len(raw) - 1))], suffix) is None


@LOADER_FUZZ
@given(_kinds, st.data(), st.integers(0, 255))
def test_user_file_single_byte_mutations(kind, data, value):
    suffix, raw = VALID_FILES[kind]
    mutated = bytearray(raw)
    mutated[data.draw(st.integers(0, len(raw) - 1))] = value
    _read_user_file(bytes(mutated), suffix)


_descrs = st.sampled_from(["<f4", "<f8", "|u1", "|b1", "<i8", "<f2", "<c8", "O", "V8", "<U2", "<M8[s]", "zz", "<f3"])
_dims = st.integers(-2, 10**12) | st.integers(0, 6)


@LOADER_FUZZ
@given(_descrs, st.sampled_from(["False", "True", "None", "'no'"]), st.lists(_dims, max_size=3),
       st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x00"]), st.integers(0, 200))
def test_npy_malformed_headers_and_wrong_sizes(descr, fortran, shape, version, nbytes):
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)}, }}\n"
    width = 2 if version == b"\x01\x00" else 4
    raw = b"\x93NUMPY" + version + len(text).to_bytes(width, "little") + text.encode("latin1") + bytes(nbytes)
    split = _read_user_file(raw, ".npy")
    if split is not None:
        assert tuple(split.x.shape) == tuple(shape) and version in (b"\x01\x00", b"\x02\x00", b"\x03\x00")


_shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3)
_dtypes = st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "float16", "complex64", "uint16"])


@LOADER_FUZZ
@given(_shapes, _dtypes, st.none() | _shapes, _dtypes, st.booleans())
def test_npz_wrong_sizes_and_types(x_shape, x_dtype, y_shape, y_dtype, compressed):
    arrays = {"x": np.ones(x_shape, dtype=x_dtype)}
    if y_shape is not None:
        arrays["y"] = np.zeros(y_shape, dtype=y_dtype)
    raw = _file_bytes(lambda f: (np.savez_compressed if compressed else np.savez)(f, **arrays))
    split = _read_user_file(raw, ".npz")
    if split is not None:
        assert tuple(split.x.shape) == tuple(x_shape) and (split.y is None) == (y_shape is None)


_tensors = st.builds(lambda s, d: torch.ones(s, dtype=getattr(torch, d)), _shapes,
                     st.sampled_from(["float32", "float64", "bfloat16", "int64", "uint8", "bool", "complex64"]))
_pt_objects = (_tensors | st.builds(lambda x, y: {"x": x, "y": y}, _tensors, _tensors)
               | st.builds(lambda x: {"x": x}, _tensors | st.integers() | st.text(max_size=3) | st.none())
               | st.lists(_tensors, max_size=2) | st.dictionaries(st.text(max_size=3), _tensors, max_size=2)
               | st.integers() | st.none())


@LOADER_FUZZ
@given(_pt_objects)
def test_pt_wrong_sizes_and_types(obj):
    split = _read_user_file(_file_bytes(lambda f: torch.save(obj, f)), ".pt")
    if split is not None:
        x = obj["x"] if isinstance(obj, dict) else obj
        assert torch.equal(split.x, x.to(torch.float32))


# --- the parse cache --------------------------------------------------------------------------------

_BITS = np.random.default_rng(1).integers(0, 2, (4, 11)).astype(np.uint8)
_GOOD_CACHE = _file_bytes(lambda f: np.save(f, np.packbits(_BITS, axis=1)))


def _cached(cache_bytes: bytes) -> np.ndarray:
    """cached_bits of a source whose cache file holds ``cache_bytes`` (a fresh cache directory)."""
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", d)
        source = Path(d) / "src.amat"
        path = cache_path(source, b"source")
        path.parent.mkdir(parents=True)
        path.write_bytes(cache_bytes)
        out = cached_bits(source, b"source", 11, lambda: _BITS)
    assert out.dtype == np.uint8 and out.ndim == 2 and out.shape[1] == 11 and set(np.unique(out)) <= {0, 1}
    return out


@settings(LOADER_FUZZ, max_examples=50)  # each example parses and writes the cache (with fsync) twice
@given(st.data())
def test_parse_cache_truncated_or_foreign_files_mean_parsing_again(data):
    cut = data.draw(st.integers(0, len(_GOOD_CACHE) - 1))
    assert np.array_equal(_cached(_GOOD_CACHE[:cut]), _BITS)
    assert np.array_equal(_cached(data.draw(st.binary(max_size=200))), _BITS)


@LOADER_FUZZ
@given(st.data(), st.integers(0, 255))
def test_parse_cache_mutations_never_crash(data, value):
    mutated = bytearray(_GOOD_CACHE)
    mutated[data.draw(st.integers(0, len(mutated) - 1))] = value
    _cached(bytes(mutated))  # a flipped data bit gives wrong bits: the cache holds no checksum


# --- regressions: inputs the fuzzers found that escape as other exceptions -------------------------

def _npy_with_header(text: str, body: bytes = b"") -> bytes:
    return b"\x93NUMPY\x01\x00" + len(text + "\n").to_bytes(2, "little") + (text + "\n").encode() + body


def _sparse_or_meta(f, kind: str) -> None:
    torch.save(torch.eye(3).to_sparse() if kind == "sparse" else torch.ones(3, 3, device="meta"), f)


def _short_rebuild_call() -> bytes:
    """A .pt whose pickle calls the allowed torch._utils._rebuild_tensor_v2 with no arguments."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(VALID_FILES["pt"][1])) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)R." if info.filename.endswith("data.pkl")
                         else data)
    return out.getvalue()


def _corrupt_deflate() -> bytes:
    raw = bytearray(VALID_FILES["npz-compressed"][1])
    start = 30 + sum(struct.unpack("<HH", raw[26:30]))  # x.npy's deflate stream, after the first local header
    raw[start : start + 4] = b"\xff" * 4
    return bytes(raw)


REGRESSIONS = {  # name -> (suffix, bytes); each once escaped read_split as another exception
    "npy header: huge shape": (".npy", _npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000,), }")),  # MemoryError
    "npy header: unclosed paren": (".npy", _npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, }")),  # tokenize.TokenError
    "npz: corrupt deflate stream": (".npz", _corrupt_deflate()),  # zlib.error
    "pt: short rebuild call": (".pt", _short_rebuild_call()),  # TypeError
    "npy: big-endian": (".npy", _file_bytes(lambda f: np.save(f, _X.astype(">f4")))),  # ValueError, no file name
    "pt: sparse tensor": (".pt", _file_bytes(lambda f: _sparse_or_meta(f, "sparse"))),  # NotImplementedError
    "pt: meta tensor": (".pt", _file_bytes(lambda f: _sparse_or_meta(f, "meta"))),  # NotImplementedError
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_read_split_regressions(name):
    suffix, raw = REGRESSIONS[name]
    split = _read_user_file(raw, suffix)
    if name == "npy: big-endian":  # valid data in the other byte order reads as the same numbers
        assert split is not None and torch.equal(split.x, torch.from_numpy(_X))
    if name.startswith("pt: sparse"):  # refused, or read as the dense matrix
        assert split is None or torch.equal(split.x, torch.eye(3))


_UNCLOSED = "{'descr': '|u1', 'fortran_order': False, 'shape': (4, "


@pytest.mark.parametrize("cache_bytes", [b"", _npy_with_header(_UNCLOSED)],
                         ids=["empty", "unclosed-paren"])  # EOFError, tokenize.TokenError
def test_parse_cache_regressions(cache_bytes):
    assert np.array_equal(_cached(cache_bytes), _BITS)
