"""`distill serve`: an HTTP service for an exported student (onnxruntime, no torch).

    distill serve --model runs/dates/onnx                    # http://127.0.0.1:8000
    curl -s localhost:8000/v1/generate -d '{"inputs": ["next friday"]}'

POST /v1/generate, GET /healthz, GET /metrics (Prometheus), and a page to try the model at GET /
(its facts from GET /v1/info). Stops gracefully on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.configs import add_config_args, build_config
from distill.errors import UserError

HELP = "serve an exported ONNX student over HTTP (micro-batching, limits, /metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--model plus one flag per ServeConfig field."""
    from exports.config import ServeConfig

    parser.add_argument(
        "--model", required=True, help="ONNX dir written by `distill export` (RUN/onnx)"
    )
    add_config_args(parser, ServeConfig)


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until interrupted."""
    from common.meta import META_FILE
    from exports.config import ServeConfig
    from exports.serve import serve

    onnx_dir = Path(args.model)
    if not (onnx_dir / META_FILE).is_file():
        raise UserError(
            f"--model: {onnx_dir} has no {META_FILE} (expected a dir from `distill export`)"
        )
    cfg = build_config(ServeConfig, None, args, source="command line")
    try:
        serve(onnx_dir, cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--model: {exc}") from None
    except OSError as exc:  # port in use, address not available
        raise UserError(
            f"--host/--port: cannot bind {cfg.host}:{cfg.port} ({exc.strerror})"
        ) from None
    return 0
