"""Dataclass configs as the single source of CLI flags and TOML keys.

Each stage's settings are one dataclass (fields with defaults and `metadata={"help": ...}`).
From it we derive the subcommand's flags (`num_examples` -> `--num-examples`) and the keys its
task.toml table accepts, so the two can never drift apart. Precedence: dataclass default <
task.toml table < flag given on the command line.

Leaf packages (teachers, students, exports) cannot import distill, so their `__post_init__`
raise plain `ValueError("field_name: what is wrong")`; `build_config` turns that into a
UserError that names where the bad value came from (the flag or the file and key).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from distill.errors import UserError

T = TypeVar("T")


def flag_name(field_name: str) -> str:
    """`num_examples` -> `--num-examples`."""
    return "--" + field_name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip Optional[...] / `X | None`; return (type, optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [
        (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")
    ]


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    title: str | None = None,
) -> None:
    """Add one flag per dataclass field; defaults are shown in --help but parsed as None.

    Parsing to None lets `build_config` tell a flag the user typed from one they did not.
    `title` names the --help group of a config that has no task.toml table.
    """
    group = parser.add_argument_group(title or f"{cls.__name__} (also settable in task.toml)")
    for f, tp in _fields(cls):
        if f.name in skip:
            continue
        base, _ = _base_type(tp)
        help_text = f.metadata.get("help", "")
        default = _default_of(f)
        kwargs: dict[str, Any] = {"dest": f.name, "default": None}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _parser_for(base)
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument(flag_name(f.name), help=f"{help_text} (default: {default})", **kwargs)


def _parser_for(base: Any) -> Any:
    if base in (int, float, str):
        return base
    if base is Path:
        return str
    if typing.get_origin(base) is list:
        return lambda s: [x.strip() for x in s.split(",") if x.strip()]
    return str


def config_keys(cls: type) -> list[str]:
    """The TOML keys (= field names) a config accepts."""
    return [f.name for f, _ in _fields(cls)]


def build_config(
    cls: type[T],
    table: dict[str, Any] | None = None,
    args: argparse.Namespace | None = None,
    source: str = "task.toml",
    section: str = "",
    extra: dict[str, Any] | None = None,
) -> T:
    """Merge defaults < `table` (from TOML) < `extra` < flags in `args` into a `cls` instance.

    Unknown or mistyped keys and failed `__post_init__` checks become one-line UserErrors that
    name the TOML key (with `source` and `section`) or the flag.
    """
    where = f"{source} [{section}]" if section else source
    known = {f.name: tp for f, tp in _fields(cls)}
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for raw_key, value in (table or {}).items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise UserError(f"{where}: unknown key '{raw_key}'{_did_you_mean(key, known)}")
        values[key] = _coerce(value, known[key], f"{where}: key '{raw_key}'")
        origin[key] = f"{where}: key '{raw_key}'"
    for key, value in (extra or {}).items():
        if value is not None:
            values[key], origin[key] = value, flag_name(key)
    if args is not None:
        for key in known:
            value = getattr(args, key, None)
            if value is not None:
                values[key], origin[key] = value, flag_name(key)
    try:
        return cls(**values)
    except ValueError as exc:
        raise config_error(exc, origin=origin, where=where) from None


def config_error(
    exc: Exception | str,
    *,
    origin: dict[str, str] | None = None,
    where: str = "",
    fallback: str = "",
) -> UserError:
    """The one translation of a leaf's `ValueError("field_name: what is wrong")` for the user.

    The field becomes what the user typed: `origin[field]` when known (a flag, or a file and
    key), else its flag (after `where`, the file and table it may also come from). A message
    that names no field keeps its text, prefixed with `fallback` (a flag) or `where`.
    """
    msg = str(exc)
    head, sep, rest = msg.partition(":")
    key = head.strip().strip("`")
    if sep and key.isidentifier() and rest.strip():
        if origin and key in origin:
            return UserError(f"{origin[key]}: {rest.strip()}")
        located = f"{where} / {flag_name(key)}" if where else flag_name(key)
        return UserError(f"{located}: {rest.strip()}")
    prefix = fallback or where
    return UserError(f"{prefix}: {msg}" if prefix else msg)


def _did_you_mean(key: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} Available: {', '.join(sorted(known))}"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    base, optional = _base_type(tp)
    if value is None and optional:
        return None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is Path and isinstance(value, str):
        return value
    check = typing.get_origin(base) or base
    if check is typing.Literal:
        if value not in typing.get_args(base):
            raise UserError(f"{where} must be one of {typing.get_args(base)} (got {value!r})")
        return value
    if (isinstance(check, type) and not isinstance(value, check)) or (
        check is int and isinstance(value, bool)
    ):
        raise UserError(f"{where} must be {getattr(base, '__name__', base)} (got {value!r})")
    return value
