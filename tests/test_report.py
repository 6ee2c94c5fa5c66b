"""RUN/report.html and `distill report`: one self-contained page from a run directory.

The run directory is built here the way the pipeline builds it: data/ by the real generator
against the loopback teacher (a 4-label task whose teacher also answers outside the label set,
so the manifest has label counts and rejections), report.json in the shape `distill run` writes
(evaluation reports with their examples), model/metrics.json as training writes it, and
learning_curve.json written by benchmarks/learning_curve.py's own `write`.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_generate_classes import NEWS, news_responder, teacher

from distill.cli import main
from distill.evaluation.reports import compare_markdown, worst_examples
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.stages.report import REPORT_HTML, write_run_report
from teachers.testing import FakeOpenAIServer

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def metric(score: float, low: float, high: float) -> dict:
    return {"score": score, "ci95": [low, high]}


def example(index: int, inp: str, ref: str, pred: str) -> dict:
    em = float(pred == ref)
    return {"index": index, "input": inp, "reference": ref, "prediction": pred,
            "scores": {"em": em, "chrf": 1.0 if em else 0.1 * index}}  # fmt: skip


EXAMPLES = [
    ("Leaders meet at the summit", "world", "world"),
    ("<b>Striker</b> & keeper sign new deals", "sports", "business"),  # markup must be escaped
    ("Chip maker unveils a faster processor", "sci/tech", "business"),
    ("Oil prices climb again", "business", "business"),
]


def eval_report(target: str, kind: str, name: str, em: dict, chrf: dict, **extra) -> dict:
    """One target's report as distill.evaluation writes it (examples kept, as in report.json)."""
    preds = {"onnx": ["world", "business", "business", "business"],
             "model": ["world", "business", "sports", "business"],
             "teacher": ["world", "sports", "sci/tech", "world"]}[kind]  # fmt: skip
    return {
        "target": target, "kind": kind, "name": name, "task_name": "news",
        "data": "RUN/data/test.jsonl", "n": 4, "created": "2026-12-01T10:00:00+00:00",
        "metrics": {"em": em, "chrf": chrf},
        "latency_ms": extra.get("latency"), "throughput_per_s": 12.5, "wall_s": 3.2,
        "tokens_per_1k_inputs": extra.get("tokens"), "cost_usd_per_1k_inputs": extra.get("cost"),
        "size_bytes": extra.get("size_bytes"), "size_mb": extra.get("size_mb"), "failures": 0,
        "settings": {"metrics": ["em", "chrf"]}, "extra": {},
        "examples": [example(i, inp, ref, p)
                     for i, ((inp, ref, _), p) in enumerate(zip(EXAMPLES, preds, strict=True))],
    }  # fmt: skip


def latency(p50: float, p95: float) -> dict:
    return {"p50": p50, "p95": p95, "mean": p50, "samples": 4, "mode": "batch 1"}


def write_eval(run: Path) -> list[dict]:
    reports = [
        eval_report(str(run / "onnx"), "onnx", "student ONNX int8 (onnx)",
                    metric(0.615, 0.55, 0.68), metric(0.7234, 0.6812, 0.7701),
                    latency=latency(83.5, 88.7), size_bytes=78_400_000, size_mb=74.8),
        eval_report(str(run / "model"), "model", "student torch (model)",
                    metric(0.6, 0.5, 0.7), metric(0.7, 0.65, 0.75),
                    latency=latency(358.1, 371.8), size_bytes=205_600_000, size_mb=196.1),
        eval_report("teacher:embedded", "teacher", "teacher embedded",
                    metric(0.65, 0.58, 0.72), metric(0.8, 0.75, 0.85),
                    latency=latency(1871.5, 2063.1), tokens={"prompt": 300_000.0,
                    "completion": 2000.0}, cost=0.0),
    ]  # fmt: skip
    payload = {"test": str(run / "data" / "test.jsonl"), "reports": reports}
    (run / "report.json").write_text(json.dumps(payload, indent=2))
    return reports


def write_training(run: Path) -> None:
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 1.5 / e,
                "val_exact_match": 0.2 * e, "val_chrf": 0.25 * e} for e in (1, 2, 3)]  # fmt: skip
    metrics = {"train_examples": 32, "epochs_run": 3, "epochs_planned": 3, "global_steps": 6,
               "early_stopped": False, "best_epoch": 3, "best": history[-1], "history": history}  # fmt: skip
    (run / "model").mkdir()
    (run / "model" / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: real generated data, evaluation and training records."""
    run = tmp_path_factory.mktemp("report") / "run"
    with FakeOpenAIServer(news_responder) as server:  # answers the label each request asks
        cfg = GenerateConfig(num_examples=40, pairs_per_request=3, label_requests=True)
        run_generate(NEWS, cfg, teacher(server), run / "data")
    write_eval(run)
    write_training(run)
    return run


class _Refs(HTMLParser):
    """Every URL-bearing attribute, every element name and every CSS text of a page."""

    URL_ATTRS = frozenset(
        {"src", "href", "srcset", "action", "formaction", "data", "poster", "background"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in self.URL_ATTRS:
                self.refs.append(value or "")
            if name == "style":
                self.css.append(value or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)


def parse(page: str) -> _Refs:
    refs = _Refs()
    refs.feed(page)
    refs.close()
    return refs


def test_the_page_holds_the_tables_exact_numbers(run_dir: Path) -> None:
    page = (write_run_report(run_dir)).read_text(encoding="utf-8")
    reports = json.loads((run_dir / "report.json").read_text())["reports"]
    # every quality cell of report.md's table, verbatim: the numbers are formatted once
    md_rows = [line.split(" | ") for line in compare_markdown(reports).splitlines()[2:]]
    for cells in md_rows:
        for cell in cells[2:4]:  # em and chrf with their CIs
            assert f'<td class="num">{cell}</td>' in page
    for text in ("61.5 [55.0, 68.0]", "72.3 [68.1, 77.0]", "65.0 [58.0, 72.0]"):
        assert text in page
    assert '<td class="num">83.5</td>' in page and '<td class="num">1871.5</td>' in page
    assert '<td class="num">22.4x</td>' in page  # 1871.5 / 83.5
    assert '<td class="num">5.2x</td>' in page  # 1871.5 / 358.1
    assert '<td class="num">74.8</td>' in page and '<td class="num">196.1</td>' in page
    # at a glance: the shipped student against the teacher in one line
    assert "student ONNX int8 (onnx): em 61.5 [55.0, 68.0] vs teacher 65.0 [58.0, 72.0]; " in page
    assert "22.4x faster at p50; 74.8 MB" in page
    # the generated split is the test set: the teacher row is its self-agreement
    assert "only 4 test rows (&lt; 50)" in page and "self-agreement" in page


def test_the_page_is_self_contained(run_dir: Path) -> None:
    page = write_run_report(run_dir).read_text(encoding="utf-8")
    refs = parse(page)
    assert refs.refs, "the page has its charts"
    for ref in refs.refs:
        assert ref.startswith(("data:", "#")), ref[:80]
    for css in refs.css:
        assert "@import" not in css
        for url in re.findall(r"url\(\s*['\"]?([^'\")]*)", css):
            assert url.startswith(("data:", "#")), url
    assert not refs.tags & {"script", "link", "iframe", "object", "embed", "base", "frame"}
    # no "//" inside any tag once the data: URIs (base64 has slashes) are taken out; the
    # loopback teacher's URL is named in the text, never referenced
    tags = re.findall(r"<[^>]*>", re.sub(r"data:[^\"]*", "", page))
    assert tags and not [t for t in tags if "//" in t]
    assert "teacher http://127.0.0.1:" in page
    images = [r for r in refs.refs if r.startswith("data:")]
    assert len(images) == 2  # quality and latency, training curve (no learning curve yet)
    for ref in images:
        head, data = ref.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_page_shows_labels_and_rejections(run_dir: Path) -> None:
    page = write_run_report(run_dir).read_text(encoding="utf-8")
    manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    assert manifest["counts"]["per_label"]["accepted"] == dict.fromkeys(
        ["world", "sports", "business", "sci/tech"], 10
    )
    assert manifest["counts"]["rejected_by_reason"] == {"out_of_label_set": 20}
    labels = page[page.index('id="labels"') : page.index('id="rejected"')]
    for label in ("world", "sports", "business", "sci/tech"):
        assert f'<td>{label}</td><td class="num">10</td><td class="num">25.0%</td>' in labels
    rejected = page[page.index('id="rejected"') :]
    assert '<td>out_of_label_set</td><td class="num">20</td><td class="num">100.0%</td>' in rejected
    assert "40 examples accepted of 40 asked for" in page


def test_the_page_says_what_label_calibration_decided(run_dir: Path, tmp_path: Path) -> None:
    """A manifest whose `calibration` block has a prior (auto declined, as on the quick start):
    the Data section gives the console's line and says which labels the splits hold; a block
    without a prior (a synthesize run has no log-probabilities) adds nothing."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    path = copy / "data" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert "prior" not in manifest["calibration"]
    assert 'id="calibration"' not in write_run_report(copy).read_text(encoding="utf-8")
    manifest["calibration"] = {
        "method": "auto", "applied": False,
        "why": "the calibrated labels are spread less evenly than the teacher's "
               "(evenness 0.64 -> 0.53), so the prior is not what skews them",
        "prior": {"world": 0.4, "sports": 0.2, "business": 0.2, "sci/tech": 0.2},
        "calibrated": 40, "changed": 6, "evenness_before": 0.64, "evenness_after": 0.53,
    }  # fmt: skip
    path.write_text(json.dumps(manifest))
    page = write_run_report(copy).read_text(encoding="utf-8")
    assert (
        '<p id="calibration">label calibration (auto): not applied (the calibrated labels are '
        "spread less evenly than the teacher&#x27;s (evenness 0.64 -&gt; 0.53), so the prior is "
        "not what skews them); the splits hold the teacher&#x27;s own labels.</p>"
    ) in page


def test_the_worst_errors_are_those_eval_shows(run_dir: Path) -> None:
    page = write_run_report(run_dir, show_errors=2).read_text(encoding="utf-8")
    errors = page[page.index('id="errors"') :]
    assert "<code>distill eval --show-errors 2</code>" in errors
    reports = json.loads((run_dir / "report.json").read_text())["reports"]
    onnx = errors[: errors.index("for student torch")]
    shown = worst_examples(reports[0], 2)
    assert [e["index"] for e in shown] == [1, 2]
    for e in reports[0]["examples"]:
        cell = f'<td class="num">{e["index"]}</td>'
        assert (cell in onnx) == (e in shown)
    # the input carries markup: shown as text, never as HTML
    assert "&lt;b&gt;Striker&lt;/b&gt; &amp; keeper" in onnx and "<b>Striker" not in page
    assert "worst 2 of 4 for teacher embedded" in errors
    none = write_run_report(run_dir, show_errors=0).read_text(encoding="utf-8")
    assert 'id="errors"' not in none


def test_learning_curve_from_the_benchmark(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmarks/learning_curve.py leaves RUN/learning_curve.json; the report then shows it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import learning_curve

    monkeypatch.setattr(learning_curve, "RESULTS", tmp_path / "results")
    points = {10: {"score": 0.5, "ci95": [0.25, 0.75], "steps": 3},
              40: {"score": 0.625, "ci95": [0.5, 0.875], "steps": 9}}  # fmt: skip
    learning_curve.write(run_dir, "em", points)
    try:
        assert (tmp_path / "results" / f"learning_curve_{run_dir.name}.png").is_file()
        page = write_run_report(run_dir).read_text(encoding="utf-8")
        curve = page[page.index('id="learning-curve"') : page.index('id="training"')]
        assert (
            '<td class="num">40</td><td class="num">9</td><td class="num">62.5 [50.0, 87.5]</td>'
            in curve
        )
        assert curve.count('src="data:image/png;base64,') == 1
    finally:
        (run_dir / "learning_curve.json").unlink()
        sys.modules.pop("learning_curve", None)


def test_the_benchmark_chart_is_the_reports_chart(run_dir: Path, tmp_path: Path) -> None:
    """benchmarks/student_vs_teacher.py writes the PNG the report inlines (one plotting code)."""
    from distill.evaluation.plots import quality_latency_png

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from student_vs_teacher import chart
    finally:
        sys.path.remove(str(BENCHMARKS))
    reports = json.loads((run_dir / "report.json").read_text())["reports"]
    chart(reports, tmp_path / "c.png", "news")
    assert (tmp_path / "c.png").read_bytes() == quality_latency_png(reports, "news", ("em", "chrf"))


def test_a_run_without_evaluation_leaves_sections_out(run_dir: Path, tmp_path: Path) -> None:
    """Only data/ so far (generate finished, nothing else): what exists is shown."""
    partial = tmp_path / "partial"
    (partial / "data").mkdir(parents=True)
    manifest = (run_dir / "data" / "manifest.json").read_text()
    (partial / "data" / "manifest.json").write_text(manifest)
    page = write_run_report(partial).read_text(encoding="utf-8")
    assert "not evaluated yet" in page and 'id="labels"' in page
    for absent in ('id="learning-curve"', 'id="training"', 'id="errors"', "<img"):
        assert absent not in page


def test_distill_report_command(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / REPORT_HTML).write_text("old")
    assert main(["report", str(run_dir), "--show-errors", "1"]) == 0
    assert capsys.readouterr().out == f"wrote {run_dir / REPORT_HTML}\n"
    page = (run_dir / REPORT_HTML).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "worst 1 of 4" in page
    assert not list(run_dir.glob(f".{REPORT_HTML}.*"))  # written under a temp name, renamed


@pytest.mark.parametrize("case", ["missing", "not_a_run", "file", "broken_json", "negative"])
def test_distill_report_bad_input_is_one_line(
    case: str, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, argv = tmp_path / "run", []
    if case == "not_a_run":
        target.mkdir()
    elif case == "file":
        target.write_text("x")
    elif case == "broken_json":
        (target / "data").mkdir(parents=True)
        (target / "data" / "manifest.json").write_text("{not json")
    elif case == "negative":
        target, argv = run_dir, ["--show-errors", "-1"]
    assert main(["report", str(target), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distill report: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "run" / REPORT_HTML).exists()
