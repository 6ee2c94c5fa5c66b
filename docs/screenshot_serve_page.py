"""Screenshot of the page of `distill serve` for the docs (docs/img/serve_page.png).

    python docs/screenshot_serve_page.py --model RUN/onnx [--out docs/img/serve_page.png]

Starts a real `distill serve` on a free loopback port, opens `/` in headless Chromium (the
CDP driver of tests/browser.py), clicks the first demonstration, runs it, runs the
demonstrations' inputs as a batch, and captures the whole page (Page.captureScreenshot).
Needs Debian's `chromium` (or $CHROMIUM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import Chromium  # noqa: E402


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"distill serve exited with status {server.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise SystemExit(f"distill serve did not answer on {base} within {timeout} s")


async def shoot(base: str, out: Path, width: int) -> None:
    async with Chromium.launch(width=width) as page:
        await page.goto(base + "/")
        await page.wait_for("document.querySelector('#task-name').textContent !== 'distill serve'")
        demos = await page.eval("[...document.querySelectorAll('.demo')].length")
        if demos:
            await page.click(".demo")
            await page.click("#run")
            await page.wait_for("document.querySelector('#latency').textContent")
            inputs = await page.eval(  # a demo button's first child is its input's text
                "[...document.querySelectorAll('.demo')].map(b => b.firstChild.textContent)"
            )
            await page.type("#batch-input", "\n".join(inputs[:4]))
            await page.click("#batch-run")
            await page.wait_for(
                "document.querySelector('#batch-status').textContent.includes('answers')"
            )
        await page.eval("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(out, width=width)
        if page.errors:
            raise SystemExit(f"the page reported errors: {page.errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="ONNX dir (RUN/onnx of a distill run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "serve_page.png")
    parser.add_argument("--width", type=int, default=1280, help="CSS pixels")
    args = parser.parse_args()
    port = free_port()
    model = str(Path(args.model).resolve())
    command = ["-m", "distill", "serve", "--model", model, "--port", str(port), "--threads", "1"]
    # cwd: `python -m distill` imports this checkout
    server = subprocess.Popen([sys.executable, *command], cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_healthy(base, server))
        asyncio.run(shoot(base, args.out, args.width))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
