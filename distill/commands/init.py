"""`distill init "PROMPT"`: turn a free-form prompt into a task.toml you can edit.

Rules split the common shapes (Input:/Output:, Q:/A:, arrows, Example N blocks, numbered
items, quoted pairs) without any LLM; only when they find nothing is the teacher asked, with a
JSON-constrained request that is validated and retried (`--no-llm` turns that off).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distill.configs import add_config_args, config_keys
from distill.errors import UserError

HELP = "turn a free-form prompt (instruction + examples) into a task.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of this subcommand."""
    from teachers.config import TeacherConfig

    parser.add_argument("prompt", nargs="?", help="the prompt text (or use --prompt-file)")
    parser.add_argument(
        "--prompt-file", metavar="FILE", help="read the prompt from FILE ('-' for stdin)"
    )
    parser.add_argument(
        "--out", default="task.toml", metavar="FILE", help="task file to write (default: task.toml)"
    )
    parser.add_argument("--name", help="task name (default: from the instruction)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    parser.add_argument("--no-llm", action="store_true", help="rules only: never ask the teacher")
    parser.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="teacher attempts when its reply is invalid (default: 3)",
    )
    add_config_args(parser, TeacherConfig)


def run(args: argparse.Namespace) -> int:
    """Parse, write the task file atomically, check it loads, print what was found."""
    from common.files import atomic_write_text
    from distill.prompt_to_task import PromptParseError, render_task_toml, slugify
    from distill.task import load_task

    prompt = _read_prompt(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError(f"--out: {out} exists; pass --force to overwrite it")
    if args.attempts <= 0:
        raise UserError(f"--attempts: must be > 0 (got {args.attempts})")
    try:
        parsed = _parse(prompt, args)
    except PromptParseError as exc:
        raise UserError(f"prompt: {exc}") from None
    name = args.name or slugify(parsed.instruction)
    atomic_write_text(out, render_task_toml(parsed, name=name, tables=_teacher_table(args)))
    spec = load_task(out)  # the file must be one the pipeline accepts
    print(
        f"wrote {out}: task '{spec.name}', {len(spec.demonstrations)} demonstrations (parsed by {parsed.method})"
    )
    for note in parsed.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None and args.prompt_file:
        raise UserError("give the prompt as an argument or with --prompt-file, not both")
    if args.prompt_file == "-":
        return sys.stdin.read()
    if args.prompt_file:
        path = Path(args.prompt_file)
        if not path.is_file():
            raise UserError(f"--prompt-file: {path} not found")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"--prompt-file: {path} is not UTF-8") from None
    if args.prompt is None:
        raise UserError(
            'prompt: missing; give it as an argument (distill init "...") or with --prompt-file'
        )
    return args.prompt


def _parse(prompt: str, args: argparse.Namespace):  # -> ParsedPrompt
    """Rules first; the teacher only when they fail and --no-llm is not given."""
    from distill.prompt_to_task import PromptParseError, parse_prompt, parse_prompt_async
    from distill.stages import stage_config
    from distill.teacher_chat import run_with_teacher

    try:
        return parse_prompt(prompt)
    except PromptParseError:
        if args.no_llm or not prompt.strip():
            raise
    cfg = stage_config("teacher", None, args)
    print(f"rules found no examples; asking the teacher ({cfg.teacher})", file=sys.stderr)
    return run_with_teacher(
        cfg, lambda chat: parse_prompt_async(prompt, chat, attempts=args.attempts)
    )


def _teacher_table(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """A [teacher] table with the teacher flags given on this command line (none: no table)."""
    from teachers.config import TeacherConfig

    values = {
        k: getattr(args, k)
        for k in config_keys(TeacherConfig)
        if getattr(args, k, None) is not None
    }
    return {"teacher": values} if values else {}
