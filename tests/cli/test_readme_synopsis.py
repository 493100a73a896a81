"""The README's command synopsis lists every flag each `ppl` subcommand knows, so it cannot drift."""

import re
from pathlib import Path

import pytest

from ppl_models.cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def synopsis() -> dict[str, str]:
    """The synopsis block under "## The commands", as ``{subcommand: its lines}``."""
    text = README.read_text()
    block = text.split("## The commands", 1)[1].split("```", 2)[1]
    out: dict[str, str] = {}
    for line in block.splitlines():
        m = re.match(r"ppl ([a-z-]+)", line)
        if m:
            current = m.group(1)
            out[current] = ""
        if out:
            out[current] += line + "\n"
    return out


def subcommands() -> dict[str, list[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: sorted({o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help"})
            for name, p in sub.choices.items()}


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_flag_of_every_subcommand_is_in_the_readme_synopsis(command):
    lines = synopsis().get(command)
    assert lines is not None, f"the README synopsis has no `ppl {command}` line"
    missing = [flag for flag in subcommands()[command] if not re.search(re.escape(flag) + r"(?![\w-])", lines)]
    assert not missing, f"ppl {command}: flags missing from the README synopsis: {missing}"
