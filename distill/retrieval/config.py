"""Settings of `distill retrieve-data` and `distill retrieve-model` (flags only: no task.toml table)."""

from __future__ import annotations

from dataclasses import dataclass, field


def _check_common(top_k: int, bm25_weight: float, hub_limit: int) -> None:
    if top_k <= 0:
        raise ValueError(f"top_k: must be > 0 (got {top_k})")
    if not 0.0 <= bm25_weight <= 1.0:
        raise ValueError(f"bm25_weight: must be in [0, 1] (got {bm25_weight})")
    if hub_limit <= 0:
        raise ValueError(f"hub_limit: must be > 0 (got {hub_limit})")


@dataclass
class RetrieveDataConfig:
    """How datasets are ranked, and how a chosen one becomes extra training data."""

    catalog: str | None = field(
        default=None,
        metadata={
            "help": "catalog JSONL file (default: the shipped one, or the hub with --online)"
        },
    )
    top_k: int = field(default=5, metadata={"help": "datasets to show"})
    bm25_weight: float = field(
        default=0.3,
        metadata={
            "help": "weight of normalised BM25 vs MiniLM cosine (1 = BM25 only, no model load)"
        },
    )
    online: bool = field(
        default=False, metadata={"help": "rank the hub's most downloaded datasets (cached a week)"}
    )
    hub_limit: int = field(default=1000, metadata={"help": "hub datasets to list with --online"})
    refresh: bool = field(default=False, metadata={"help": "rebuild the cached hub catalog"})
    hub_endpoint: str | None = field(
        default=None,
        metadata={"help": "hub URL for --online (default: $HF_ENDPOINT, else huggingface.co)"},
    )
    choose: str | None = field(
        default=None,
        metadata={"help": "convert this dataset (name from the ranking) into extra data"},
    )
    input_column: str | None = field(
        default=None,
        metadata={
            "help": "column that becomes 'input' (dotted paths reach nested fields: translation.en)"
        },
    )
    output_column: str | None = field(
        default=None,
        metadata={
            "help": "column that becomes 'output' (a list gives its first item: answers.text)"
        },
    )
    weight: float = field(
        default=1.0, metadata={"help": "sampling weight of the extra data in training"}
    )
    split: str | None = field(
        default=None, metadata={"help": "split to convert (default: the catalog's, else train)"}
    )
    max_rows: int | None = field(default=None, metadata={"help": "convert at most this many rows"})
    run_dir: str = field(
        default="run",
        metadata={
            "help": "run folder: writes RUN/data/extra/NAME.jsonl and RUN/data/extra_data.json"
        },
    )

    def __post_init__(self) -> None:
        _check_common(self.top_k, self.bm25_weight, self.hub_limit)
        if self.weight <= 0:
            raise ValueError(f"weight: must be > 0 (got {self.weight})")
        if self.max_rows is not None and self.max_rows <= 0:
            raise ValueError(f"max_rows: must be > 0 (got {self.max_rows})")
        if self.choose and not (self.input_column and self.output_column):
            missing = "input_column" if not self.input_column else "output_column"
            raise ValueError(
                f"{missing}: needed with --choose (which column is the {missing.split('_')[0]})"
            )


@dataclass
class RetrieveModelConfig:
    """How candidate students are ranked."""

    catalog: str | None = field(
        default=None, metadata={"help": "model catalog JSON (default: the shipped one)"}
    )
    top_k: int = field(default=5, metadata={"help": "models to show"})
    max_size_gb: float = field(
        default=3.0,
        metadata={"help": "drop models whose fp32 weights exceed this (Prompt2Model: 3)"},
    )
    popularity_weight: float = field(
        default=0.1, metadata={"help": "weight of the log-downloads prior added to the fit score"}
    )
    bm25_weight: float = field(
        default=0.3,
        metadata={
            "help": "weight of normalised BM25 vs MiniLM cosine (1 = BM25 only, no model load)"
        },
    )
    hyde: bool | None = field(
        default=None,
        metadata={
            "help": "query with a model description the teacher writes (HyDE); default: on when a teacher is set by flag or [teacher]"
        },
    )
    online: bool = field(
        default=False,
        metadata={"help": "add the hub's most downloaded text2text models (cached a week)"},
    )
    hub_limit: int = field(default=500, metadata={"help": "hub models to list with --online"})
    refresh: bool = field(default=False, metadata={"help": "rebuild the cached hub model list"})
    hub_endpoint: str | None = field(
        default=None,
        metadata={"help": "hub URL for --online (default: $HF_ENDPOINT, else huggingface.co)"},
    )

    def __post_init__(self) -> None:
        _check_common(self.top_k, self.bm25_weight, self.hub_limit)
        if self.max_size_gb <= 0:
            raise ValueError(f"max_size_gb: must be > 0 (got {self.max_size_gb})")
        if self.popularity_weight < 0:
            raise ValueError(f"popularity_weight: must be >= 0 (got {self.popularity_weight})")
