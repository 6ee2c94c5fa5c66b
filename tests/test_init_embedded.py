"""The teacher paths with the real embedded teacher (Qwen2.5-Coder-0.5B via llama.cpp): slow."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.task import load_task

pytestmark = pytest.mark.slow


def test_embedded_teacher_splits_a_prose_prompt(tmp_path):
    prompt = (
        "I need a model that rewrites dates as ISO dates. When I give it 20.08.2010 I want "
        "2010-08-20 back, and 1.2.2003 should come out as 2003-02-01."
    )
    out = tmp_path / "task.toml"
    assert main(["init", prompt, "--out", str(out), "--teacher", "embedded"]) == 0
    spec = load_task(out)
    # Demonstrations are validated as copied from the prompt, so only these two can come back.
    assert [(d.input, d.output) for d in spec.demonstrations] == [
        ("20.08.2010", "2010-08-20"),
        ("1.2.2003", "2003-02-01"),
    ]
    assert "iso" in spec.instruction.lower()


def test_embedded_teacher_hyde_for_a_translation_task(tmp_path, capsys):
    task = tmp_path / "task.toml"
    task.write_text(
        'name = "t"\ninstruction = "Translate the German sentence into English."\n'
        '[[demonstrations]]\ninput = "Guten Morgen"\noutput = "Good morning"\n',
        encoding="utf-8",
    )
    assert main(["retrieve-model", "--task", str(task), "--json", "--teacher", "embedded"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["hyde"] and res["queries"][1] == res["hyde"].strip()
    print(res["hyde"])
    # A small teacher's description varies: any German-English capable translation model
    # first is right, and the dedicated German-to-English model is in the top 3.
    translators = {"Helsinki-NLP/opus-mt-de-en", "facebook/mbart-large-50", "google/mt5-small"}
    assert res["ranking"][0]["name"] in translators
    assert "Helsinki-NLP/opus-mt-de-en" in [r["name"] for r in res["ranking"][:3]]
