"""Torch inference for a trained student directory (greedy, greedy inside a label set, or beam
search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.label_decoding import LabelDecoder
from common.meta import StudentMeta, read_meta


def generate_texts(
    model: Any,
    tokenizer: Any,
    sources: list[str],
    *,
    max_source_length: int,
    max_new_tokens: int,
    num_beams: int = 1,
    batch_size: int = 16,
    labels: LabelDecoder | None = None,
    copy_from: list[str] | None = None,
) -> list[str]:
    """Decode already-formatted source texts in batches, in input order; with a label set
    (and num_beams 1), greedy inside it (common.label_decoding); else with `copy_from` (the raw
    input of each source, num_beams 1), greedy held to spans of each input's tokens
    (common.copy_decoding)."""
    import torch

    device = next(model.parameters()).device
    out: list[str] = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(sources), batch_size):
            enc = tokenizer(
                sources[start : start + batch_size],
                truncation=True,
                max_length=max_source_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            if labels is not None and num_beams == 1:
                ids = _label_ids(model, enc["input_ids"], enc["attention_mask"], labels)
            else:
                copy = copy_from is not None and num_beams == 1
                raw = copy_from[start : start + batch_size] if copy else None  # type: ignore[index]
                ids = model.generate(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    max_new_tokens=max_new_tokens,
                    num_beams=num_beams,
                    do_sample=False,
                    logits_processor=_copy_processor(model, tokenizer, raw, max_source_length),
                )  # (batch, generated)
            out += tokenizer.batch_decode(ids, skip_special_tokens=True)
    model.train(was_training)
    return out


def _copy_processor(model: Any, tokenizer: Any, inputs: list[str] | None, max_len: int) -> Any:
    """None, or a logits processor that holds each row to spans of its raw input's tokens (cut
    at `max_len`, as the ONNX runtime's tokenizer cuts them): common.copy_decoding's
    SpanTracker, which the ONNX runtime's greedy drives the same way."""
    if inputs is None:
        return None
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from common.copy_decoding import SpanTracker

    enc = tokenizer(inputs, add_special_tokens=False, truncation=True, max_length=max_len)
    eos = model.generation_config.eos_token_id
    pieces = [tokenizer.convert_ids_to_tokens(ids) for ids in enc["input_ids"]]
    tracker = SpanTracker(enc["input_ids"], eos[0] if isinstance(eos, list) else eos, pieces)

    class _Copy(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if input_ids.shape[1] > 1:  # the token chosen last step (after the start token)
                tracker.update(input_ids[:, -1].tolist())
            allowed = torch.from_numpy(tracker.mask(scores.shape[-1])).to(scores.device)
            return scores.masked_fill(~allowed, float("-inf"))

    return LogitsProcessorList([_Copy()])


def _label_ids(model: Any, input_ids: Any, mask: Any, labels: LabelDecoder) -> list[list[int]]:
    """Label-set greedy with the torch model: each step re-reads the whole decoded prefix (labels
    are a few tokens, so no cache is needed), the encoder runs once."""
    import numpy as np
    import torch

    states = model.get_encoder()(input_ids=input_ids, attention_mask=mask)
    prefix: list[torch.Tensor] = []

    def step(tokens: np.ndarray, _reorder: np.ndarray | None) -> np.ndarray:
        prefix.append(torch.from_numpy(tokens).to(input_ids.device))
        logits = model(
            encoder_outputs=states,
            attention_mask=mask,
            decoder_input_ids=torch.cat(prefix, 1),
            use_cache=False,
        ).logits[:, -1, :]
        return logits.float().cpu().numpy()

    return labels(step, len(input_ids))


class TorchPredictor:
    """A saved student (model dir with distill.json) that maps raw task inputs to outputs."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu") -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.meta: StudentMeta = read_meta(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.model = AutoModelForSeq2SeqLM.from_pretrained(str(self.model_dir)).to(device).eval()
        # distill.json's label set, tokenised once: generate() may run per request
        self._labels = LabelDecoder.for_student(self.meta, None, self._label_ids)

    def _label_ids(self, label: str) -> list[int]:
        return self.tokenizer(label, add_special_tokens=False)["input_ids"]

    def label_decoder(self, labels: list[str] | None = None) -> LabelDecoder | None:
        """The label set greedy decoding is held to: `labels`, else distill.json's (None: free)."""
        if labels is None:
            return self._labels
        return LabelDecoder.for_student(self.meta, labels, self._label_ids)

    def source_text(self, text: str) -> str:
        """The source the model was trained on for a raw input."""
        return self.meta.source_text(text)

    def label_scores(self, inputs: list[str], labels: list[str], *, batch_size: int = 16) -> Any:
        """(len(inputs), len(labels)) numpy array: log-probability of each label's whole token
        sequence given each input, teacher-forced (students.soft_labels.label_scores)."""
        import numpy as np
        import torch

        from students.soft_labels import label_scores, label_token_ids

        ids = label_token_ids(self.tokenizer, labels, self.meta.eos_token_id)
        encoder = self.model.get_encoder()
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                enc = self.tokenizer(
                    [self.source_text(t) for t in inputs[start : start + batch_size]],
                    truncation=True,
                    max_length=self.meta.max_source_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.model.device)
                scores = label_scores(
                    self.model, encoder, enc["input_ids"], enc["attention_mask"], ids
                )
                out.append(scores.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(labels)))

    def generate(
        self,
        inputs: list[str],
        *,
        max_new_tokens: int | None = None,
        num_beams: int = 1,
        batch_size: int = 16,
        labels: list[str] | None = None,
    ) -> list[str]:
        """Outputs for raw task inputs (greedy when num_beams == 1). With a label set (`labels`,
        or distill.json's when None; [] decodes freely) greedy answers one of its labels, as the
        ONNX runtime does; without one, a `copy_input` student decodes only word spans of its input."""
        return generate_texts(
            self.model,
            self.tokenizer,
            [self.source_text(t) for t in inputs],
            max_source_length=self.meta.max_source_length,
            max_new_tokens=max_new_tokens or self.meta.max_new_tokens,
            num_beams=num_beams,
            batch_size=batch_size,
            labels=self.label_decoder(labels),
            copy_from=list(inputs) if self.meta.copies(labels, num_beams > 1) else None,
        )
