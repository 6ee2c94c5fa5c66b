"""`distill report`: (re)build RUN/report.html from an existing run directory.

    distill report runs/dates                    # writes runs/dates/report.html
    distill report runs/dates --show-errors 25   # more of the worst test examples

`distill run` writes the same page at its end; this rebuilds it without running anything (after
benchmarks/learning_curve.py added a learning curve, say, or to show more errors). The page is
self-contained: inline CSS, charts as data: URIs, no network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "(re)build RUN/report.html: student vs teacher, charts, data, worst errors, in one page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN and how many of the worst examples to show."""
    parser.add_argument("run_dir", metavar="RUN", help="a `distill run` directory")
    parser.add_argument(
        "--show-errors",
        type=int,
        default=10,
        metavar="N",
        help="worst N test examples per target (0: none; default 10)",
    )


def run(args: argparse.Namespace) -> int:
    """Write RUN/report.html (atomically) and say where."""
    from distill.stages.report import write_run_report

    print(f"wrote {write_run_report(Path(args.run_dir), args.show_errors)}")
    return 0
