"""benchmarks/copy_decoding.py: the three decodings of one exported student (a tiny T5), scored
against gold and paired with the teacher's scores; a run without its files is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import copy_decoding  # noqa: E402
import tiny_models  # noqa: E402

from common.copy_decoding import word_bounds  # noqa: E402


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_variants_decode_the_same_weights_three_ways(tmp_path, monkeypatch) -> None:
    """Free answers are not all spans; token answers are runs of the input's tokens; word
    answers are runs that start and end at word bounds, and equal what the shipped runtime
    answers; each variant's EM is its exact matches against gold, paired with the teacher's."""
    from exports.runtime import OnnxSeq2Seq

    monkeypatch.setattr(copy_decoding, "RESULTS", tmp_path / "results")
    run = tmp_path / "run"
    _, onnx = tiny_models.exported_tiny_with(run, "t5", copy_input=True)
    inputs = tiny_models.random_inputs(12, seed=5)
    rt = OnnxSeq2Seq(onnx, threads=1)
    word = rt.generate(inputs, max_new_tokens=64)
    gold = [w if i % 2 == 0 else "nothing like it" for i, w in enumerate(word)]  # 6 right
    _write_jsonl(
        run / "test.jsonl", [{"input": x, "output": g} for x, g in zip(inputs, gold, strict=True)]
    )
    teacher = [
        {"input": x, "prediction": "?", "scores": {"em": float(i < 3)}}
        for i, x in enumerate(inputs)
    ]
    _write_jsonl(run / "eval" / "teacher.predictions.jsonl", teacher)

    assert copy_decoding.main(["--run", str(run), "--threads", "1"]) == 0
    res = json.loads((tmp_path / "results" / "copy_decoding_run.json").read_text())
    assert res["n"] == 12 and res["teacher_em"] == 25.0
    assert res["word"]["answers"] == word and res["word"]["em"] == 50.0
    assert res["word"]["vs_teacher"]["diff"] == 25.0
    cases = res["by_case"]
    assert sum(c["n"] for c in cases.values()) == 12
    for case, c in cases.items():
        rows = [i for i, g in enumerate(gold) if copy_decoding.case_of(g) == case]
        assert c["teacher"] == round(100 * sum(i < 3 for i in rows) / len(rows), 1)
        assert c["word"] == round(100 * sum(i % 2 == 0 for i in rows) / len(rows), 1)
    for x, answer in zip(inputs, res["word"]["answers"], strict=True):
        enc = rt.tokenizer.encode(x, add_special_tokens=False)
        ids = rt.tokenizer.encode(answer, add_special_tokens=False).ids
        starts, ends = word_bounds(enc.tokens)
        assert any(
            enc.ids[i : i + len(ids)] == ids and starts[i] and ends[i + len(ids) - 1]
            for i in range(len(enc.ids) - len(ids) + 1)
        ), (x, answer)
    for x, answer in zip(inputs, res["token"]["answers"], strict=True):
        src = rt.tokenizer.encode(x, add_special_tokens=False).ids
        ids = rt.tokenizer.encode(answer, add_special_tokens=False).ids
        assert any(src[i : i + len(ids)] == ids for i in range(len(src) - len(ids) + 1))
    assert not all(a in x for x, a in zip(inputs, res["free"]["answers"], strict=True))
    table = (tmp_path / "results" / "copy_decoding_run.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[4:]] == list(
        copy_decoding.VARIANTS
    )


def test_a_run_without_its_onnx_student_is_refused(tmp_path, capsys) -> None:
    _write_jsonl(tmp_path / "test.jsonl", [{"input": "a", "output": "a"}])
    assert copy_decoding.main(["--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'onnx'} is missing" in err
