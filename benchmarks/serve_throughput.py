"""Service throughput: requests/s that `distill serve` sustains with p95 latency under 100 ms.

Starts the real service (`python -m distill serve`) on 127.0.0.1 as a subprocess, then runs
closed-loop clients (each sends one single-input request, waits for the answer, sends the next)
at rising concurrency for a fixed time per level. The same run measures micro-batching on
(`--max-batch 16`) and off (`--max-batch 1`), so the ratio between them is taken under the
same machine load. Every loop is bounded in time; traffic goes to loopback only.

    python benchmarks/serve_throughput.py --model RUN/onnx [--quick]

Writes benchmarks/results/serve_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODEL = Path(__file__).parent / "runs" / "temporal" / "onnx"
P95_TARGET_MS = 100.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, port: int, threads: int, max_batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "distill", "serve", "--model", str(model), "--port", str(port),
           "--threads", str(threads), "--max-batch", str(max_batch)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                async with session.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError("service did not become healthy")


async def level(url: str, inputs: list[str], clients: int, seconds: float, tokens: int) -> dict:
    """`clients` closed-loop clients for `seconds`; latency of every completed request."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        i = k
        while time.monotonic() < stop:
            body = {"input": inputs[i % len(inputs)], "max_new_tokens": tokens}
            t0 = time.perf_counter()
            async with session.post(f"{url}/v1/generate", json=body) as r:
                await r.read()
                assert r.status == 200, r.status
            latencies.append((time.perf_counter() - t0) * 1000)
            i += clients

    t0 = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(k, session) for k in range(clients)))
    wall = time.monotonic() - t0
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {"clients": clients, "requests": len(latencies), "req_s": len(latencies) / wall,
            "p50_ms": statistics.median(latencies), "p95_ms": q[18]}  # fmt: skip


async def sweep(model: Path, inputs: list[str], threads: int, max_batch: int, levels: list[int],
                seconds: float, tokens: int) -> list[dict]:  # fmt: skip
    port = free_port()
    proc = start_server(model, port, threads, max_batch)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        await level(url, inputs, 2, 2.0, tokens)  # warm-up
        rows = []
        for n in levels:
            row = await level(url, inputs, n, seconds, tokens)
            rows.append({"threads": threads, "max_batch": max_batch, **row})
            print(rows[-1], flush=True)
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def best_under_target(rows: list[dict]) -> float:
    ok = [r["req_s"] for r in rows if r["p95_ms"] < P95_TARGET_MS]
    return max(ok) if ok else 0.0


def markdown(rows: list[dict], summary: dict) -> str:
    out = ["| threads | max batch | clients | requests | req/s | p50 ms | p95 ms |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        out.append(f"| {r['threads']} | {r['max_batch']} | {r['clients']} | {r['requests']} | "
                   f"{r['req_s']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")  # fmt: skip
    out += [
        "",
        "| threads | max batch | best req/s with p95 < 100 ms | peak req/s |",
        "|---|---|---|---|",
    ]
    for key, s in summary.items():
        out.append(
            f"| {key.split('/')[0]} | {key.split('/')[1]} | {s['best_under_100ms']:.1f} | {s['peak']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX dir (distill export)")
    ap.add_argument("--test", type=Path, default=None, help="JSONL whose inputs are sent")
    ap.add_argument("--quick", action="store_true", help="fewer levels, 3 s each")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    if not (args.model / "distill.json").is_file():
        sys.exit(f"--model: {args.model} is not an ONNX dir from `distill export`")
    test = args.test or args.model.parent / "test.jsonl"
    inputs = (
        [json.loads(x)["input"] for x in test.read_text().splitlines() if x.strip()]
        if test.is_file()
        else ["next friday at 5pm"]
    )
    levels = [1, 4, 16] if args.quick else [1, 2, 4, 8, 16, 32]
    seconds = 3.0 if args.quick else 8.0
    rows: list[dict] = []
    summary: dict[str, dict] = {}
    for threads in (1, 2):
        for max_batch in (16, 1):
            part = asyncio.run(
                sweep(args.model, inputs, threads, max_batch, levels, seconds, args.max_new_tokens)
            )
            rows += part
            summary[f"{threads}/{max_batch}"] = {"best_under_100ms": best_under_target(part),
                                                 "peak": max(r["req_s"] for r in part)}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": str(args.model),
        "max_new_tokens": args.max_new_tokens,
        "rows": rows,
        "summary": summary,
    }
    (RESULTS / "serve_throughput.json").write_text(json.dumps(payload, indent=2))
    table = markdown(rows, summary)
    (RESULTS / "serve_throughput.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
