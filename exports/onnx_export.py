"""torch -> ONNX: encoder, decoder first step, decoder step with past (dynamo, opset 18).

transformers 5 passes the KV cache as Cache objects, which ONNX cannot carry. The wrappers
below take and return flat tensors named as Optimum names them (`past_key_values.{i}.decoder.key`,
`present.{i}.encoder.value`, ...) and rebuild an `EncoderDecoderCache` inside. A non-empty
cross-attention cache is reused by the attention layers, so `decoder_with_past` never touches
the encoder states: the cross keys/values are computed once, in the first step.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

OPSET = 18


def num_decoder_layers(model: Any) -> int:
    """How many decoder layers hold a KV cache."""
    cfg = model.config
    if (
        getattr(cfg, "is_encoder_decoder", False)
        and hasattr(cfg, "decoder")
        and cfg.decoder is not None
    ):
        return int(cfg.decoder.num_hidden_layers)
    return int(getattr(cfg, "num_decoder_layers", None) or cfg.num_layers)


def present_names(n_layers: int, with_cross: bool) -> list[str]:
    """Output names of the cache, per layer: decoder key/value then (first step) encoder key/value."""
    kinds = ("decoder", "encoder") if with_cross else ("decoder",)
    return [
        f"present.{i}.{k}.{t}" for i in range(n_layers) for k in kinds for t in ("key", "value")
    ]


def past_names(n_layers: int) -> list[str]:
    """Input names of the cache of `decoder_with_past`."""
    return [
        f"past_key_values.{i}.{k}.{t}"
        for i in range(n_layers)
        for k in ("decoder", "encoder")
        for t in ("key", "value")
    ]


class EncoderWrapper(nn.Module):
    """input_ids (batch, src) + attention_mask (batch, src) -> last_hidden_state (batch, src, d)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _flatten(cache: EncoderDecoderCache, with_cross: bool) -> tuple[torch.Tensor, ...]:
    flat: list[torch.Tensor] = []
    for i, layer in enumerate(cache.self_attention_cache.layers):
        flat += [layer.keys, layer.values]  # (batch, heads, tgt_so_far, head_dim)
        if with_cross:
            cross = cache.cross_attention_cache.layers[i]
            flat += [cross.keys, cross.values]  # (batch, heads, src, head_dim)
    return tuple(flat)


class DecoderWrapper(nn.Module):
    """First step: decoder ids + encoder states -> logits + self and cross caches."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden_states),
            attention_mask=encoder_attention_mask,
            decoder_input_ids=input_ids,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
            use_cache=True,
        )
        return (out.logits, *_flatten(out.past_key_values, with_cross=True))


class DecoderWithPastWrapper(nn.Module):
    """Later steps: one new token per row + caches -> logits + grown self-attention cache."""

    def __init__(self, model: Any, n_layers: int, d_model: int) -> None:
        super().__init__()
        self.model, self.n_layers, self.d_model = model, n_layers, d_model

    def forward(
        self, input_ids: torch.Tensor, encoder_attention_mask: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        self_pairs = [(past[4 * i], past[4 * i + 1]) for i in range(self.n_layers)]
        cross_pairs = [(past[4 * i + 2], past[4 * i + 3]) for i in range(self.n_layers)]
        cache = EncoderDecoderCache(DynamicCache(self_pairs), DynamicCache(cross_pairs))
        # The cross cache is non-empty, so attention layers never read these states; they only
        # give the model the (batch, src, d) shape it expects. Zeros keep the graph input-free.
        batch, src = encoder_attention_mask.shape
        states = torch.zeros(batch, src, self.d_model, dtype=past[0].dtype)
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=states),
            attention_mask=encoder_attention_mask,
            decoder_input_ids=input_ids,
            past_key_values=cache,
            use_cache=True,
        )
        return (out.logits, *_flatten(out.past_key_values, with_cross=False))


def encoder_hidden_size(model: Any) -> int:
    """Width of the encoder output the decoder's cross-attention reads."""
    cfg = model.config
    if hasattr(cfg, "encoder") and cfg.encoder is not None and hasattr(cfg.encoder, "hidden_size"):
        return int(cfg.encoder.hidden_size)
    return int(cfg.d_model)


def _export(
    module: nn.Module, args: tuple, path: Path, names_in: list[str], names_out: list[str], dyn: Any
) -> None:
    # torch.onnx logs a warning per missing torchvision op on every export: noise for seq2seq.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=names_in,
            output_names=names_out,
            dynamic_shapes=dyn,
            external_data=False,
            verbose=False,
        )
    program.save(str(path))


def export_graphs(model: Any, out_dir: Path) -> dict[str, Path]:
    """Write the three fp32 graphs into `out_dir`; returns graph name -> path."""
    model = model.eval()
    n_layers, d = num_decoder_layers(model), encoder_hidden_size(model)
    B, S, T = torch.export.Dim("batch"), torch.export.Dim("src", max=4096), torch.export.Dim.DYNAMIC
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2178, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    paths = {
        g: out_dir / f"{g}.onnx"
        for g in ("encoder_model", "decoder_model", "decoder_with_past_model")
    }
    _export(
        EncoderWrapper(model),
        (ids, mask),
        paths["encoder_model"],
        ["input_ids", "attention_mask"],
        ["last_hidden_state"],
        {"input_ids": {0: B, 1: S}, "attention_mask": {0: B, 1: S}},
    )
    with torch.no_grad():
        states = EncoderWrapper(model)(ids, mask)
        first = DecoderWrapper(model)(torch.full((2, 1), 101), mask, states)
    dec_in = torch.full((2, 1), 101)
    _export(
        DecoderWrapper(model),
        (dec_in, mask, states),
        paths["decoder_model"],
        ["input_ids", "encoder_attention_mask", "encoder_hidden_states"],
        ["logits", *present_names(n_layers, True)],
        {
            "input_ids": {0: B, 1: T},
            "encoder_attention_mask": {0: B, 1: S},
            "encoder_hidden_states": {0: B, 1: S},
        },
    )
    past = first[1:]
    past_dyn = tuple({0: B, 2: (T if k % 4 < 2 else S)} for k in range(len(past)))
    _export(
        DecoderWithPastWrapper(model, n_layers, d),
        (dec_in, mask, *past),
        paths["decoder_with_past_model"],
        ["input_ids", "encoder_attention_mask", *past_names(n_layers)],
        ["logits", *present_names(n_layers, False)],
        {"input_ids": {0: B}, "encoder_attention_mask": {0: B, 1: S}, "past": past_dyn},
    )
    return paths
