"""A small headless-Chromium driver over the Chrome DevTools Protocol (aiohttp websockets).

Why not Playwright or Selenium: both need a browser or driver of a matching version from a
CDN that CI cannot reach; Debian's `chromium` package and aiohttp (already a dependency) are
enough. Chromium is started with `--remote-debugging-port=0` (it picks a free port) and writes
the port to `DevToolsActivePort` in its profile folder; we attach to its first page target.

    async with Chromium.launch() as page:
        await page.goto("http://127.0.0.1:8000/")
        await page.type("#input", "hello")
        await page.click("#run")
        answer = await page.wait_for("document.querySelector('#answer').textContent")

Used by tests/test_serve_page.py and docs/screenshot_serve_page.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """$CHROMIUM, else the first Chromium or Chrome on PATH (None when there is none)."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


class CDPError(RuntimeError):
    """A DevTools command failed, or the page threw."""


class Page:
    """One page target: commands by id, events kept for `wait_event`, JS errors recorded."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, timeout: float) -> None:
        self.ws, self.timeout = ws, timeout
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.waiters: dict[str, list[asyncio.Future]] = {}
        self.errors: list[str] = []  # uncaught exceptions and console errors of the page
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future and not future.done():
                    future.set_result(data)
                continue
            self._event(data["method"], data.get("params", {}))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(CDPError("the browser closed the connection"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif (  # "network" entries are 4xx answers the page asked for and shows itself
            method == "Log.entryAdded"
            and params["entry"]["level"] == "error"
            and params["entry"].get("source") != "network"
        ):
            self.errors.append(params["entry"]["text"])
        for future in self.waiters.pop(method, []):
            if not future.done():
                future.set_result(params)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command and return its result."""
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, self.timeout)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    def expect(self, method: str) -> asyncio.Future:
        """A future for the next `method` event (create it before causing the event)."""
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(method, []).append(future)
        return future

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        loaded = self.expect("Page.loadEventFired")
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"cannot load {url}: {result['errorText']}")
        await asyncio.wait_for(loaded, self.timeout)

    async def eval(self, expression: str) -> Any:
        """The value of a JS expression (promises are awaited); a thrown error raises."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description") or details["text"])
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll a JS expression until it is truthy; return its value."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"still falsy after {timeout or self.timeout} s: {expression}"
                    f" (page errors: {self.errors})"
                )
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (it must be visible)."""
        box = await self.eval(
            f"""(() => {{
                const e = document.querySelector({json.dumps(selector)});
                if (!e) return null;
                e.scrollIntoView({{block: "center"}});
                const r = e.getBoundingClientRect();
                return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null;
            }})()"""
        )
        if not box:
            raise CDPError(f"{selector}: no such visible element")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    async def type(self, selector: str, text: str) -> None:
        """Focus the element, clear it, and insert `text` as typed input (input events fire)."""
        await self.eval(f"document.querySelector({json.dumps(selector)}).select()")
        await self.send("Input.insertText", text=text)

    async def text(self, selector: str) -> str:
        return await self.eval(f"document.querySelector({json.dumps(selector)}).textContent")

    async def screenshot(self, path: Path, width: int = 1280) -> None:
        """A PNG of the whole page at `width` CSS pixels."""
        height = await self.eval("document.documentElement.scrollHeight")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=int(height),
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        Path(path).write_bytes(base64.b64decode(shot["data"]))


class Chromium:
    """`async with Chromium.launch() as page`: a headless browser and one page, cleaned up after."""

    @staticmethod
    @contextlib.asynccontextmanager
    async def launch(
        binary: str | None = None, timeout: float = 30.0, width: int = 1280, height: int = 900
    ) -> AsyncIterator[Page]:
        binary = binary or find_chromium()
        if not binary:
            raise FileNotFoundError("no chromium binary on PATH (apt-get install chromium)")
        profile = Path(tempfile.mkdtemp(prefix="distill-chromium-"))
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            # The sandbox needs user namespaces that containers and root (CI) often lack; the
            # browser only loads a loopback page of ours.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--no-first-run",
            "--no-default-browser-check",
            f"--window-size={width},{height}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            port = await _devtools_port(profile, proc, timeout)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json()
                url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with session.ws_connect(url, max_msg_size=0) as ws:
                    page = Page(ws, timeout)
                    for domain in ("Page", "Runtime", "Log"):
                        await page.send(f"{domain}.enable")
                    try:
                        yield page
                    finally:
                        page.reader.cancel()
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process, timeout: float) -> int:
    """The port Chromium chose, from the first line of PROFILE/DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if proc.returncode is not None:
            raise CDPError(f"chromium exited with status {proc.returncode} before it started")
        if marker.is_file():
            lines = marker.read_text().splitlines()
            if len(lines) >= 2:  # written in one go, but read it only when complete
                return int(lines[0])
        await asyncio.sleep(0.05)
    raise CDPError(f"chromium wrote no {marker.name} within {timeout} s")
