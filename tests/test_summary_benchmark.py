"""benchmarks/summary.py: the learning-curve figure is redrawn only from complete run data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import summary  # noqa: E402


def write_metrics(root: Path, task: str) -> None:
    model = root / "runs" / task / "model"
    model.mkdir(parents=True)
    history = [{"epoch": e, "val_exact_match": 0.1 * e} for e in (1, 2, 3)]
    m = {"global_steps": 30, "epochs_run": 3, "history": history}
    (model / "metrics.json").write_text(json.dumps(m))


def test_a_missing_run_directory_leaves_the_figure_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run directories are not in git: redrawing without one would silently drop its curve."""
    monkeypatch.setattr(summary, "HERE", tmp_path)
    png = tmp_path / "curves.png"
    png.write_bytes(b"old figure")
    write_metrics(tmp_path, "questions")
    summary.learning_curves(["questions", "sentiment-t300"], png)
    assert png.read_bytes() == b"old figure"
    assert "no run directory for sentiment-t300" in capsys.readouterr().out
    summary.learning_curves(["questions"], png)
    assert png.read_bytes().startswith(b"\x89PNG")
