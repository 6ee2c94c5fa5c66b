"""`distill.json`: what a trained student directory (and its ONNX export) says about itself.

`students` writes it after training, `exports` copies it next to the graphs, and every runtime
(torch predictor, ONNX runtime, export gate, service) reads it to turn a raw task input into
the exact source text the student was trained on and to know its special token ids.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.files import read_json_object

META_FILE = "distill.json"


def format_source(template: str, instruction: str, text: str, prefix: str = "") -> str:
    """The student's source text: `prefix`, then the instruction and one raw input through the
    template.

    Training and every runtime format through here, so what the student reads at inference is
    by construction what it was trained on. `prefix` is the task prefix of a multi-task
    student (rationale distillation trains "[label] " for the answer task beside
    "[rationale] "; students.rationale), empty for a plain one.
    """
    return prefix + template.format(instruction=instruction, input=text)


@dataclass
class StudentMeta:
    """The record in `distill.json`. Ids and the template are required; the rest has defaults
    so that hand-made test directories can leave out what they do not use."""

    source_template: str  # str.format template with {instruction} and {input}
    decoder_start_token_id: int
    pad_token_id: int
    eos_token_id: int
    task_name: str = ""
    instruction: str = ""
    max_source_length: int = 512  # tokens the encoder reads (longer inputs are cut)
    max_target_length: int = 64  # tokens of the longest training target
    max_new_tokens: int = 64  # decoding limit at inference
    lowercase_input: bool = False  # informational: the tokenizer's normaliser does the work
    case_markers: bool = False  # the tokenizer carries case/space markers (students.markers)
    model_type: str = ""
    student: str = ""
    num_parameters: int | None = None
    # Text put before every source: "[label] " for a student trained with rationales (the
    # answer task's prefix; students.rationale), "" otherwise. Added before tokenisation, so
    # the graphs are the same either way.
    task_prefix: str = ""
    # Optional held-out pairs for the export gate ({"input", "output"} objects).
    heldout: list[dict[str, str]] = field(default_factory=list)
    # The closed label set the student answers in (the generate manifest's, when every training
    # output is one of them): greedy decoding then chooses only among these (common.label_decoding).
    # Empty: free decoding.
    labels: list[str] = field(default_factory=list)
    # An extraction student (its training outputs were mostly spans of their inputs): greedy
    # decoding without a label set emits only word spans of the input (common.copy_decoding).
    copy_input: bool = False

    def source_text(self, text: str) -> str:
        """The source text the student was trained to read for one raw task input."""
        return format_source(self.source_template, self.instruction, text, self.task_prefix)

    def copies(self, labels: list[str] | None, free: bool) -> bool:
        """Whether greedy decoding is held to word spans of the input (common.copy_decoding):
        a `copy_input` student with no label set to decode in (`labels` None and none in this
        file), unless the caller decodes freely (`free`: beams or a minimum length;
        `labels=[]`). The ONNX runtime, the torch predictor and the eval report share this."""
        if free or labels == [] or not self.copy_input:
            return False
        return not (self.labels if labels is None else labels)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = META_FILE) -> StudentMeta:
        """Validate a parsed `distill.json`; unknown keys are ignored (newer writers)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        missing = [
            name
            for name, f in known.items()
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and name not in data
        ]
        if missing:
            raise ValueError(f"{where}: missing key '{missing[0]}'")
        if not isinstance(data.get("task_prefix", ""), str):
            raise ValueError(f"{where}: key 'task_prefix' must be a string")
        labels = data.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{where}: key 'labels' must be a list of strings")
        if not isinstance(data.get("copy_input", False), bool):
            raise ValueError(f"{where}: key 'copy_input' must be true or false")
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object to write (heldout, task_prefix, labels and copy_input only when set,
        so a plain student's file is what it was before they existed)."""
        data = dataclasses.asdict(self)
        for key in ("heldout", "task_prefix", "labels", "copy_input"):
            if not data[key]:
                del data[key]
        return data


def read_meta(directory: Path) -> StudentMeta:
    """The `distill.json` of a student or export directory.

    FileNotFoundError when it is missing, ValueError (naming the file) when it is broken.
    """
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (not a model dir from distill train?)")
    data = read_json_object(path)
    return StudentMeta.from_dict(data, str(path))


def write_meta(directory: Path, meta: StudentMeta) -> None:
    """Write `distill.json` into `directory` (the caller builds the directory atomically)."""
    text = json.dumps(meta.to_dict(), indent=2, ensure_ascii=False) + "\n"
    (Path(directory) / META_FILE).write_text(text, encoding="utf-8")
