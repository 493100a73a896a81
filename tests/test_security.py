"""Crafted pickles never run: every loader of checkpoints, run directories, user data and the parse
cache refuses them with an error naming the file, and the payload's marker file never appears.

Each payload, when unpickled, writes a marker file into ``tmp_path`` (nothing else). Positive
controls show the payloads are live: plain ``pickle.loads``, ``torch.load(weights_only=False)`` and
``np.load(allow_pickle=True)`` do create the marker, so its absence after a refusal means something.
A source scan guards future code: no module may unpickle (``pickle.load``, ``torch.load`` without
``weights_only=True``, ``np.load`` without ``allow_pickle=False``).
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_models.data import DataError, read_split
from ppl_models.data.cache import cache_path, cached_bits
from ppl_models.train import RunDir, fit
from ppl_models.train.checkpoint import list_checkpoints, load_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # raw protocol-4 pickles


class _Reduce:
    """An object that unpickles as the call ``fn(*args)``: the classic pickle exploit."""

    def __init__(self, fn, args: tuple):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _exec_payload(marker: Path) -> _Reduce:
    return _Reduce(exec, (f"open({str(marker)!r}, 'w').write('pwned')",))


def _write_text_payload(marker: Path) -> _Reduce:
    return _Reduce(Path.write_text, (Path(marker), "pwned"))


PAYLOADS = {"exec": _exec_payload, "Path.write_text": _write_text_payload}


@pytest.fixture(params=sorted(PAYLOADS))
def evil(request, tmp_path):
    """``(payload, marker)``: a payload that, if ever unpickled, creates the file ``marker``."""
    marker = tmp_path / f"pwned-{request.param.replace('.', '-')}"
    return PAYLOADS[request.param](marker), marker


def _checkpoint_state(payload=None) -> dict:
    state = {"model": {"w": torch.ones(2, 3)}, "optimizer": {"state": {}, "param_groups": []},
             "rng": {"torch": torch.get_rng_state()}, "epoch": 1, "step": 1, "elapsed_s": 0.0}
    if payload is not None:
        state["model"]["evil"] = payload
    return state


def _write_malicious(path: Path, payload, container: str, inner: dict | None = None) -> Path:
    """Write ``payload`` to ``path`` as a raw pickle, or inside ``inner`` with (legacy) torch.save."""
    if container == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        obj = {**(inner or {}), "evil": payload}
        torch.save(obj, path, _use_new_zipfile_serialization=container == "torch.save")
    return path


CONTAINERS = ("torch.save", "torch.save-legacy", "pickle")


# --- positive controls: the payloads are live ---------------------------------------------------

def test_payloads_run_under_plain_pickle_in_a_subprocess(evil, tmp_path):
    payload, marker = evil
    blob = tmp_path / "payload.pkl"
    blob.write_bytes(pickle.dumps(payload))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(blob)!r}, 'rb').read())"],
                   check=True, timeout=60)
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("container", CONTAINERS)
def test_payloads_run_under_unsafe_torch_load(evil, tmp_path, container):
    payload, marker = evil
    path = _write_malicious(tmp_path / "unsafe.pt", payload, container, {"x": torch.zeros(2)})
    try:
        torch.load(path, weights_only=False)
    except RuntimeError as e:  # a bare pickle is unpickled as the legacy "magic number", then rejected
        assert container == "pickle" and "magic number" in str(e)
    assert marker.read_text() == "pwned"


def test_payloads_run_under_unsafe_np_load(evil, tmp_path):
    payload, marker = evil
    np.save(tmp_path / "unsafe.npy", np.array([payload], dtype=object), allow_pickle=True)
    np.load(tmp_path / "unsafe.npy", allow_pickle=True)
    assert marker.read_text() == "pwned"


# --- checkpoints and run directories --------------------------------------------------------------

@pytest.mark.parametrize("container", CONTAINERS)
def test_load_checkpoint_refuses_crafted_pickles(evil, tmp_path, container):
    payload, marker = evil
    path = _write_malicious(tmp_path / "step-00000001.pt", payload, container, _checkpoint_state())
    with pytest.raises(ValueError, match="corrupt or not a ppl-models checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_run_directory_with_malicious_checkpoints_never_runs_them(evil, tmp_path, digits, tiny_run_config):
    payload, marker = evil
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=2), digits, progress=False)
    found = [p for _, p in list_checkpoints(run.checkpoints)]
    assert found
    good = load_checkpoint(found[-1])

    # Only the newest is malicious: loading refuses it, or skips it with a warning naming it.
    _write_malicious(found[-1], payload, "torch.save", {**good, "model": {**good["model"], "evil": payload}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run.load_model(checkpoint="latest")  # the newest step-N.pt (best.pt is another file)
        except ValueError as e:
            assert found[-1].name in str(e)
        else:
            assert any(found[-1].name in str(w.message) for w in caught), "a malicious checkpoint was loaded"
    assert not marker.exists()

    # Every checkpoint malicious: loading the model and resuming training both fail, naming the file.
    for path in found:
        _write_malicious(path, payload, "torch.save", good)
    with pytest.raises(ValueError, match=found[-1].name):
        run.load_model(checkpoint="latest")
    with pytest.raises(ValueError, match=found[-1].name):
        fit(run, tiny_run_config(epochs=3), digits, resume=True, progress=False)
    assert not marker.exists()


# --- user data files ---------------------------------------------------------------------------

def _malicious_data_file(tmp_path: Path, payload, kind: str) -> Path:
    x, obj = np.ones((4, 3), dtype=np.float32), np.array([payload], dtype=object)
    if kind == "pt":
        return _write_malicious(tmp_path / "data.pt", payload, "torch.save", {"x": torch.ones(4, 3)})
    if kind == "pt-legacy":
        return _write_malicious(tmp_path / "data.pt", payload, "torch.save-legacy", {"x": torch.ones(4, 3)})
    if kind == "pt-pickle":
        return _write_malicious(tmp_path / "data.pt", payload, "pickle")
    if kind == "npy-object":
        np.save(tmp_path / "data.npy", obj, allow_pickle=True)
        return tmp_path / "data.npy"
    if kind == "npy-pickle":  # a bare pickle under an .npy name
        return _write_malicious(tmp_path / "data.npy", payload, "pickle")
    if kind == "npz-object-x":
        np.savez(tmp_path / "data.npz", x=obj)
    elif kind == "npz-object-y":
        np.savez(tmp_path / "data.npz", x=x, y=obj)
    elif kind == "npz-object-only":
        np.savez(tmp_path / "data.npz", evil=obj)
    return tmp_path / "data.npz"


@pytest.mark.parametrize("kind", ["pt", "pt-legacy", "pt-pickle", "npy-object", "npy-pickle", "npz-object-x",
                                  "npz-object-y", "npz-object-only"])
def test_read_split_refuses_crafted_pickles(evil, tmp_path, kind):
    payload, marker = evil
    path = _malicious_data_file(tmp_path, payload, kind)
    with pytest.raises(DataError) as info:
        read_split(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_an_extra_malicious_npz_member_is_never_touched(evil, tmp_path):
    payload, marker = evil
    np.savez(tmp_path / "data.npz", x=np.eye(3, dtype=np.float32), evil=np.array([payload], dtype=object))
    assert torch.equal(read_split(tmp_path / "data.npz").x, torch.eye(3))
    assert not marker.exists()


# --- the parse cache ------------------------------------------------------------------------------

BITS = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.uint8)
SOURCE_BYTES = b"0 1 1\n1 0 0\n"


def _poison_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload, kind: str) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = cache_path(tmp_path / "src.amat", SOURCE_BYTES)
    assert str(path).startswith(str(tmp_path / "xdg"))
    path.parent.mkdir(parents=True)
    if kind == "npy-object":
        with open(path, "wb") as f:
            np.save(f, np.array([payload], dtype=object), allow_pickle=True)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:  # an .npz archive in the cache file's place
        with open(path, "wb") as f:
            np.savez(f, evil=np.array([payload], dtype=object))
    return path


@pytest.mark.parametrize("kind", ["npy-object", "pickle", "npz-object"])
def test_poisoned_parse_cache_is_not_unpickled_but_parsed_again(evil, tmp_path, monkeypatch, kind):
    payload, marker = evil
    _poison_cache(tmp_path, monkeypatch, payload, kind)
    parsed = []
    out = cached_bits(tmp_path / "src.amat", SOURCE_BYTES, 3, lambda: parsed.append(1) or BITS)
    assert parsed == [1] and np.array_equal(out, BITS)
    assert not marker.exists()


# --- a source scan guards future code -------------------------------------------------------------

UNSAFE_CALLS = {  # fully qualified callables that unpickle, or run code from data, whatever their arguments
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "dill.load", "dill.loads",
    "cloudpickle.load", "cloudpickle.loads", "joblib.load", "shelve.open", "marshal.load", "marshal.loads",
    "pandas.read_pickle", "yaml.unsafe_load",
    "torch.serialization._legacy_load", "eval", "exec",
}


def _qualified_names(tree: ast.AST) -> dict[str, str]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(names.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword_is(call: ast.Call, keyword: str, value: bool) -> bool:
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is value
               for k in call.keywords)


def unsafe_loads(source: str, filename: str = "<source>") -> list[str]:
    """Every call in ``source`` that may unpickle: ``file:line: reason``."""
    tree = ast.parse(source, filename)
    names = _qualified_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, names)
        where = f"{filename}:{node.lineno}"
        if name in ("torch.load", "torch.serialization.load") and not _keyword_is(node, "weights_only", True):
            found.append(f"{where}: {name} without weights_only=True")
        elif name in ("numpy.load", "numpy.lib.format.read_array") and not _keyword_is(node, "allow_pickle", False):
            found.append(f"{where}: {name} without allow_pickle=False")
        elif name in UNSAFE_CALLS:
            found.append(f"{where}: {name}")
    return found


def test_the_source_scan_flags_every_unsafe_form():
    bad = """
import pickle, torch, numpy as np, numpy
from pickle import loads as l
from torch import load
import pickle as pk
pickle.load(f); pk.loads(b); l(b)
torch.load(p); torch.load(p, weights_only=False); load(p)
np.load(p); np.load(p, allow_pickle=True); numpy.load(p)
exec("1")
"""
    assert len(unsafe_loads(bad)) == 10
    good = "import torch, numpy as np\ntorch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\n"
    assert unsafe_loads(good) == []


def test_no_module_can_unpickle():
    files = [p for top in ("ppl_models", "guides", "examples") for p in sorted((REPO_ROOT / top).rglob("*.py"))]
    assert len(files) > 20
    problems = [problem for p in files for problem in unsafe_loads(p.read_text(), str(p.relative_to(REPO_ROOT)))]
    assert problems == []
