"""`distill run` (being built)."""

from __future__ import annotations

import argparse

HELP = "generate, train, export and evaluate in one go"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of this subcommand."""


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    return 2
