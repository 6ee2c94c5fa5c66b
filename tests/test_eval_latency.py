"""Latency is service time at concurrency 1 for teachers as for students, never queueing."""

from __future__ import annotations

import json
import time
from pathlib import Path

from distill.evaluation.config import EvalConfig
from distill.evaluation.engine import evaluate_target
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer

SERVICE_S = 0.1
TASK = TaskSpec("echo", "Repeat the input.", (Demonstration("a", "a"),))


def one_slot_server_answer(body: dict, index: int) -> str:
    """Blocks the server's event loop: like a teacher with one decoding slot, requests queue."""
    time.sleep(SERVICE_S)
    return body["messages"][-1]["content"]


def test_teacher_latency_is_service_time_not_queueing(tmp_path: Path) -> None:
    data = tmp_path / "test.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"x{i}", "output": f"x{i}"}) + "\n" for i in range(24))
    )
    with FakeOpenAIServer(one_slot_server_answer) as server:
        report = evaluate_target(
            f"teacher:{server.base_url}",
            data,
            task=TASK,
            cfg=EvalConfig(metrics=["em"], bootstrap_samples=0, latency_samples=6),
            teacher_cfg=TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=12),
        )
        assert len(server.requests) == 24  # the timed sample is not asked twice
    lat = report["latency_ms"]
    assert lat["samples"] == 6 and lat["mode"] == "concurrency 1"
    # 12 in flight on one slot would wait ~12 x 100 ms; one at a time is the 100 ms service.
    assert lat["p50"] < 3 * SERVICE_S * 1000
    assert report["metrics"]["em"]["score"] == 1.0
    # throughput: the concurrent pass on one slot serves ~1 / SERVICE_S inputs a second
    assert report["throughput_per_s"] < 1.5 / SERVICE_S
