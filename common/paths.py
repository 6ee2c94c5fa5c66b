"""Where this project keeps files between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache directory: $DISTILL_CACHE_DIR, else $XDG_CACHE_HOME/distill, else
    ~/.cache/distill. Holds the assembled teacher GGUF, built students and hub catalogs."""
    if env := os.environ.get("DISTILL_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distill"
