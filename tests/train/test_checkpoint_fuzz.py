"""Hypothesis fuzzing of the checkpoint loader: random bytes, truncations and byte mutations of a real
checkpoint either load as a complete checkpoint dict or raise a ValueError naming the file.

Truncations always fail: a checkpoint is a zip archive whose central directory is at the end. A
flipped byte inside tensor data is a different matter: torch does not check the zip's CRC-32 of
the records it reads, so the file loads with one changed number. The zip CRC catches every such
silent change (checked here by fuzzing; an exhaustive sweep of single-bit flips of this checkpoint
found none that changed the loaded state and passed ``zipfile.testzip``).
"""

from __future__ import annotations

import io
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppl_models.train.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint

pytestmark = [pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning"),  # mutated pickles
              pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")]
FUZZ = settings(max_examples=100, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _state() -> dict:
    """A small checkpoint of the shape the training loop writes: weights, Adam state, RNG states."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    rng = {"torch": torch.get_rng_state(), "data": torch.Generator().manual_seed(1).get_state()}
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng, "strategy": {},
            "epoch": 1, "step": 5, "elapsed_s": 0.25}


def _checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        return save_checkpoint(Path(d), 5, _state(), keep=1).read_bytes()


STATE = _state()
VALID = _checkpoint_bytes()
RECORDS = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(VALID)).infolist()}


def _data_start(info: zipfile.ZipInfo) -> int:
    """Offset of a stored record's bytes: after its local header (30 bytes, name and extra field)."""
    return info.header_offset + 30 + sum(struct.unpack("<HH", VALID[info.header_offset + 26: info.header_offset + 30]))


def _tensor_data(name: str) -> range:
    """The byte range of the tensor data in the stored records, e.g. ``data/0``."""
    info = next(i for n, i in RECORDS.items() if n.endswith("/" + name))
    return range(_data_start(info), _data_start(info) + info.file_size)


_ALL_DATA = [i for n, info in RECORDS.items() if "/data/" in n and not n.endswith("serialization_id")
             for i in range(_data_start(info), _data_start(info) + info.file_size)]
STRUCTURE = sorted(set(range(len(VALID))) - set(_ALL_DATA))  # zip headers, the pickle, version records


def _load(raw: bytes) -> dict | None:
    """load_checkpoint of ``raw``: a dict holding every required key, or None after a ValueError naming the file."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "step-00000005.pt"
        path.write_bytes(raw)
        try:
            state = load_checkpoint(path)
        except ValueError as exc:
            assert str(path) in str(exc)
            return None
    assert isinstance(state, dict) and all(k in state for k in REQUIRED_KEYS)
    return state


def _crc_ok(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return False


def _same_state(state: dict) -> bool:
    loaded, expected = _flat(state), _flat(STATE)
    return loaded.keys() == expected.keys() and all(
        torch.equal(loaded[k], v) if isinstance(v, torch.Tensor) else loaded[k] == v for k, v in expected.items())


def _flat(state: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out.update(_flat(dict(enumerate(value)), f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_valid_checkpoint_loads_unchanged():
    assert _same_state(_load(VALID)) and _crc_ok(VALID)


@FUZZ
@given(st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x80\x02", b"\x80\x02\x8a\n"]), st.binary(max_size=400))
def test_random_bytes_are_refused(magic, tail):
    assert _load(magic + tail) is None


@FUZZ
@given(st.data())
def test_truncations_are_refused(data):
    assert _load(VALID[: data.draw(st.integers(0, len(VALID) - 1))]) is None


def test_truncations_at_every_record_boundary_and_in_the_directory_are_refused():
    cuts = {c for info in RECORDS.values() for c in (info.header_offset - 1, info.header_offset,
                                                     info.header_offset + 1, _data_start(info))}
    cuts |= set(range(len(VALID) - 300, len(VALID)))  # the central directory and its end record
    for cut in sorted(c for c in cuts if 0 <= c < len(VALID)):
        assert _load(VALID[:cut]) is None, f"a checkpoint cut to {cut} of {len(VALID)} bytes loaded"


@FUZZ
@given(st.data(), st.integers(0, 255))
def test_single_byte_mutations_anywhere(data, value):
    raw = bytearray(VALID)
    raw[data.draw(st.integers(0, len(raw) - 1))] = value
    _load(bytes(raw))


@FUZZ
@given(st.sampled_from(STRUCTURE), st.integers(1, 255))
def test_single_byte_mutations_of_headers_and_pickle(pos, xor):
    raw = bytearray(VALID)
    raw[pos] ^= xor
    _load(bytes(raw))


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_every_silent_change_is_caught_by_the_zip_crc(pos, xor):
    raw = bytearray(VALID)
    raw[pos] ^= xor
    state = _load(bytes(raw))
    assert state is None or _same_state(state) or not _crc_ok(bytes(raw))


@pytest.mark.parametrize("name", ["0", "1"])
def test_a_flip_in_tensor_data_loads_changed_but_the_zip_crc_catches_it(name):
    raw = bytearray(VALID)
    pos = _tensor_data(name)[1]
    raw[pos] ^= 0x40
    record = next(n for n in RECORDS if n.endswith("/data/" + name))
    assert zipfile.ZipFile(io.BytesIO(bytes(raw))).testzip() == record
    state = _load(bytes(raw))
    if state is None:  # a loader that checks the CRC refuses the file: just as good
        return
    expected, loaded = _flat(STATE), _flat(state)
    changed = [k for k, v in expected.items() if isinstance(v, torch.Tensor) and not torch.equal(loaded[k], v)]
    assert len(changed) == 1  # torch does not check the CRC: exactly one tensor differs, silently
