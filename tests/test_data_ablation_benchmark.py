"""benchmarks/data_ablation.py: each arm changes exactly its named settings, the cache seeding,
and the table it writes."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import data_ablation  # noqa: E402

from distill.task import load_task  # noqa: E402


@pytest.mark.parametrize("arm", [a for a in data_ablation.ARMS if a != data_ablation.BASELINE])
def test_each_arm_differs_from_the_baseline_in_exactly_its_own_settings(arm: str) -> None:
    """Every field of the arm's GenerateConfig equals the baseline arm's except the ones the arm
    names, which take the arm's values; no arm holds a generated test split out."""
    task = load_task(BENCH / "tasks" / "sentiment.toml")
    base = dataclasses.asdict(data_ablation.generate_config(task, data_ablation.BASELINE, 300))
    # the baseline pins what was measured, the defaults of the time
    assert base["label_requests"] is True and base["few_shot_accepted"] == 3
    assert base["synth_max_tokens"] == 512
    got = dataclasses.asdict(data_ablation.generate_config(task, arm, 300))
    changed = {k for k in got if got[k] != base[k]}
    assert changed == set(data_ablation.ARMS[arm])
    assert {k: got[k] for k in changed} == data_ablation.ARMS[arm]
    assert (got["num_examples"], got["test_fraction"], got["min_test_examples"]) == (300, 0.0, 0)


def test_seed_cache_copies_the_baseline_cache_once_and_never_overwrites(tmp_path: Path) -> None:
    """A new arm starts from the baseline arm's teacher cache; an arm's own cache is kept."""
    default, arm = tmp_path / "default", tmp_path / "arm"
    (default / "data").mkdir(parents=True)
    (default / "data" / "teacher_cache.sqlite").write_bytes(b"default")
    data_ablation.seed_cache(arm, default)
    assert (arm / "data" / "teacher_cache.sqlite").read_bytes() == b"default"
    (arm / "data" / "teacher_cache.sqlite").write_bytes(b"own")
    data_ablation.seed_cache(arm, default)
    assert (arm / "data" / "teacher_cache.sqlite").read_bytes() == b"own"


def test_score_counts_exact_matches_and_the_answer_mix() -> None:
    """3 of 4 answers right; macro-F1 over the references' labels; two distinct answers."""
    test = [{"input": str(i), "output": o} for i, o in enumerate(["a", "a", "b", "b"])]
    s = data_ablation.score(["a", "a", "b", "a"], test)
    assert s["em"]["value"] == pytest.approx(0.75)
    assert s["em_per_example"] == [1.0, 1.0, 1.0, 0.0]
    assert s["macro_f1"]["value"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert (s["distinct_answers"], s["answers"]) == (2, {"a": 3, "b": 1})


def test_markdown_has_one_row_per_arm_with_the_paired_difference() -> None:
    """The baseline row has no difference cell; another arm's shows its paired CI and label mix."""
    student = {
        "em": {"value": 0.5, "ci": [0.4, 0.6]},
        "macro_f1": {"value": 0.3, "ci": [0.2, 0.4]},
        "distinct_answers": 3,
    }
    data = {
        "requests": 100,
        "yield": 0.5,
        "duplicate_rate": 0.25,
        "train_labels": {"x": 2},
        "accepted": 300,
    }
    timed = {**data, "completion_tokens": 12654, "generate_seconds": 352.6}
    arms = {
        "label-requests": {"data": timed, "student": student},
        "no-mixing": {
            "data": data,
            "student": student,
            "vs_baseline": {"diff": -2.0, "ci95": [-5.5, 1.5]},
        },
    }
    meta = {"task": "t", "examples": 300, "test": 500, "teacher": None}
    table = data_ablation.markdown(meta, arms).splitlines()
    rows = [
        table.index(x) for x in table if x.startswith(("| label-requests | -", "| no-mixing |"))
    ]
    rows = [table[i] for i in rows]
    assert (
        rows[0]
        == "| label-requests | - | 100 | 12,654 | 353 | 0.50 | 0.25 | x 2 | 50.0 [40.0, 60.0] |  "
        "| 30.0 | 3 |"
    )
    assert rows[1].startswith("| no-mixing | few_shot_accepted=0 | 100 | - | - |")
    free_text = {**data, "train_labels": {f"out {k}": 1 for k in range(9)}}
    arms["no-mixing"]["data"] = free_text  # 9 distinct outputs: counted, not listed
    row = next(x for x in data_ablation.markdown(meta, arms).splitlines() if "| 9 distinct" in x)
    assert row.startswith("| no-mixing |") and "out 0" not in row
    assert "| -2.0 [-5.5, +1.5] |" in rows[1]


def test_rejections_table_has_one_column_per_filter_and_the_rest_summed() -> None:
    """Each filter's rejections in its own column (0 where it rejected nothing), everything else
    (unparsable answers, votes without a majority) in "other"."""
    rejected = {
        "duplicate": 20,
        "leak": 56,
        "near_duplicate": 14,
        "unparsable": 8,
        "low_agreement": 1,
    }
    arms = {
        "label-requests": {"data": {"accepted": 300, "rejected_by_reason": rejected}},
        "no-mixing": {"data": {"accepted": 290, "rejected_by_reason": {}}},
    }
    lines = data_ablation.rejections_markdown(arms)
    assert lines[1] == (
        "| arm | accepted | duplicate | near_duplicate | format_mismatch | invalid_date "
        "| out_of_label_set | label_over_share | leak | other |"
    )
    assert lines[3] == "| label-requests | 300 | 20 | 14 | 0 | 0 | 0 | 0 | 56 | 9 |"
    assert lines[4] == "| no-mixing | 290 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |"
    assert rejected["unparsable"] == 8  # the arm's record is left as it was


def test_earlier_results_keep_the_arms_not_rerun_and_the_teacher_score(tmp_path: Path) -> None:
    """Arms recorded by an earlier run of the same size stay in the table (and the teacher's
    score when this run skips it); a run of another size, or an arm no longer defined, does not."""
    teacher = {"em": {"score": 0.6}}
    old = {
        "meta": {"task": "t", "examples": 300, "test": 500, "teacher": teacher},
        "arms": {"label-requests": {"data": 1}, "gone-arm": {"data": 2}},
    }
    path = tmp_path / "data_ablation_t.json"
    path.write_text(json.dumps(old))
    meta = {"task": "t", "examples": 300, "test": 500, "teacher": None}
    got_meta, arms = data_ablation.earlier_results(path, meta)
    assert arms == {"label-requests": {"data": 1}} and got_meta["teacher"] == teacher
    fresh = {**meta, "teacher": {"em": {"score": 0.5}}}
    assert data_ablation.earlier_results(path, fresh)[0] == fresh
    assert data_ablation.earlier_results(path, {**meta, "examples": 100}) == (
        {**meta, "examples": 100},
        {},
    )
    assert data_ablation.earlier_results(tmp_path / "none.json", meta) == (meta, {})


def _arm(requests: int, tokens: int, yld: float, em: list[float]) -> dict:
    """An arm record with what comparisons and markdown read."""
    return {
        "data": {
            "requests": requests,
            "completion_tokens": tokens,
            "yield": yld,
            "duplicate_rate": 0.1,
            "train_labels": {"x": 1},
            "accepted": 4,
        },
        "student": {
            "em": {"value": sum(em) / len(em), "ci": [0.0, 1.0]},
            "macro_f1": {"value": 0.5, "ci": [0.0, 1.0]},
            "distinct_answers": 2,
            "em_per_example": em,
        },
    }


def test_comparisons_pair_each_capped_arm_with_its_first_twin_that_ran(tmp_path: Path) -> None:
    """The seed-0 cap arm is paired with "no-mixing" when its first twin did not run; the ratios
    are of the arms' own requests and completion tokens; `--rewrite` writes them to the JSON and
    a second table from the stored arms alone; the seed-1 arm, whose twin is absent, is left out."""
    cap = "no-label-requests-no-mixing-synth-cap"
    arms = {
        "no-mixing": _arm(80, 10000, 0.6, [1.0, 0.0, 0.0, 0.0]),
        cap: _arm(100, 9000, 0.7, [1.0, 1.0, 1.0, 0.0]),
        cap + "-seed1": _arm(90, 9500, 0.7, [1.0, 1.0, 0.0, 0.0]),
    }
    (got,) = data_ablation.comparisons(arms)
    assert got["arm"] == cap and got["against"] == "no-mixing"
    assert got["em_diff"] == 50.0 and got["requests_ratio"] == 1.25
    assert got["completion_tokens_ratio"] == 0.9 and got["yield"] == [0.6, 0.7]
    path = tmp_path / "data_ablation_t.json"
    meta = {"task": "t", "examples": 4, "test": 4, "teacher": None}
    path.write_text(json.dumps({"meta": meta, "arms": arms}))
    assert data_ablation.rewrite(path) == 0
    assert json.loads(path.read_text())["comparisons"] == [got]
    table = path.with_suffix(".md").read_text().splitlines()
    row = next(x for x in table if x.startswith(f"| {cap} | no-mixing |"))
    assert row == f"| {cap} | no-mixing | +50.0 [{got['em_ci95'][0]:+.1f}, " + (
        f"{got['em_ci95'][1]:+.1f}] | x1.25 | x0.90 | 0.60 -> 0.70 |"
    )
    assert data_ablation.rewrite(tmp_path / "none.json") == 2
