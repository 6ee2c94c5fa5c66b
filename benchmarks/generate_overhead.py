"""Sampler overhead: N examples end to end against the loopback OpenAI server, many in flight.

The server runs in a separate process (its CPU is not ours). We measure, in the client
process: wall time, the time our own sampler code ran on the event loop (prompt building,
parsing, dedup incl. MinHash, voting, journaling, fsync'd appends; `manifest["sampler_s"]`),
and the whole process's CPU time (sampler + teacher client + aiohttp). The claim checked:
sampler CPU time < 5% of wall time at 256 requests in flight. CPU time (measured by replaying the
run's journal offline, see `replay_cpu_s`), not the wall time of our code in the live loop,
because on a shared machine (load ~10 on 2 cores here) the wall time of any code includes
waiting for a core; both are reported.

    python benchmarks/generate_overhead.py            # 3 runs of 10,000 examples, 256 in flight
    python benchmarks/generate_overhead.py --quick    # 1 run of 1,000 examples

The figures are CPU time, so they scale with the machine's single-core speed, which varies
between days on these shared VMs: the JSON records `cpu_probe_s`, the CPU seconds a fixed pure
Python loop takes in the same process, so runs on different days can be compared. The reported
run is the median of `--repeat` runs by sampler CPU share; all runs are kept in `runs`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def responder(body: dict, index: int) -> str:
    """One fresh pair per request, derived from the request's seed (distinct per request)."""
    from teachers.testing import word_phrase

    p = word_phrase(int(body["seed"]), 8)
    return json.dumps([{"input": p, "output": " ".join(reversed(p.split()))}])


def serve(latency_s: float) -> None:
    """Child process: run the loopback server until stdin closes."""
    from teachers.testing import FakeOpenAIServer

    with FakeOpenAIServer(responder, latency_s=latency_s) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


def replay_cpu_s(task, cfg, journal: Path) -> float:
    """CPU seconds our sampler needs for the run's exact request/answer sequence.

    Replays the journal through a fresh SamplerState and rebuilds every request's prompt, with
    no network: the sampler's own work (dedup with MinHash, parsing, voting, prompt building,
    JSON lines) measured with process_time, free of waiting for a core on a busy machine.
    Per-section thread_time() in the live loop is a syscall here that would distort it.
    """
    from distill.generate.prompts import PromptBudget, synth_messages
    from distill.generate.state import SamplerState
    from distill.generate.store import read_log

    records = read_log(journal)
    demos = [(d.input, d.output) for d in task.demonstrations]
    budget = PromptBudget(None, cfg.max_tokens)
    sink = open(os.devnull, "w")  # noqa: SIM115
    cpu0 = time.process_time()
    state = SamplerState(cfg, [d.input for d in task.demonstrations], lambda k, r: None)
    for rec in records:
        sink.write(json.dumps(rec) + "\n")  # the journal line the live run wrote
        state.apply(rec)
        if rec["event"] == "issue":
            synth_messages(
                task.instruction,
                demos,
                state.pool,
                index=rec["index"],
                seed=cfg.seed,
                n=cfg.pairs_per_request,
                n_demos=cfg.few_shot_demos,
                n_pool=cfg.few_shot_accepted,
                budget=budget,
            )
    sink.close()
    return time.process_time() - cpu0


def run(n: int, in_flight: int, latency_s: float) -> dict:
    """One generate run against a fresh server process; returns the measurements."""
    from distill.generate import run_generate
    from distill.generate.config import GenerateConfig
    from distill.task import Demonstration, TaskSpec
    from teachers.config import TeacherConfig

    cmd = [sys.executable, __file__, "--serve", "--latency-s", str(latency_s)]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_url = child.stdout.readline().strip()  # type: ignore[union-attr]
        task = TaskSpec(
            "reverse",
            "Reverse the order of the words.",
            (Demonstration("red green blue", "blue green red"),),
        )
        # with accepted examples mixed in (not the default): the heavier path of the sampler
        cfg = GenerateConfig(
            num_examples=n, pairs_per_request=1, validation_fraction=0.05, few_shot_accepted=3
        )
        tcfg = TeacherConfig(
            teacher=base_url, model="fake", max_in_flight=in_flight, adaptive=False
        )
        with tempfile.TemporaryDirectory() as tmp:
            cpu0, t0 = time.process_time(), time.perf_counter()
            m = run_generate(task, cfg, tcfg, Path(tmp) / "data")
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            replay_cpu = replay_cpu_s(task, cfg, Path(tmp) / "data" / "journal.jsonl")
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait(30)
    return {
        "examples": m["counts"]["accepted"],
        "requests": m["counts"]["requests"],
        "in_flight": in_flight,
        "server_latency_s": latency_s,
        "wall_s": round(wall, 2),
        "sampler_s": m["sampler_s"],
        "sampler_share": round(m["sampler_s"] / wall, 4),
        "sampler_cpu_s": round(replay_cpu, 3),
        "sampler_cpu_share": round(replay_cpu / wall, 4),
        "sampler_cpu_us_per_example": round(replay_cpu / max(m["counts"]["accepted"], 1) * 1e6),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_share": round(cpu / wall, 4),
        "ideal_wall_s": round(m["counts"]["requests"] / in_flight * latency_s, 2),
        "examples_per_s": round(m["counts"]["accepted"] / wall, 1),
        "cpu_probe_s": cpu_probe_s(),
    }


def cpu_probe_s(n: int = 10_000_000) -> float:
    """CPU seconds of a fixed pure-Python loop: this machine's single-core speed today."""
    t0 = time.process_time()
    total = 0
    for i in range(n):
        total += i
    return round(time.process_time() - t0, 3)


def markdown(r: dict) -> str:
    ok = "yes" if r["sampler_cpu_share"] < 0.05 else "NO"
    return "\n".join(
        [
            "| examples | requests | in flight | server latency | wall | ideal wall | sampler time "
            "| sampler share | sampler CPU share | sampler CPU / example | client CPU share "
            "| examples/s | < 5%? |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {r['examples']} | {r['requests']} | {r['in_flight']} | {r['server_latency_s']} s "
            f"| {r['wall_s']} s | {r['ideal_wall_s']} s | {r['sampler_s']} s "
            f"| {r['sampler_share']:.1%} | {r['sampler_cpu_share']:.1%} "
            f"| {r['sampler_cpu_us_per_example']} µs | {r['client_cpu_share']:.1%} "
            f"| {r['examples_per_s']} | {ok} |",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 examples instead of 10,000")
    ap.add_argument("--examples", type=int, default=None)
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument("--latency-s", type=float, default=0.25, help="server think time per request")
    ap.add_argument("--repeat", type=int, default=None, help="runs; the median is reported")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.latency_s)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    n = args.examples or (1000 if args.quick else 10_000)
    repeat = args.repeat or (1 if args.quick else 3)
    runs = [run(n, args.in_flight, args.latency_s) for _ in range(repeat)]
    result = dict(sorted(runs, key=lambda r: r["sampler_cpu_share"])[len(runs) // 2])
    result["runs"] = runs
    name = "generate_overhead_quick" if args.quick else "generate_overhead"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table)
    return 0 if result["sampler_cpu_share"] < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
