"""The rule-based prompt parser, the task.toml it writes, and `distill init` without a teacher."""

from __future__ import annotations

import pytest

from distill.cli import main
from distill.prompt_to_task import PromptParseError, parse_prompt, render_task_toml, slugify
from distill.prompt_to_task.language import detect_language
from distill.task import load_task

# (id, prompt, method, instruction, demonstrations)
SHAPES = [
    (
        "input-output",
        "Rewrite the date in the format MM/DD/YYYY.\n\nInput: 20.08.2010\nOutput: 08/20/2010\n\n"
        "Input: 1.2.2003\nOutput: 02/01/2003",
        "labels:input/output",
        "Rewrite the date in the format MM/DD/YYYY.",
        [("20.08.2010", "08/20/2010"), ("1.2.2003", "02/01/2003")],
    ),
    (
        "inline-input-output",
        "Classify sentiment.\nInput: I loved it Output: positive\nInput: awful Output: negative",
        "labels:input/output",
        "Classify sentiment.",
        [("I loved it", "positive"), ("awful", "negative")],
    ),
    (
        "q-a",
        "Answer the trivia question.\nQ: What is the capital of France?\nA: Paris\n"
        "Q: Who wrote Hamlet?\nA: William Shakespeare",
        "labels:question/answer",
        "Answer the trivia question.",
        [("What is the capital of France?", "Paris"), ("Who wrote Hamlet?", "William Shakespeare")],
    ),
    (
        "generic-labels",
        "Classify the sentiment of the review.\nReview: I loved it\nSentiment: positive\n"
        "Review: Terrible food\nSentiment: negative",
        "labels:review/sentiment",
        "Classify the sentiment of the review.",
        [("I loved it", "positive"), ("Terrible food", "negative")],
    ),
    (
        "arrows",
        "Translate English to French.\ncheese -> fromage\nbread => pain\nwater → eau",
        "arrows",
        "Translate English to French.",
        [("cheese", "fromage"), ("bread", "pain"), ("water", "eau")],
    ),
    (
        "numbered-arrows",
        "Convert to upper case:\n1. hello -> HELLO\n2. world -> WORLD",
        "arrows",
        "Convert to upper case:",
        [("hello", "HELLO"), ("world", "WORLD")],
    ),
    (
        "example-blocks-with-query-slot",
        "Summarise the text in one line.\n\nExample 1:\nInput: The cat sat on the mat all day.\n"
        "Output: A cat sat.\n\nExample 2:\nInput: It rained in Paris.\nOutput: Rain in Paris.\n\n"
        "Input: {text}\nOutput:",
        "labels:input/output",
        "Summarise the text in one line.",
        [
            ("The cat sat on the mat all day.", "A cat sat."),
            ("It rained in Paris.", "Rain in Paris."),
        ],
    ),
    (
        "example-blocks-unlabelled",
        "Fix the spelling.\nExample 1:\nteh cat\nthe cat\n\nExample 2:\nrecieve\nreceive",
        "example-blocks",
        "Fix the spelling.",
        [("teh cat", "the cat"), ("recieve", "receive")],
    ),
    (
        "markdown-example-headers",
        "Uppercase the word.\n\n### Example 1\nInput: cat\nOutput: CAT\n\n**Example 2:**\n"
        "Input: dog\nOutput: DOG",
        "labels:input/output",
        "Uppercase the word.",
        [("cat", "CAT"), ("dog", "DOG")],
    ),
    (
        "three-field-records",
        "Answer the question from the context.\n\nContext: Paris is the capital of France.\n"
        "Question: What is the capital of France?\nAnswer: Paris\n\n"
        "Context: Water boils at 100 C.\nQuestion: When does water boil?\nAnswer: At 100 C\n\n"
        "Context: {context}\nQuestion: {question}\nAnswer:",
        "labels:context+question/answer",
        "Answer the question from the context.",
        [
            (
                "Context: Paris is the capital of France.\nQuestion: What is the capital of France?",
                "Paris",
            ),
            ("Context: Water boils at 100 C.\nQuestion: When does water boil?", "At 100 C"),
        ],
    ),
    (
        "numbered-labels",
        "Answer briefly.\nQ1: Sky colour?\nA1: Blue\nQ2: Grass colour?\nA2: Green",
        "labels:question/answer",
        "Answer briefly.",
        [("Sky colour?", "Blue"), ("Grass colour?", "Green")],
    ),
    (
        "numbered-items",
        "Map each country to its capital.\n1. France | Paris\n2. Japan | Tokyo",
        "list-items",
        "Map each country to its capital.",
        [("France", "Paris"), ("Japan", "Tokyo")],
    ),
    (
        "quoted-prose",
        'Convert dates to ISO format. For example, "10 Jan 2020" becomes "2020-01-10" and '
        '"3 March 1999" becomes "1999-03-03".',
        "quoted-pairs",
        "Convert dates to ISO format.",
        [("10 Jan 2020", "2020-01-10"), ("3 March 1999", "1999-03-03")],
    ),
    (
        "quoted-arrows",
        'Translate to German.\n"good morning" -> "guten Morgen"\n"thank you" -> "danke"',
        "arrows",
        "Translate to German.",
        [("good morning", "guten Morgen"), ("thank you", "danke")],
    ),
    (
        "examples-intro-and-trailing-text",
        "Extract the year.\nHere are some examples:\nInput: born in 1999\nOutput: 1999\n\n"
        "Input: died 2001\nOutput: 2001\n\nAnswer with digits only.",
        "labels:input/output",
        "Extract the year.\n\nAnswer with digits only.",
        [("born in 1999", "1999"), ("died 2001", "2001")],
    ),
    (
        "multi-line-input",
        "Summarise.\nInput: Line one.\nLine two.\n\nStill input.\nOutput: Short.",
        "labels:input/output",
        "Summarise.",
        [("Line one.\nLine two.\n\nStill input.", "Short.")],
    ),
    (
        "non-english-labels",
        "Traduisez la phrase en anglais.\nEntrée: bonjour\nSortie: hello\nEntrée: merci\nSortie: thank you",
        "labels:entrée/sortie",
        "Traduisez la phrase en anglais.",
        [("bonjour", "hello"), ("merci", "thank you")],
    ),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_rules_split_each_prompt_shape_exactly(shape):
    _, prompt, method, instruction, demos = shape
    parsed = parse_prompt(prompt)
    assert parsed.method == method
    assert parsed.instruction == instruction
    assert [(d.input, d.output) for d in parsed.demonstrations] == demos


def test_query_slot_is_dropped_with_a_note():
    parsed = parse_prompt(SHAPES[6][1])
    assert parsed.notes == ("ignored an input without an output: '{text}'",)


def test_one_quoted_output_among_plain_ones_keeps_its_quotes():
    parsed = parse_prompt('Say it.\na -> "b"\nc -> d')
    assert [(d.input, d.output) for d in parsed.demonstrations] == [("a", '"b"'), ("c", "d")]


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("Please write me a poem about cats.", "no demonstrations found in the prompt"),
        ("Input: a\nOutput: b", "examples found but no instruction before them"),
        ("   \n ", "the prompt is empty"),
        ("Classify.\nInput: only an input\nOutput:", "no demonstrations found"),
    ],
)
def test_malformed_prompts_fail_clearly(prompt, message):
    with pytest.raises(PromptParseError, match=message):
        parse_prompt(prompt)


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Rewrite the date in the format MM/DD/YYYY.", "en"),
        ("Traduisez la phrase en anglais.", "fr"),
        ("Übersetze den Satz ins Englische und gib nur die Übersetzung aus.", "de"),
        ("Clasifica la reseña como positiva o negativa en una frase.", "es"),
        ("Переведите предложение на английский.", "ru"),
        ("将句子翻译成英文。", "zh"),
        ("文を英語に翻訳してください。", "ja"),
        ("ok", "und"),
    ],
)
def test_language_detection(text, lang):
    assert detect_language(text) == lang


def test_non_english_instruction_is_kept_with_a_note():
    parsed = parse_prompt(SHAPES[-1][1])
    assert parsed.language == "fr"
    assert parsed.instruction == "Traduisez la phrase en anglais."
    assert any("looks French (fr); it is kept as written" in n for n in parsed.notes)


def test_rendered_toml_round_trips_through_load_task(tmp_path):
    prompt = (
        'Escape "quotes", back\\slashes and tabs.\nInput: a "b" \\ c\tτ\nOutput: line1\nline2 ✓\n'
        "Input: x\u007fy\nOutput: z"
    )
    parsed = parse_prompt(prompt)
    path = tmp_path / "task.toml"
    path.write_text(render_task_toml(parsed, name="esc", tables={"teacher": {"max_in_flight": 4}}))
    spec = load_task(path)
    assert spec.name == "esc"
    assert spec.instruction == parsed.instruction
    assert spec.demonstrations == parsed.demonstrations
    assert spec.demonstrations[0].input == 'a "b" \\ c\tτ'
    assert spec.demonstrations[0].output == "line1\nline2 ✓"
    assert spec.table("teacher") == {"max_in_flight": 4}


def test_slugify():
    assert (
        slugify("Rewrite the date in the format MM/DD/YYYY.")
        == "rewrite-the-date-in-the-format-mm-dd"
    )
    assert slugify("Traduisez l'été") == "traduisez-l-été"
    assert slugify("!!!") == "task"


def test_cli_init_writes_a_loadable_task_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "task.toml"
    prompt = "Translate English to French.\ncheese -> fromage\nbread -> pain"
    assert main(["init", prompt, "--out", str(out), "--no-llm", "--name", "fr"]) == 0
    spec = load_task(out)
    assert (spec.name, spec.instruction, len(spec.demonstrations)) == (
        "fr",
        "Translate English to French.",
        2,
    )
    assert main(["init", prompt, "--out", str(out), "--no-llm"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["init", "Upper.\na -> A", "--out", str(out), "--no-llm", "--force"]) == 0
    assert load_task(out).demonstrations[0].output == "A"


def test_cli_init_prompt_file_and_malformed_exit_2(tmp_path, capsys):
    pf = tmp_path / "prompt.txt"
    pf.write_text("Answer.\nQ: 1+1?\nA: 2\n", encoding="utf-8")
    out = tmp_path / "t.toml"
    assert main(["init", "--prompt-file", str(pf), "--out", str(out), "--no-llm"]) == 0
    assert load_task(out).demonstrations[0].output == "2"
    capsys.readouterr()
    assert main(["init", "write a poem", "--out", str(tmp_path / "x.toml"), "--no-llm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prompt: no demonstrations found" in err
    assert not (tmp_path / "x.toml").exists()
