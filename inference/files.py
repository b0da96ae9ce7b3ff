"""Files written so that a crash never leaves a torn one: write beside the target, then rename over it.
And the one SHA-256 of a file the project records (checkpoints, weights, packages)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path`` (atomic on one file
    system): readers see the old file or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json_atomic(path: str | os.PathLike, data, indent: int | None = 2) -> Path:
    """``data`` as JSON (UTF-8) in ``path``, atomically."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
