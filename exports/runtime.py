"""The torch-free runtime: load an exported directory and generate text.

Imports only onnxruntime, tokenizers and numpy (a test checks that torch and transformers stay
out of `sys.modules`). Text handling is the student's, by construction: the source text is
`distill.json["task_prefix"]` (if any) + `distill.json["source_template"].format(instruction=...,
input=...)` (common.meta.format_source), encoded and decoded by the saved `tokenizer.json`, so
this runtime and `students.predict.TorchPredictor` agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from common.copy_decoding import SpanTracker
from common.label_decoding import LabelDecoder
from common.meta import StudentMeta, read_meta
from exports.decoding import beam_search, greedy
from exports.layout import GRAPHS, graph_file, resolve_precision


def session_options(threads: int | None) -> ort.SessionOptions:
    """One intra-op pool of `threads` (None: onnxruntime's default, all cores)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


class DecodeOptions(TypedDict, total=False):
    """Keyword options of `OnnxSeq2Seq.generate_ids` (and so of `generate`)."""

    max_new_tokens: int | None  # default: distill.json's max_new_tokens
    num_beams: int  # 1: greedy
    batch_size: int  # inputs per forward pass
    min_new_tokens: int  # EOS is suppressed before this many tokens
    # Greedy decoding chooses among these labels (common.label_decoding); None: distill.json's
    # `labels` (free decoding when it has none); []: free decoding.
    labels: list[str] | None


class OnnxSeq2Seq:
    """An exported seq2seq student: `generate(["input", ...]) -> ["output", ...]`."""

    def __init__(
        self, onnx_dir: str | Path, *, threads: int | None = None, precision: str = "auto"
    ) -> None:
        self.onnx_dir = Path(onnx_dir)
        self.meta: StudentMeta = read_meta(self.onnx_dir)
        self.precision = resolve_precision(self.onnx_dir, precision)
        opts = session_options(threads)
        self.sessions = {g: self._session(g, opts) for g in GRAPHS}
        self.tokenizer = Tokenizer.from_file(str(self.onnx_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.meta.max_source_length)
        outs = [o.name for o in self.sessions["decoder_model"].get_outputs()]
        self.n_layers = sum(1 for n in outs if n.endswith(".decoder.key"))
        self.start = self.meta.decoder_start_token_id
        self.eos = self.meta.eos_token_id
        self.pad = self.meta.pad_token_id
        # copy decoding's spans: word spans (True), or any run of tokens (False: the first
        # version, which benchmarks/copy_decoding.py compares on the same weights)
        self.copy_words = True
        # distill.json's label set, tokenised once: generate() runs per request
        self._labels = LabelDecoder.for_student(self.meta, None, self._label_ids)

    def _label_ids(self, label: str) -> list[int]:
        return self.tokenizer.encode(label, add_special_tokens=False).ids

    def label_decoder(self, labels: list[str] | None = None) -> LabelDecoder | None:
        """The label set greedy decoding is held to: `labels`, else distill.json's (None: free)."""
        if labels is None:
            return self._labels
        return LabelDecoder.for_student(self.meta, labels, self._label_ids)

    def _session(self, graph: str, opts: ort.SessionOptions) -> ort.InferenceSession:
        path = self.onnx_dir / graph_file(graph, self.precision)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found (precision {self.precision!r}); run `distill export`"
            )
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def source_text(self, text: str) -> str:
        """The text the student was trained to read for one raw task input."""
        # No lower-casing here even when `lowercase_input` is set: the tokenizer's own
        # normalizer does it (and may first insert case markers the student learnt).
        return self.meta.source_text(text)

    def encode(self, inputs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, right-padded: both (batch, src) int64."""
        encs = self.tokenizer.encode_batch([self.source_text(t) for t in inputs])
        width = max(1, max(len(e.ids) for e in encs))
        ids = np.full((len(encs), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, 1
        return ids, mask

    def generate(self, inputs: list[str], **options: Unpack[DecodeOptions]) -> list[str]:
        """Outputs for raw task inputs, in order (options: those of `generate_ids`)."""
        ids = self.generate_ids(inputs, **options)
        return self.tokenizer.decode_batch(ids, skip_special_tokens=True) if ids else []

    def generate_ids(
        self,
        inputs: list[str],
        *,
        max_new_tokens: int | None = None,
        num_beams: int = 1,
        batch_size: int = 16,
        min_new_tokens: int = 0,
        labels: list[str] | None = None,
    ) -> list[list[int]]:
        """Generated token ids (without the start token, cut before EOS) for each input.

        With a label set (`labels`, or distill.json's when None) greedy decoding answers one of
        its labels, in fewer decoder steps (common.label_decoding); without one, a student whose
        distill.json says `copy_input` decodes only word spans of its input (common.copy_decoding).
        `labels=[]`, beam search and `min_new_tokens` decode freely."""
        if num_beams < 1 or batch_size < 1:
            raise ValueError(
                f"num_beams and batch_size must be >= 1 (got {num_beams}, {batch_size})"
            )
        max_new = int(max_new_tokens or self.meta.max_new_tokens)
        free = num_beams > 1 or min_new_tokens > 0
        decoder = None if free else self.label_decoder(labels)
        copy = self.meta.copies(labels, free)
        out: list[list[int]] = []
        for i in range(0, len(inputs), batch_size):
            batch = inputs[i : i + batch_size]
            ids, mask = self.encode(batch)
            if decoder is not None:
                out += self._decode_labels(ids, mask, decoder)
            else:
                spans = self._span_tracker(batch) if copy else None
                out += self._decode_batch(ids, mask, max_new, num_beams, min_new_tokens, spans)
        return out

    def _span_tracker(self, inputs: list[str]) -> SpanTracker:
        """Copy decoding's tracker over each raw input's own tokens (no instruction, no special
        tokens), with their pieces for word spans unless `copy_words` is off."""
        enc = self.tokenizer.encode_batch(inputs, add_special_tokens=False)
        pieces = [e.tokens for e in enc] if self.copy_words else None
        return SpanTracker([e.ids for e in enc], self.eos, pieces)

    def _encoder_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The encoder's last hidden states (batch, src, d) for right-padded ids and mask."""
        feeds = {"input_ids": ids, "attention_mask": mask}
        return self.sessions["encoder_model"].run(None, feeds)[0]

    def _decode_labels(
        self, ids: np.ndarray, mask: np.ndarray, decoder: LabelDecoder
    ) -> list[list[int]]:
        states = self._encoder_states(ids, mask)
        return decoder(_Stepper(self, states, mask), len(ids))

    def label_scores(
        self, inputs: list[str], labels: list[str], *, batch_size: int = 16
    ) -> np.ndarray:
        """(len(inputs), len(labels)) log-probabilities of each label's whole token sequence
        (its tokens, then the end token), teacher-forced: the scores soft-label training
        uses (students.soft_labels), for calibration. One decoder step per label token."""
        seqs = [[*self._label_ids(x), self.eos] for x in labels]
        out = []
        for i in range(0, len(inputs), batch_size):
            ids, mask = self.encode(inputs[i : i + batch_size])
            states = self._encoder_states(ids, mask)
            out.append(np.stack([self._sequence_logprob(states, mask, s) for s in seqs], axis=1))
        return np.concatenate(out) if out else np.zeros((0, len(labels)))

    def _sequence_logprob(self, states: np.ndarray, mask: np.ndarray, seq: list[int]) -> np.ndarray:
        """(batch,) sum of log p(seq[t] | seq[:t], input) over the sequence."""
        step = _Stepper(self, states, mask)
        tokens = np.full((len(states), 1), self.start, dtype=np.int64)
        total = np.zeros(len(states), dtype=np.float64)
        for tok in seq:
            logits = step(tokens, None).astype(np.float64)  # (batch, vocab)
            top = logits.max(axis=1, keepdims=True)
            logz = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
            total += logits[:, tok] - logz
            tokens = np.full((len(states), 1), tok, dtype=np.int64)
        return total

    def _decode_batch(
        self,
        ids: np.ndarray,
        mask: np.ndarray,
        max_new: int,
        num_beams: int,
        min_new: int,
        spans: SpanTracker | None = None,
    ) -> list[list[int]]:
        states = self._encoder_states(ids, mask)
        if num_beams > 1:  # every beam of a row reads the same encoder output
            states, mask = np.repeat(states, num_beams, axis=0), np.repeat(mask, num_beams, axis=0)
        step = _Stepper(self, states, mask)
        if num_beams == 1:
            return greedy(
                step,
                len(ids),
                start=self.start,
                eos=self.eos,
                pad=self.pad,
                max_new=max_new,
                min_new=min_new,
                spans=spans,
            )
        return beam_search(
            step,
            len(ids),
            num_beams=num_beams,
            start=self.start,
            eos=self.eos,
            max_new=max_new,
            min_new=min_new,
        )


class _Stepper:
    """One decoder step at a time, keeping the KV cache between calls.

    The first call runs `decoder_model` (which also returns the cross-attention cache, computed
    once); later calls run `decoder_with_past` and grow only the self-attention cache.
    """

    def __init__(self, model: OnnxSeq2Seq, states: np.ndarray, mask: np.ndarray) -> None:
        self.model, self.states, self.mask = model, states, mask
        self.past: dict[str, np.ndarray] | None = None

    def __call__(self, tokens: np.ndarray, reorder: np.ndarray | None) -> np.ndarray:
        n = self.model.n_layers
        if self.past is None:
            sess = self.model.sessions["decoder_model"]
            feeds = {
                "input_ids": tokens,
                "encoder_attention_mask": self.mask,
                "encoder_hidden_states": self.states,
            }
            outs = sess.run(None, feeds)
            names = [o.name for o in sess.get_outputs()]
            self.past = {
                nm.replace("present.", "past_key_values."): v
                for nm, v in zip(names[1:], outs[1:], strict=True)
            }
            return outs[0][:, -1, :]
        if reorder is not None:  # beams moved: self-attention caches follow their beams
            for key in self.past:
                if ".decoder." in key:
                    self.past[key] = self.past[key][reorder]
            # Cross caches need no reorder: beams only move within the same input row.
        feeds = {"input_ids": tokens, "encoder_attention_mask": self.mask, **self.past}
        outs = self.model.sessions["decoder_with_past_model"].run(None, feeds)
        for i in range(n):
            self.past[f"past_key_values.{i}.decoder.key"] = outs[1 + 2 * i]
            self.past[f"past_key_values.{i}.decoder.value"] = outs[2 + 2 * i]
        return outs[0][:, -1, :]
