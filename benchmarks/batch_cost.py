"""What `--batch` saves: one label run done both ways (streamed, then through the Batch API)
against the loopback OpenAI server, priced as gpt-4o-mini (built-in table, batch column = 50%).

The server's tokenizer counts whitespace words, so the dollar amounts are those of this toy
prompt; the ratio, and that both runs produce the same data, are the point.

    python benchmarks/batch_cost.py               # 300 inputs x 3 votes
    python benchmarks/batch_cost.py --inputs 30   # quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import xxhash

from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer, word_phrase

RESULTS = Path(__file__).parent / "results"
TASK = TaskSpec(
    name="polarity",
    instruction="Say whether the review is positive or negative.",
    demonstrations=(
        Demonstration("great stay, friendly staff", "positive"),
        Demonstration("dirty room and rude staff", "negative"),
    ),
)


def review(n: int) -> str:
    return word_phrase(f"review {n}", 8)


def answer(body: dict, index: int) -> str:
    """A deterministic teacher: the label is a function of the input (the last message)."""
    text = body["messages"][-1]["content"]
    return "positive" if xxhash.xxh3_64_intdigest(text.encode()) % 2 else "negative"


def one_run(server: FakeOpenAIServer, inputs: Path, out: Path, batch: bool) -> dict:
    cfg = GenerateConfig(
        inputs=str(inputs), num_examples=10**6, labels=["positive", "negative"],
        votes=3, batch=batch, batch_poll_s=0.05,
    )  # fmt: skip
    tcfg = TeacherConfig(teacher=server.base_url, model="gpt-4o-mini", max_in_flight=64)
    started = time.monotonic()
    m = run_generate(TASK, cfg, tcfg, out)
    examples = sorted(out.joinpath("examples.jsonl").read_text().splitlines())
    return {
        "way": "batch" if batch else "streamed",
        "accepted": m["counts"]["accepted"],
        "requests": m["teacher_accounting"]["requests"],
        "prompt_tokens": m["tokens"]["prompt"],
        "completion_tokens": m["tokens"]["completion"],
        "cost_usd": m["cost_usd"],
        "wall_s": round(time.monotonic() - started, 2),
        "data_xxh3": xxhash.xxh3_64_hexdigest("\n".join(examples).encode()),
    }


def markdown(rows: list[dict], n: int) -> str:
    head = "| way | inputs | accepted | requests | prompt tokens | completion tokens | cost USD | data hash |"
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(
            f"| {r['way']} | {n} | {r['accepted']} | {r['requests']} | {r['prompt_tokens']} | "
            f"{r['completion_tokens']} | {r['cost_usd']:.6f} | {r['data_xxh3']} |"
        )
    ratio = rows[1]["cost_usd"] / rows[0]["cost_usd"]
    return "\n".join(lines) + f"\n\nbatch / streamed cost: **{ratio:.2f}**\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(answer) as server:
        inputs = Path(tmp) / "inputs.jsonl"
        inputs.write_text(
            "".join(json.dumps({"input": review(k)}) + "\n" for k in range(args.inputs))
        )
        rows = [one_run(server, inputs, Path(tmp) / way, way == "b") for way in ("s", "b")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = markdown(rows, args.inputs)
    (RESULTS / "batch_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
