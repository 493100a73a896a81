"""Hypothesis fuzzing of the amat and IDX parsers and of gzip reading: bad input is always a DataError."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ppl_data_helpers import amat_bytes, idx_bytes

from ppl_models.data import DataError
from ppl_models.data.amat import parse_amat
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
