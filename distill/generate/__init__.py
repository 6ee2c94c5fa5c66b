"""The synthetic-data sampler (`distill generate`).

`run_generate` is imported lazily so that `distill.generate.config` (read by `distill --help`
and task validation) does not pull in datasets, numpy or the teacher client.
"""

from __future__ import annotations

from typing import Any


def run_generate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See `distill.generate.run.run_generate`."""
    from distill.generate.run import run_generate as _run

    return _run(*args, **kwargs)


__all__ = ["run_generate"]
