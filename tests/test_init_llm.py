"""The teacher fallback of `distill init`, through the loopback OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.prompt_to_task.llm import validate_reply
from distill.task import load_task
from teachers.testing import FakeOpenAIServer

PROMPT = (
    "I need a model that rewrites dates as ISO dates. When I give it 20.08.2010 I want "
    "2010-08-20 back, and 1.2.2003 should come out as 2003-02-01."
)
GOOD = {
    "instruction": "Rewrite the date as an ISO date (YYYY-MM-DD).",
    "demonstrations": [
        {"input": "20.08.2010", "output": "2010-08-20"},
        {"input": "1.2.2003", "output": "2003-02-01"},
    ],
}


def _teacher_flags(server: FakeOpenAIServer) -> list[str]:
    return ["--teacher", server.base_url, "--model", "fake-model"]


def test_fallback_repairs_an_invalid_reply_and_writes_the_task(tmp_path):
    replies = ["Sure! Here is the split you asked for.", json.dumps(GOOD)]
    out = tmp_path / "task.toml"
    with FakeOpenAIServer(responder=lambda body, i: replies[min(i, 1)]) as server:
        assert main(["init", PROMPT, "--out", str(out), *_teacher_flags(server)]) == 0
        bodies, base_url = list(server.requests), server.base_url
    assert len(bodies) == 2
    assert bodies[0]["response_format"]["type"] == "json_schema"
    assert bodies[0]["temperature"] == 0.0
    assert bodies[0]["messages"][-1] == {"role": "user", "content": PROMPT}
    # The retry shows the model its reply and what was wrong with it.
    assert bodies[1]["messages"][-2]["content"] == replies[0]
    assert "no JSON object found" in bodies[1]["messages"][-1]["content"]
    spec = load_task(out)
    assert spec.instruction == GOOD["instruction"]
    assert [(d.input, d.output) for d in spec.demonstrations] == [
        ("20.08.2010", "2010-08-20"),
        ("1.2.2003", "2003-02-01"),
    ]
    assert spec.table("teacher") == {"teacher": base_url, "model": "fake-model"}
    assert "parsed with: teacher" in out.read_text()


def test_invented_examples_are_rejected_until_attempts_run_out(tmp_path, capsys):
    invented = dict(GOOD, demonstrations=[{"input": "31.12.1999", "output": "1999-12-31"}])
    with FakeOpenAIServer(responder=lambda body, i: json.dumps(invented)) as server:
        rc = main(
            [
                "init",
                PROMPT,
                "--out",
                str(tmp_path / "t.toml"),
                "--attempts",
                "2",
                *_teacher_flags(server),
            ]
        )
        assert len(server.requests) == 2
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the teacher gave no valid split after 2 attempts" in err
    assert "'31.12.1999' is not in the prompt" in err
    assert not (tmp_path / "t.toml").exists()


def test_no_llm_never_contacts_the_teacher(tmp_path):
    with FakeOpenAIServer(responder=lambda body, i: json.dumps(GOOD)) as server:
        rc = main(
            ["init", PROMPT, "--out", str(tmp_path / "t.toml"), "--no-llm", *_teacher_flags(server)]
        )
        assert server.requests == []
    assert rc == 2


def test_rules_first_teacher_untouched_when_they_succeed(tmp_path):
    with FakeOpenAIServer(responder=lambda body, i: json.dumps(GOOD)) as server:
        rc = main(
            [
                "init",
                "Upper-case it.\na -> A",
                "--out",
                str(tmp_path / "t.toml"),
                *_teacher_flags(server),
            ]
        )
        assert server.requests == []
    assert rc == 0


def test_server_without_response_format_is_asked_again_without_it(tmp_path):
    def fault(body: dict, index: int) -> str | None:
        return "400" if body.get("response_format") else None

    with FakeOpenAIServer(
        responder=lambda body, i: "```json\n" + json.dumps(GOOD) + "\n```",
        fault_fn=fault,
        error_message="response_format is not supported by this server",
    ) as server:
        assert (
            main(["init", PROMPT, "--out", str(tmp_path / "t.toml"), *_teacher_flags(server)]) == 0
        )
        formats = [b.get("response_format") for b in server.requests]
    assert formats[0]["type"] == "json_schema" and formats[-1] is None
    assert len(load_task(tmp_path / "t.toml").demonstrations) == 2


@pytest.mark.parametrize(
    "reply, problem",
    [
        ('{"instruction": "x", "demonstrations": [], "extra": 1}', "unexpected key 'extra'"),
        ('{"instruction": "", "demonstrations": []}', "'instruction' must be a non-empty string"),
        ('{"instruction": "x", "demonstrations": {}}', "'demonstrations' must be a list"),
        (
            '{"instruction": "x", "demonstrations": [{"input": "20.08.2010"}]}',
            "exactly 'input' and 'output'",
        ),
        ('{"instruction": "x", "demonstrations": [', "no JSON object found"),
        ('{"instruction": "x", "demonstrations": [}', "invalid JSON"),
    ],
)
def test_validate_reply_names_the_problem(reply, problem):
    with pytest.raises(ValueError, match=problem):
        validate_reply(reply, PROMPT)
