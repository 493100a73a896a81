"""The README's quickstart, its shell line and its Python twin, run as written (with fewer epochs)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_blocks() -> tuple[str, str]:
    section = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip()
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return bash, python


def test_the_shell_quickstart_runs(tmp_path):
    bash, _ = quickstart_blocks()
    assert "--epochs 500" in bash  # the replacement below keeps the test fast
    for command in bash.split("&&"):
        argv = shlex.split(command.replace("--epochs 500", "--epochs 2"))
        assert argv[0] == "ppl"
        done = subprocess.run([sys.executable, "-m", "ppl_models.cli.main", *argv[1:], *(["--no-progress"] if argv[1] == "train" else [])],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "quickstart" / "grid.png").exists()
    assert (tmp_path / "runs" / "quickstart" / "eval-test.json").exists()


def test_the_python_quickstart_runs(tmp_path):
    _, python = quickstart_blocks()
    assert "epochs=500" in python
    code = python.replace("epochs=500", "epochs=2")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("EvalResult(") and (tmp_path / "runs" / "quickstart-py" / "grid.png").exists()
