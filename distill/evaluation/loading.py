"""Load metrics through `evaluate`: ours from the package directory, anything else from the hub.

    load_metric("distill_chrf")   # offline, shipped in distill/evaluation/evaluate_modules/
    load_metric("rouge")          # any hub metric, when online

Our modules need no network; hub names fail offline with a message that says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MODULES_DIR = Path(__file__).parent / "evaluate_modules"


def local_metric_names() -> list[str]:
    """The evaluate modules shipped with distill."""
    return sorted(
        p.name for p in MODULES_DIR.iterdir() if p.is_dir() and (p / f"{p.name}.py").is_file()
    )


def local_metric_path(name: str) -> Path | None:
    """Directory of a shipped module (what `evaluate.load` takes), or None."""
    path = MODULES_DIR / name
    return path if (path / f"{name}.py").is_file() else None


def load_metric(name: str) -> Any:
    """`evaluate.load` a shipped module by name or path; other names go to the hub.

    Raises ValueError naming the metric when it cannot be loaded (offline hub name, typo).
    """
    local = local_metric_path(name)
    if local is None and not Path(name).exists() and _offline():
        # fail fast: importing evaluate alone takes seconds, and the hub is unreachable anyway
        raise ValueError(
            f"metric '{name}' is not built in and the hub is offline (HF_HUB_OFFLINE=1); use one "
            f"of {', '.join(local_metric_names())}, a local evaluate module path, or the built-in names"
        )
    import evaluate

    target = str(local) if local else name
    try:
        return evaluate.load(target)
    except Exception as exc:  # evaluate raises many types (FileNotFoundError, ConnectionError...)
        raise ValueError(
            f"metric '{name}' could not be loaded ({type(exc).__name__}: {exc}); offline, use one "
            f"of {', '.join(local_metric_names())} or the built-in names"
        ) from None


def _offline() -> bool:
    return any(
        os.environ.get(var, "").lower() in ("1", "true", "yes")
        for var in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE")
    )


def compute_hub_metric(
    name: str, predictions: list[str], references: list[str]
) -> dict[str, float]:
    """Scalar results of an evaluate module (hub or local), keyed `name.key`."""
    module = load_metric(name)
    result = module.compute(predictions=predictions, references=references)
    return {
        f"{name}.{key}": float(value)
        for key, value in result.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
