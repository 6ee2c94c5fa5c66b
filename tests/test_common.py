"""The floor package: one cache path, one metric implementation, one distill.json record."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from common import metrics
from common.meta import StudentMeta, read_meta, write_meta
from common.paths import cache_dir

ROOT = Path(__file__).resolve().parent.parent


def test_cache_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DISTILL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "distill"
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DISTILL_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "distill"


def test_every_cache_user_shares_the_one_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import distill.commands.retrieve_data as retrieve_data
    import students.presets as presets
    import teachers.embedded as embedded

    assert embedded.cache_dir is presets.cache_dir is retrieve_data.cache_dir is cache_dir


def test_exact_match_strips_outer_whitespace_only() -> None:
    preds = [" 08/20/2010\n", "New York", "a  b"]
    refs = ["08/20/2010", "new york", "a b"]
    assert metrics.exact_match_hits(preds, refs) == [1.0, 0.0, 0.0]
    assert metrics.exact_match(preds, refs) == pytest.approx(1 / 3)
    assert metrics.exact_match([], []) == 0.0


def test_chrf_is_sacrebleu_chrf_pp_on_a_0_1_scale() -> None:
    from sacrebleu.metrics import CHRF

    preds, refs = ["the cat sat", "2019 - 01 - 05"], ["a cat sat", "2019-01-05"]
    expected = CHRF(word_order=2).corpus_score(preds, [refs]).score / 100
    assert metrics.chrf(preds, refs) == pytest.approx(expected, abs=1e-12)
    assert metrics.chrf(refs, refs) == pytest.approx(1.0)


def test_validation_gate_and_eval_score_alike() -> None:
    """Training validation, the export gate and `distill eval` give one number per metric."""
    from distill.evaluation import metrics as eval_metrics
    from exports.gate import quality

    preds, refs = ["08/20/2010 ", "03/03/1999", "x"], ["08/20/2010", "03/03/1998", "y"]
    gate = quality(preds, refs)
    # the gate rounds its report to 5 decimals
    assert gate["exact_match"] == pytest.approx(
        eval_metrics.exact_match(preds, refs).score, abs=1e-5
    )
    assert gate["chrf"] == pytest.approx(eval_metrics.chrf(preds, refs).score, abs=1e-5)
    assert gate["exact_match"] == pytest.approx(metrics.exact_match(preds, refs), abs=1e-5)


def test_no_other_copy_of_the_metrics() -> None:
    """sacrebleu is imported in one place only (common/metrics.py)."""
    users = [
        p.relative_to(ROOT).as_posix()
        for pkg in ("distill", "teachers", "students", "exports")
        for p in (ROOT / pkg).rglob("*.py")
        if "from sacrebleu" in p.read_text(encoding="utf-8")
    ]
    assert users == []


def test_student_meta_round_trip_and_missing_key(tmp_path: Path) -> None:
    meta = StudentMeta("{instruction}: {input}", 101, 0, 102, instruction="Copy.", task_name="t")
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path) == meta
    assert meta.source_text("x") == "Copy.: x"
    data = json.loads((tmp_path / "distill.json").read_text())
    del data["eos_token_id"]
    (tmp_path / "distill.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"distill.json: missing key 'eos_token_id'"):
        read_meta(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_meta(tmp_path / "nowhere")


def _project_imports(path: Path) -> set[str]:
    """Top-level project packages a module imports (anywhere in it, lazy imports included)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return {n.split(".")[0] for n in names} & {
        "common",
        "distill",
        "teachers",
        "students",
        "exports",
    }


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("common", {"common"}),
        ("teachers", {"common", "teachers"}),
        ("students", {"common", "students"}),
        ("exports", {"common", "exports"}),
    ],
)
def test_layers_import_only_downwards(package: str, allowed: set[str]) -> None:
    for path in (ROOT / package).rglob("*.py"):
        assert _project_imports(path) <= allowed, path.relative_to(ROOT)
