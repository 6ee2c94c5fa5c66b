"""Torch inference for a trained student directory (greedy or beam search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
) -> list[str]:
    """Decode already-formatted source texts in batches, in input order."""
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
            ids = model.generate(
                input_ids=enc["input_ids"],
                attention_mask=enc["attention_mask"],
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                do_sample=False,
            )  # (batch, generated)
            out += tokenizer.batch_decode(ids, skip_special_tokens=True)
    model.train(was_training)
    return out


class TorchPredictor:
    """A saved student (model dir with distill.json) that maps raw task inputs to outputs."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu") -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.meta: StudentMeta = read_meta(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.model = AutoModelForSeq2SeqLM.from_pretrained(str(self.model_dir)).to(device).eval()

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
    ) -> list[str]:
        """Outputs for raw task inputs (greedy when num_beams == 1)."""
        return generate_texts(
            self.model,
            self.tokenizer,
            [self.source_text(t) for t in inputs],
            max_source_length=self.meta.max_source_length,
            max_new_tokens=max_new_tokens or self.meta.max_new_tokens,
            num_beams=num_beams,
            batch_size=batch_size,
        )
