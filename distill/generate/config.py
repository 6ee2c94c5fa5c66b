"""Settings of `distill generate`; every field is a flag and a key of task.toml's [generate].

Kept import-light (no torch, no numpy): `distill --help` and task validation import it.
Fields marked in `FINGERPRINT_FIELDS` change what data a run produces; changing one of them
gives the run a new fingerprint, and a rerun into the same directory is refused (no silently
mixed data) unless `--overwrite`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MODES = ("synthesize", "label", "synthesize-label")
SCHEDULES = ("linear", "cosine", "constant")
CALIBRATIONS = ("auto", "content-free", "none")  # calibration.py
MAX_TOP_LOGPROBS = 20  # OpenAI's limit; vLLM and llama.cpp accept it too
# The settings that hold no test split out of the accepted examples: where a real test set
# scores the student (`distill run --test`, the benchmarks), every paid example trains or
# validates instead.
NO_TEST_SPLIT: dict[str, Any] = {"test_fraction": 0.0, "min_test_examples": 0}
DEFAULT_NUM_EXAMPLES = (
    100  # target when the teacher writes the inputs (no --inputs, not label mode)
)

# Settings that decide which requests are sent and how answers are judged. `num_examples` is
# deliberately absent: asking for more examples later should extend a run, not restart it.
# `inputs` is covered by a hash of the file's inputs (moving the file changes nothing).
FINGERPRINT_FIELDS = (
    "mode",
    "seed",
    "votes",
    "min_agreement",
    "pairs_per_request",
    "few_shot_accepted",
    "few_shot_demos",
    "temperature_start",
    "temperature_end",
    "schedule",
    "label_temperature",
    "near_dup_threshold",
    "max_input_chars",
    "max_output_chars",
    "output_regex",
    "lowercase_outputs",
    "chain_of_thought",
    "max_tokens",
    "labels",
    "label_weights",
    "infer_labels",
    "max_label_lead",
    "format_check",
    "attribute_prompts",
    "topics",
)


@dataclass
class GenerateConfig:
    """How the teacher is asked for data, how answers are judged, and how much to collect."""

    inputs: str | None = field(
        default=None,
        metadata={"help": "JSONL of unlabelled inputs (field 'input'): label mode"},
    )
    num_examples: int | None = field(
        default=None,
        metadata={
            "help": "accepted examples to produce (default: every input with --inputs in label "
            "mode, else 100); with --inputs it caps how many are labelled"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed (request i is sent with seed+i)"})
    mode: str | None = field(
        default=None,
        metadata={
            "help": "synthesize (teacher writes pairs), label (teacher labels --inputs), or "
            "synthesize-label (teacher writes inputs, then each is labelled by a vote); "
            "default: label when --inputs is given, else synthesize",
            "choices": MODES,
        },
    )
    votes: int | None = field(
        default=None,
        metadata={
            "help": "outputs sampled per distinct input for the majority vote (default: 1, "
            "one greedy label; 3 with --chain-of-thought)"
        },
    )
    min_agreement: float = field(
        default=0.5,
        metadata={"help": "reject an input whose winning answer has a smaller vote share"},
    )
    pairs_per_request: int = field(
        default=3, metadata={"help": "new examples asked for in each synthesize request"}
    )
    # 2, not all: shown all 4 demonstrations of examples/dates.toml, the embedded teacher
    # answered with those 4 verbatim (21 of 23 pairs in 6 answers were demo copies); shown 2,
    # it accepted 24 examples in the same 4 minutes (docs/generate.md, "Yield"). 1, measured on
    # the data ablation, raised the yield (0.68 -> 0.83 on sentiment) but not the students
    # (+0.2, -5.0 and +0.8 points on three runs), so 2 stays.
    few_shot_demos: int = field(
        default=2, metadata={"help": "user demonstrations shown in each prompt (random subset)"}
    )
    # 0, not 3: shown accepted examples, the embedded teacher copies them. On the sentiment
    # data ablation (300 examples an arm, two seeds each), 3 gave a yield of 0.37 and 0.32 in
    # 201 and 211 requests (283 exact duplicates in one run); 0 gave 0.63 and 0.64 in 122 and
    # 121 requests, in half the time, with students not told apart (README, "Data ablation").
    few_shot_accepted: int = field(
        default=0,
        metadata={"help": "previously accepted examples mixed into each synthesize prompt"},
    )
    temperature_start: float = field(
        default=0.4, metadata={"help": "synthesize temperature with no example accepted yet"}
    )
    temperature_end: float = field(
        default=1.0, metadata={"help": "synthesize temperature when the target is reached"}
    )
    schedule: str = field(
        default="linear",
        metadata={"help": "temperature annealing schedule", "choices": SCHEDULES},
    )
    # Greedy single labels by default: on 500 real sentiment inputs the embedded teacher's
    # greedy labels matched gold 60.8% of the time, a 3-sample vote at 0.7 only 57.6%
    # (paired difference -3.2 points, 95% CI [-6.2, -0.4]; README "Student vs teacher").
    label_temperature: float | None = field(
        default=None,
        metadata={
            "help": "temperature of label (vote) requests (default: 0, greedy, with one vote; "
            "0.7 when voting)"
        },
    )
    max_tokens: int = field(default=512, metadata={"help": "max tokens of one teacher answer"})
    synth_max_tokens: int | None = field(
        default=None,
        metadata={
            "help": "max tokens of one synthesize answer (default: sized from the "
            "demonstrations, twice the longest one's estimated tokens per asked-for pair plus "
            "32, at most --max-tokens: answers that loop past their pairs stop sooner)"
        },
    )
    near_dup_threshold: float = field(
        default=0.8,
        metadata={
            "help": "MinHash Jaccard similarity above which an input is a near-duplicate "
            "(1.0 disables near-dup filtering)"
        },
    )
    max_input_chars: int = field(default=2000, metadata={"help": "reject longer inputs"})
    max_output_chars: int = field(default=1000, metadata={"help": "reject longer outputs"})
    output_regex: str | None = field(
        default=None, metadata={"help": "outputs must fully match this regex (Python syntax)"}
    )
    lowercase_outputs: bool = field(
        default=False,
        metadata={"help": "compare outputs case-insensitively in the vote (label-like tasks)"},
    )
    chain_of_thought: bool = field(
        default=False,
        metadata={"help": "ask for reasoning and vote on the parsed final answer only"},
    )
    labels: list[str] | None = field(
        default=None,
        metadata={
            "help": "closed label set (comma-separated on the command line): synthesize "
            "requests ask for one label at a time, and outputs outside the set are rejected "
            "(unset: inferred, see --infer-labels)"
        },
    )
    label_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "target share of each label, in the order of --labels (unset: equal shares)"
        },
    )
    infer_labels: bool = field(
        default=True,
        metadata={
            "help": "without --labels, infer a label set when every demonstration output is "
            "at most 3 words and the instruction names them all"
        },
    )
    # Off by default: on sentiment, 300 synthesized examples took 171-211 teacher requests
    # without label requests and 375-422 with them, and the students scored alike on 500 real
    # MultiEmo sentences (44.8-52.8% vs 38.4-53.0% exact match; README "Data ablation").
    label_requests: bool = field(
        default=False,
        metadata={
            "help": "with a label set, each synthesize request asks for one label (the least "
            "filled) and --max-label-lead caps the lead; off: the teacher picks each label, "
            "and the set only rejects or respells outputs"
        },
    )
    max_label_lead: int = field(
        default=10,
        metadata={
            "help": "with label requests (--label-requests), reject a synthesized example "
            "whose label is already this many examples ahead of the least-filled label (scaled "
            "by the label weights) as label_over_share, so a teacher that drifts to one label "
            "cannot skew the set; without them the teacher picks each label and no cap applies, "
            "nor in label mode (given inputs keep their real labels); 0 turns it off"
        },
    )
    format_check: bool = field(
        default=True,
        metadata={
            "help": "reject outputs whose shape differs from the one all demonstration "
            "outputs share (e.g. \\d{2}/\\d{2}/\\d{4}), and impossible dates where the "
            "instruction names a layout such as MM/DD/YYYY (--output-regex replaces the shape)"
        },
    )
    attribute_prompts: bool = field(
        default=True,
        metadata={
            "help": "ask each synthesize request for a drawn topic, length, style and "
            "difficulty (more diverse inputs, fewer duplicates)"
        },
    )
    topics: list[str] | None = field(
        default=None,
        metadata={"help": "topics drawn by --attribute-prompts (unset: 16 built-in topics)"},
    )
    top_logprobs: int | None = field(
        default=None,
        metadata={
            "help": "with a label set, ask every label request for the top K log-probabilities "
            "of the answer tokens (chat-completions `logprobs`/`top_logprobs`; at most 20) and "
            "store the teacher's distribution over the labels with each example (`label_probs`, "
            "for `distill train --soft-label-weight` and --label-calibration); 0: do not ask "
            "(with --votes > 1 the vote shares are stored instead); unset: 5 in label "
            "requests unless --label-calibration none or a batch mode, else 0"
        },
    )
    label_calibration: str = field(
        default="auto",
        metadata={
            "choices": CALIBRATIONS,
            "help": "content-free: after labelling, ask the same label prompt about three "
            "inputs that say nothing (N/A, [MASK], ...), divide each example's distribution by "
            "their mean and take the argmax as its label (contextual calibration, Zhao et al. "
            "2021: removes a label bias the prompt gives the teacher; needs a label set and "
            "log-probabilities); auto (default): the same, kept only where the calibrated "
            "labels are spread more evenly than the teacher's own (it made the intent labels "
            "+6.5 points better and would have taken sentiment's neutral label away), and "
            "nothing where the run has no label set or no log-probabilities; none: keep the "
            "teacher's own answers and ask for no log-probabilities",
        },
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "share of accepted examples put in validation.jsonl"}
    )
    test_fraction: float = field(
        default=0.1,
        metadata={
            "help": "share of accepted examples put in test.jsonl, by a hash of the input "
            "(never trained on, nor used for early stopping or the int8 gate)"
        },
    )
    min_test_examples: int = field(
        default=50,
        metadata={
            "help": "raise the test share to hold at least this many examples, up to "
            "a quarter of the data"
        },
    )
    max_consecutive_failures: int = field(
        default=50,
        metadata={"help": "stop after this many failed or unusable answers in a row"},
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "discard an existing run in --out whose settings differ"},
    )
    batch: bool = field(
        default=False,
        metadata={
            "help": "send the requests through the server's Batch API (/v1/files, /v1/batches: "
            "half price on OpenAI, answers within 24 h) instead of streaming them; one batch "
            "per round of what the sampler needs now; rerun the same command to re-attach"
        },
    )
    batch_file: str | None = field(
        default=None,
        metadata={
            "help": "write the requests the sampler needs now as a Batch API JSONL file "
            "(custom_id = the request's cache key) without sending anything, e.g. for "
            "`vllm run-batch`",
            "metavar": "OUT.jsonl",
        },
    )
    batch_results: str | None = field(
        default=None,
        metadata={
            "help": "ingest a Batch API results file (OpenAI output/error file or `vllm "
            "run-batch` output) for requests written by --batch-file; answers already "
            "ingested are skipped",
            "metavar": "IN.jsonl",
        },
    )
    cancel: bool = field(
        default=False,
        metadata={"help": "with --batch: cancel the running batch of this run, keep its answers"},
    )
    batch_poll_s: float = field(
        default=10.0,
        metadata={
            "help": "first wait between batch status polls (grows 1.5x, up to 20x this and 5 min)"
        },
    )

    def __post_init__(self) -> None:
        self._check_batch()
        self._check_counts()
        self._check_ranges()
        self._check_labels()
        self._check_splits()

    def _check_batch(self) -> None:
        chosen = [n for n in ("batch", "batch_file", "batch_results") if getattr(self, n)]
        if len(chosen) > 1:
            other = "--" + chosen[0].replace("_", "-")
            raise ValueError(f"{chosen[1]}: cannot be combined with {other}; pick one")
        if self.cancel and not self.batch:
            raise ValueError("cancel: cancels the running batch of --batch (got no --batch)")
        if self.batch_poll_s <= 0:
            raise ValueError(f"batch_poll_s: must be > 0 (got {self.batch_poll_s})")
        if self.top_logprobs and self.batch_mode:  # unset resolves to 0 there
            raise ValueError(
                "top_logprobs: not supported with --batch, --batch-file or --batch-results yet "
                "(stream the requests, or use --votes > 1 for vote-share soft labels)"
            )

    def _check_calibration(self) -> None:
        if self.label_calibration not in CALIBRATIONS:
            raise ValueError(
                f"label_calibration: must be one of {', '.join(CALIBRATIONS)} "
                f"(got {self.label_calibration!r})"
            )
        if self.label_calibration != "content-free":  # auto does what the run allows
            return
        # the mode is checked at run time (run.run_rules): a task file's key is checked before
        # the command line's --inputs makes the run a label run
        if self.batch_mode:
            raise ValueError(
                "label_calibration: content-free is not supported with --batch, --batch-file "
                "or --batch-results yet (it needs log-probabilities)"
            )
        if self.top_logprobs == 0:
            raise ValueError(
                "label_calibration: content-free needs log-probabilities (got --top-logprobs 0)"
            )

    @property
    def batch_mode(self) -> bool:
        """Requests go through batch files or the Batch API, not streamed."""
        return bool(self.batch or self.batch_file or self.batch_results)

    def _check_counts(self) -> None:
        if self.num_examples is not None and self.num_examples <= 0:
            raise ValueError(f"num_examples: must be > 0 (got {self.num_examples})")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)} (got {self.mode!r})")
        if self.mode == "label" and not self.inputs:
            raise ValueError("mode: 'label' needs --inputs FILE.jsonl (got no inputs)")
        for name in (
            "pairs_per_request",
            "max_tokens",
            "max_input_chars",
            "max_output_chars",
            "max_consecutive_failures",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0 (got {getattr(self, name)})")
        if self.synth_max_tokens is not None and self.synth_max_tokens <= 0:
            raise ValueError(f"synth_max_tokens: must be > 0 (got {self.synth_max_tokens})")
        if self.votes is not None and self.votes <= 0:
            raise ValueError(f"votes: must be > 0 (got {self.votes})")
        if self.resolved_mode == "synthesize" and self.votes not in (None, 1):
            raise ValueError(
                f"votes: voting needs mode label or synthesize-label (got {self.votes} "
                "with mode synthesize)"
            )
        if self.chain_of_thought and self.resolved_mode == "synthesize":
            # A synthesized pair carries no reasoning to vote on, and synthesize mode sends no
            # label request: such a run would accept nothing, ever.
            raise ValueError(
                "chain_of_thought: needs mode label or synthesize-label (the teacher reasons "
                "when it labels an input; synthesize mode only writes pairs)"
            )
        if self.mode == "synthesize" and self.inputs:
            raise ValueError("mode: 'synthesize' ignores --inputs; use label or synthesize-label")
        for name in ("few_shot_demos", "few_shot_accepted"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0 (got {getattr(self, name)})")
        if self.top_logprobs is not None and not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ValueError(
                f"top_logprobs: must be in [0, {MAX_TOP_LOGPROBS}] (got {self.top_logprobs})"
            )
        if self.top_logprobs and self.resolved_mode == "synthesize":
            raise ValueError(
                "top_logprobs: needs mode label or synthesize-label (log-probabilities are "
                "read from label requests; synthesize mode sends none)"
            )

    def _check_ranges(self) -> None:
        for name in ("temperature_start", "temperature_end", "label_temperature"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name}: must be in [0, 2] (got {getattr(self, name)})")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement: must be in [0, 1] (got {self.min_agreement})")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(
                f"near_dup_threshold: must be in (0, 1] (got {self.near_dup_threshold})"
            )
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction: must be in [0, 1) (got {self.validation_fraction})"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule: must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})"
            )
        self._check_calibration()
        if self.output_regex is not None:
            import re

            try:
                re.compile(self.output_regex)
            except re.error as exc:
                raise ValueError(f"output_regex: not a valid regex ({exc})") from None

    def _check_labels(self) -> None:
        if self.labels is not None:
            self.labels = [str(x).strip() for x in self.labels]
            keys = [" ".join(x.lower().split()) for x in self.labels]
            if len(self.labels) < 2 or not all(self.labels):
                raise ValueError(f"labels: needs at least 2 non-empty labels (got {self.labels})")
            if len(set(keys)) != len(keys):
                raise ValueError(f"labels: labels must differ beyond case (got {self.labels})")
        if self.label_weights is not None:
            self.label_weights = _floats("label_weights", self.label_weights)
            if not self.labels:
                raise ValueError("label_weights: needs labels (the weights follow their order)")
            if len(self.label_weights) != len(self.labels):
                raise ValueError(
                    f"label_weights: needs one weight per label ({len(self.labels)} labels, "
                    f"got {len(self.label_weights)} weights)"
                )
            if min(self.label_weights) < 0 or sum(self.label_weights) <= 0:
                raise ValueError(
                    f"label_weights: must be >= 0 with a positive sum (got {self.label_weights})"
                )
            if not self.label_requests:
                raise ValueError(
                    "label_weights: the shares steer which label each synthesize request asks "
                    "for, so they need label_requests = true (--label-requests)"
                )
        if self.topics is not None:
            self.topics = [str(x).strip() for x in self.topics if str(x).strip()]
            if not self.topics:
                raise ValueError("topics: needs at least one topic (or leave it unset)")

    def _check_splits(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction: must be in [0, 1) (got {self.test_fraction})")
        if self.test_fraction + self.validation_fraction >= 1.0:
            raise ValueError(
                f"test_fraction: test_fraction + validation_fraction must be < 1 (got "
                f"{self.test_fraction} + {self.validation_fraction})"
            )
        if self.max_label_lead < 0:
            raise ValueError(f"max_label_lead: must be >= 0 (got {self.max_label_lead})")
        if self.min_test_examples < 0:
            raise ValueError(f"min_test_examples: must be >= 0 (got {self.min_test_examples})")

    @property
    def resolved_mode(self) -> str:
        """The mode after defaults: label when inputs are given, else synthesize."""
        return self.mode or ("label" if self.inputs else "synthesize")

    @property
    def resolved_top_logprobs(self) -> int:
        """--top-logprobs after defaults: unset is 5 when label calibration needs them and
        label requests are streamed (label and synthesize-label mode, no batch), else 0. The
        driver still asks only in a run with a label set."""
        if self.top_logprobs is not None:
            return self.top_logprobs
        streamed = self.resolved_mode != "synthesize" and not self.batch_mode
        return 5 if streamed and self.label_calibration != "none" else 0

    def resolved_synth_max_tokens(self, demos: Sequence[tuple[str, str]]) -> int:
        """The max_tokens of a synthesize request: --synth-max-tokens, else sized from the
        demonstrations (`prompts.synth_answer_tokens`)."""
        from distill.generate.prompts import synth_answer_tokens

        if self.synth_max_tokens is not None:
            return self.synth_max_tokens
        return synth_answer_tokens(demos, self.pairs_per_request, self.max_tokens)

    def target(self, n_inputs: int) -> int:
        """Examples to accept: label mode labels every input unless --num-examples caps it."""
        if self.resolved_mode == "label":
            return self.num_examples or n_inputs
        return self.num_examples or DEFAULT_NUM_EXAMPLES

    @property
    def resolved_votes(self) -> int:
        """Votes per input after defaults: 1 (a greedy label), 3 when the teacher reasons
        (self-consistency over reasoning paths, where it is known to help)."""
        if self.votes is not None:
            return self.votes
        return 3 if self.chain_of_thought else 1

    @property
    def resolved_label_temperature(self) -> float:
        """The label requests' temperature: as set, else greedy for one vote, 0.7 for several
        (identical greedy samples would make a vote pointless)."""
        if self.label_temperature is not None:
            return self.label_temperature
        return 0.7 if self.resolved_votes > 1 else 0.0


def _floats(name: str, values: list) -> list[float]:
    """Numbers from TOML (int/float) or from the command line (strings), or a ValueError."""
    try:
        if any(isinstance(v, bool) for v in values):
            raise TypeError
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be numbers (got {values})") from None
