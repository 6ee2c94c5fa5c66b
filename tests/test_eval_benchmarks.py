"""Benchmark helpers: ctparse labels turned into our output format, the paired student-teacher CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from data_loaders import load_temporal, normalise_ctparse, temporal_input


def test_normalise_ctparse_formats() -> None:
    assert normalise_ctparse("Time[]{2018-03-16 X:X (X/X)}") == "2018-03-16"
    assert normalise_ctparse("Time[]{2019-01-01 19:25 (X/X)}") == "2019-01-01 19:25"
    assert normalise_ctparse("Time[]{2018-03-12 X:X (X/morning)}") == "2018-03-12 morning"
    assert (
        normalise_ctparse("Interval[]{2017-03-12 18:40 (X/X) - 2017-03-12 19:45 (X/X)}")
        == "2017-03-12 18:40 to 2017-03-12 19:45"
    )
    # partial or open values cannot be checked against one string: dropped
    assert normalise_ctparse("Time[]{X-01-X X:X (X/X)}") is None
    assert normalise_ctparse("Interval[]{2018-03-12 10:00 (X/X) - None}") is None
    assert normalise_ctparse("Duration[]{30 minutes}") is None


def test_temporal_input_names_the_weekday() -> None:
    assert (
        temporal_input("next Friday", "2018-03-07T12:43")
        == "reference: 2018-03-07 12:43 (Wednesday) | text: next Friday"
    )


def test_load_temporal_is_english_unique_and_seeded() -> None:
    pytest.importorskip("ctparse")
    rows = load_temporal()
    assert len(rows) > 500
    assert len({r["input"] for r in rows}) == len(rows)
    texts = " ".join(r["input"].split("| text: ")[1].lower() for r in rows)
    for german in ("morgen", "uhr ", "nächste", "dienstag", "ä", "ü"):
        assert german not in texts
    assert rows == load_temporal()  # same order every time


def test_paired_diff_counts_and_bounds_the_student_minus_teacher_difference() -> None:
    """Exact on hand-made pairs: the mean difference in points, who alone got which right, and
    a CI that collapses to the difference when every pair differs the same way."""
    from student_vs_teacher import paired_diff

    mixed = paired_diff([1, 0, 0, 1, 1], [1, 1, 0, 0, 1])
    assert mixed["diff"] == 0.0 and (mixed["student_only"], mixed["teacher_only"]) == (1, 1)
    low, high = mixed["ci95"]
    assert -60.0 <= low < 0.0 < high <= 60.0  # resampling 5 pairs: at most +-3/5 either way
    better = paired_diff([0, 0, 1, 1], [1, 1, 1, 1])
    assert better["diff"] == 50.0 and better["student_only"] == 2 and better["teacher_only"] == 0
    same = paired_diff([0.5, 1.0], [1.0, 1.5])
    assert same == {"diff": 50.0, "ci95": [50.0, 50.0], "student_only": 2, "teacher_only": 0}


def test_diff_cell_writes_one_paired_difference_the_way_every_benchmark_table_does() -> None:
    """`+d [lo, hi]` to one decimal with signs; sign=-1 turns it round (bounds re-ordered);
    no difference gives the placeholder the table asks for."""
    from student_vs_teacher import diff_cell

    d = {"diff": 2.67, "ci95": [-0.33, 5.0]}
    assert diff_cell(d) == "+2.7 [-0.3, +5.0]"
    assert diff_cell(d, sign=-1) == "-2.7 [-5.0, +0.3]"
    assert diff_cell({"diff": 0.0, "ci95": [0.0, 0.0]}) == "+0.0 [+0.0, +0.0]"
    assert diff_cell(None) == "-" and diff_cell({}, missing="") == ""


def test_the_train_flags_of_student_vs_teacher_reach_distill_train(
    tmp_path: Path, monkeypatch
) -> None:
    """`--min-label-prob 0.6 --train-seed 1 --epochs 2 --metric-for-best chrf` train the student
    with exactly those settings (the data and the export already exist, so only the train stage
    runs); a flag not given keeps train's default."""
    import student_vs_teacher as svt

    from distill.stages import train as train_stage

    seen = []
    monkeypatch.setattr(train_stage, "train_model", lambda task, cfg, data, model: seen.append(cfg))
    (tmp_path / "test.jsonl").write_text('{"input": "a", "output": "positive"}\n')
    for done in ("data/manifest.json", "onnx/export_report.json"):
        (tmp_path / done).parent.mkdir(parents=True)
        (tmp_path / done).write_text("{}")
    sizes = svt.Sizes(test=1, generate=10, epochs=2, latency_samples=1)
    options = {
        "min_label_prob": 0.6,
        "seed": 1,
        "soft_label_weight": None,
        "metric_for_best": "chrf",
    }
    svt.run_pipeline("sentiment", sizes, tmp_path, "embedded", "label", options)
    svt.run_pipeline("sentiment", sizes, tmp_path, "embedded", "label", {})
    got = [
        (c.min_label_prob, c.seed, c.epochs, c.soft_label_weight, c.metric_for_best) for c in seen
    ]
    assert got == [(0.6, 1, 2, 0.0, "chrf"), (0.0, 0, 2, 0.0, "auto")]


def test_student_vs_teacher_holds_no_test_split_out_of_the_teachers_labels(
    tmp_path: Path, monkeypatch
) -> None:
    """As `distill run --test` does: the table is scored on the real test rows, so generate is
    asked for no test split (every accepted label trains or validates), labels the pool's
    inputs greedily with the test inputs excluded."""
    import student_vs_teacher as svt

    from distill.stages import generate as generate_stage

    seen = []
    monkeypatch.setattr(
        generate_stage, "generate_data", lambda *a, **k: seen.append((a[1], k["exclude_inputs"]))
    )
    (tmp_path / "test.jsonl").write_text('{"input": "a", "output": "positive"}\n')
    for done in ("model/distill.json", "onnx/export_report.json"):
        (tmp_path / done).parent.mkdir(parents=True)
        (tmp_path / done).write_text("{}")
    sizes = svt.Sizes(test=1, generate=10, epochs=2, latency_samples=1)
    svt.run_pipeline("sentiment", sizes, tmp_path, "embedded", "label", {})
    ((cfg, excluded),) = seen
    assert (cfg.test_fraction, cfg.min_test_examples) == (0.0, 0)
    assert (cfg.mode, cfg.votes, cfg.label_temperature, cfg.num_examples) == ("label", 1, 0.0, 10)
    assert excluded == ["a"]


def test_extra_inputs_join_the_pool_after_the_labelled_rows(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """`--extra-inputs` appends the task's extra real inputs to unlabelled.jsonl after the
    labelled rows outside the test set (gold outputs dropped), leaves test.jsonl as it was and
    records the count; a task without extra inputs is a usage error (exit code 2)."""
    import json

    import student_vs_teacher as svt

    rows = [{"input": f"in{i}", "output": f"out{i}"} for i in range(5)]
    monkeypatch.setattr(svt, "load", lambda task: rows)
    monkeypatch.setattr(svt, "load_extra", lambda task: ["ex0", "ex1"])
    seen = {}

    def stop(task, sizes, run_dir, teacher, mode, options):
        seen.update(options)
        raise SystemExit(0)

    monkeypatch.setattr(svt, "run_pipeline", stop)
    with pytest.raises(SystemExit):
        svt.main(["--task", "address", "--test", "2", "--extra-inputs", "--runs", str(tmp_path)])
    run = tmp_path / "address-t2"

    def lines(name: str) -> list[dict]:
        return [json.loads(x) for x in (run / name).read_text().splitlines()]

    assert lines("unlabelled.jsonl") == [{"input": x} for x in ["in2", "in3", "in4", "ex0", "ex1"]]
    assert lines("test.jsonl") == rows[:2]
    assert seen["extra_inputs"] == 2
    with pytest.raises(SystemExit) as stopped:
        svt.main(["--task", "trec", "--extra-inputs", "--runs", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--extra-inputs: no extra inputs for trec" in capsys.readouterr().err
