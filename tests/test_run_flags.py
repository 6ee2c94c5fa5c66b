"""`distill run` has one flag per setting name: a name shared by two stages must mean one thing.

Its parser adds each name once and `stage_config` hands the value to every stage that has the
field, so a shared name with different types or choices breaks one of the stages (as
`--precision bf16`, train's dtype, once failed eval's ONNX-graph check).
"""

from __future__ import annotations

import dataclasses
import typing
from collections import defaultdict

from distill.cli import build_parser
from distill.stages import STAGE_CONFIGS, STAGES, stage_config

# Names deliberately shared by stages, and the one meaning they have in all of them.
SHARED_MEANING = {
    "seed": "random seed",
    "threads": "CPU threads of the local model (llama.cpp teacher, torch student)",
    "batch_size": "examples per batch",
}


def _shared_fields() -> dict[str, list[tuple[str, dataclasses.Field, typing.Any]]]:
    by_name: dict[str, list] = defaultdict(list)
    for stage in STAGES:
        cls = STAGE_CONFIGS[stage]()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            by_name[f.name].append((stage, f, hints[f.name]))
    return {k: v for k, v in by_name.items() if len(v) > 1}


def _strip_optional(tp: typing.Any) -> typing.Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, type(int | None)) and args else tp


def test_shared_setting_names_have_one_meaning():
    shared = _shared_fields()
    assert set(shared) <= set(SHARED_MEANING), (
        f"new shared names: {set(shared) - set(SHARED_MEANING)}"
    )
    for name, uses in shared.items():
        types = {_strip_optional(tp) for _, _, tp in uses}
        choices = {tuple(f.metadata.get("choices", ())) for _, f, _ in uses}
        assert len(types) == 1 and len(choices) == 1, (name, uses)


def test_run_precision_flags_reach_their_own_stage():
    """Train's dtype and eval's ONNX graphs are two flags; each value is valid where it lands."""
    args = build_parser().parse_args(
        ["run", "--task", "t.toml", "--out", "o", "--precision", "bf16", "--onnx-precision", "int8"]
    )
    assert stage_config("train", None, args).precision == "bf16"
    assert stage_config("eval", None, args).onnx_precision == "int8"
