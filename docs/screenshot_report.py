"""Screenshot of a run's report page for the README (docs/img/report.png).

    python docs/screenshot_report.py --run RUN [--out docs/img/report.png]

Rebuilds RUN/report.html with `distill report RUN` (the same code `distill run` uses), opens
it from disk in headless Chromium (the CDP driver of tests/browser.py; the page needs no
network) and captures the whole page (Page.captureScreenshot). Needs Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import Chromium  # noqa: E402


async def shoot(page_path: Path, out: Path, width: int) -> None:
    async with Chromium.launch(width=width) as page:
        await page.goto(page_path.resolve().as_uri())
        await page.wait_for("document.readyState === 'complete'")
        out.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(out, width=width)
        if page.errors:
            raise SystemExit(f"the page reported errors: {page.errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a `distill run` directory")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report.png")
    parser.add_argument("--width", type=int, default=1100, help="CSS pixels")
    parser.add_argument("--show-errors", type=int, default=5, help="worst N examples per target")
    args = parser.parse_args()
    command = ["-m", "distill", "report", str(args.run), "--show-errors", str(args.show_errors)]
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)  # cwd: this checkout
    asyncio.run(shoot(args.run / "report.html", args.out, args.width))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
