"""The `distill` command line: one small module per subcommand under distill/commands/.

Each command module exposes `HELP`, `add_arguments(parser)` and `run(args) -> int`, and imports
heavy libraries (torch, transformers, onnxruntime) only inside `run`, so `--help` stays fast.
User mistakes raise UserError: printed as one line on stderr with exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from distill import __version__
from distill.errors import UserError

# subcommand -> module under distill.commands, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "run": "run",
    "generate": "generate",
    "train": "train",
    "refine": "refine",
    "export": "export",
    "eval": "eval",
    "report": "report",
    "serve": "serve",
    "push": "push",
    "init": "init",
    "retrieve-data": "retrieve_data",
    "retrieve-model": "retrieve_model",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2) instead of usage plus message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand registered."""
    parser = _Parser(
        prog="distill",
        description="Distil an LLM teacher into a small seq2seq student you can deploy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"distill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"distill.commands.{module_name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a container stop, `kill`): handled like Ctrl-C, so the stage's cleanup runs, its
    logs are closed and the resume hint is printed; the exit code says which signal (143)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    """Drop asyncio's "Task exception was never retrieved" for an interrupt. A SIGTERM or Ctrl-C
    that lands while a task runs stays stored on that task too, and asyncio logs it with a
    traceback when the task is collected, after the resume hint; it was handled already."""
    exc = record.exc_info[0] if record.exc_info else None
    return not (exc is not None and issubclass(exc, KeyboardInterrupt))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)  # `serve` installs its own later
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"distill {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        logging.getLogger("asyncio").addFilter(_not_an_interrupt)
        print(
            f"distill {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
