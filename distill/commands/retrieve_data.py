"""`distill retrieve-data` (being built; owned by its issue)."""

from __future__ import annotations

import argparse

from distill.errors import UserError

HELP = "retrieve-data (not built yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of this subcommand."""


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    raise UserError("not built yet")
