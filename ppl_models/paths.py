"""Output paths that stay inside their directory.

A file name built from user-controlled text (a data file's stem, a strategy spec) must not lead
out of the run or output directory it is meant for: not through ``..``, not as an absolute path,
and not through a symlink that points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def inside(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """``root`` joined with ``parts`` and resolved, refused if it leaves ``root``.

    Symlinks are followed (``root``'s own included, so a run directory that is itself a link is
    fine); the result may be ``root`` itself or anything below it, existing or not.

    Args:
        root: the directory the path must stay in.
        parts: path components below it, e.g. ``"runs", "iwae_5"``.

    Returns:
        The resolved path.

    Raises:
        ValueError: naming the joined path and where it resolves to, if that is outside ``root``.
    """
    base = Path(root).resolve()
    joined = Path(root).joinpath(*parts)
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"output path {str(joined)!r} resolves to {target}, outside the directory {base}; "
                         f"refusing to write there")
    return target
