"""`distill serve`: an HTTP service for an exported student (onnxruntime, no torch).

    distill serve --model runs/dates/onnx                    # http://127.0.0.1:8000
    curl -s localhost:8000/v1/generate -d '{"inputs": ["next friday"]}'

POST /v1/generate, GET /healthz, GET /metrics (Prometheus). Stops gracefully on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.errors import UserError

HELP = "serve an exported ONNX student over HTTP (micro-batching, limits, /metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the service."""
    parser.add_argument(
        "--model", required=True, help="ONNX dir written by `distill export` (RUN/onnx)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads (default: all cores)"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "int8", "fp32"],
        help="graphs to load; auto = int8 if it passed the export gate (default: auto)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=16, help="inputs per micro-batch (default: 16)"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to batch with (default: 5)",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="request body limit (default: 1 MiB)"
    )
    parser.add_argument(
        "--max-inputs", type=int, default=64, help="inputs per request (default: 64)"
    )
    parser.add_argument(
        "--max-input-chars", type=int, default=4000, help="characters per input (default: 4000)"
    )


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until interrupted."""
    from exports.serve import ServeSettings, serve

    onnx_dir = Path(args.model)
    if not (onnx_dir / "distill.json").is_file():
        raise UserError(
            f"--model: {onnx_dir} has no distill.json (expected a dir from `distill export`)"
        )
    for flag in ("port", "max_batch", "max_body_bytes", "max_inputs", "max_input_chars"):
        if getattr(args, flag) < (0 if flag == "port" else 1):
            raise UserError(
                f"--{flag.replace('_', '-')}: must be positive (got {getattr(args, flag)})"
            )
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: must be >= 1 (got {args.threads})")
    settings = ServeSettings(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_body_bytes=args.max_body_bytes,
        max_inputs=args.max_inputs,
        max_input_chars=args.max_input_chars,
    )
    try:
        serve(
            onnx_dir,
            args.host,
            args.port,
            threads=args.threads,
            precision=args.precision,
            settings=settings,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--model: {exc}") from None
    except OSError as exc:  # port in use, address not available
        raise UserError(
            f"--host/--port: cannot bind {args.host}:{args.port} ({exc.strerror})"
        ) from None
    return 0
