"""Publish one folder of a run (data/, model/ or onnx/, each with its README.md card) to a
Hugging Face hub repo with `huggingface_hub`: create the repo (private unless asked otherwise),
then one `upload_folder` commit whose message names the run.

The token comes from $HF_TOKEN only (never a flag: flags land in shell history and process
lists). It is handed to the client and never formatted into a message: every error line is
composed here from the status and the server's message, with the token masked in case a server
echoes it back.

Exit codes (see distill/commands/push.py): a refusal the user must act on before a rerun can
succeed (401 bad token, 403 no write access, 404 wrong repo or endpoint, other 4xx) is a
UserError, exit 2; a failure the same command may get past later (5xx, 408, 429, a network
error) is `PushFailed`, exit 1, so a script can retry on 1 and stop on 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.cards import CARD_FILE
from distill import __version__
from distill.errors import UserError
from distill.generate import store

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_VAR = "HF_TOKEN"  # the variable huggingface_hub itself reads


@dataclass(frozen=True)
class Part:
    """One pushable folder of a run: its hub repo type, the stage that writes it, and the
    working files of that stage that are not part of the artefact."""

    repo_type: str
    stage: str
    left_out: tuple[str, ...] = ()


# Leftovers of an interrupted atomic write (common/files.py names them `.NAME.XXXX.tmp`).
# `*` crosses `/` in huggingface_hub's patterns (fnmatch), so the second pair covers sub-folders.
_TEMP = (".*.tmp", ".*.tmp/*", "*/.*.tmp", "*/.*.tmp/*")

PARTS: dict[str, Part] = {
    # The journal (every raw teacher reply), the fingerprint and the request cache exist to
    # resume generation; the dataset is the splits, examples, rejections, manifest and card.
    "data": Part(
        "dataset",
        "distill generate",
        (store.JOURNAL, store.STATE, store.CACHE, f"{store.CACHE}-*"),
    ),
    # students/train.py CHECKPOINTS: resume state with optimizer moments, not the model.
    "model": Part("model", "distill train", ("checkpoints", "checkpoints/*")),
    "onnx": Part("model", "distill export"),
}

# OWNER/NAME as the hub accepts it: letters, digits, '-', '_', '.'; no '--' or '..'; no
# leading or trailing '-' or '.'; 96 characters at most for the name.
_PART_RE = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REPO_RE = re.compile(rf"({_PART_RE})/({_PART_RE})")


@dataclass
class PushConfig:
    """What to push where (flags only: no task.toml table)."""

    what: str | None = field(
        default=None,
        metadata={
            "help": "which folder of the run: data (a dataset repo), model or onnx (model repos)",
            "choices": list(PARTS),
            "metavar": "{" + ",".join(PARTS) + "}",
        },
    )
    repo: str | None = field(
        default=None, metadata={"help": "hub repo id, OWNER/NAME", "metavar": "OWNER/NAME"}
    )
    public: bool = field(
        default=False,
        metadata={"help": "create the repo public (an existing repo keeps its visibility)"},
    )
    endpoint: str | None = field(
        default=None,
        metadata={
            "help": f"hub URL of a self-hosted hub; unset: $HF_ENDPOINT, else {DEFAULT_ENDPOINT}",
            "metavar": "URL",
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "list the files and sizes that would go up; no network, no token"},
    )

    def __post_init__(self) -> None:
        if self.what is None:
            raise ValueError(f"what: required, one of {', '.join(PARTS)}")
        if self.what not in PARTS:
            raise ValueError(f"what: must be one of {', '.join(PARTS)} (got {self.what!r})")
        if self.repo is None:
            raise ValueError("repo: required, as OWNER/NAME")
        if not valid_repo_id(self.repo):
            raise ValueError(
                f"repo: must be OWNER/NAME (letters, digits, '-', '_', '.'; got {self.repo!r})"
            )
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint: must be an http(s) URL (got {self.endpoint!r})")


def valid_repo_id(repo: str) -> bool:
    """True for OWNER/NAME the hub accepts (see _REPO_RE)."""
    m = _REPO_RE.fullmatch(repo)
    return bool(m) and "--" not in repo and ".." not in repo and len(m.group(2)) <= 96


@dataclass(frozen=True)
class PushPlan:
    """Everything a push does, decided before any network call (a dry run prints this)."""

    run_name: str
    folder: Path
    repo_id: str
    repo_type: str
    private: bool
    endpoint: str
    ignore: tuple[str, ...]  # huggingface_hub ignore_patterns, defaults included
    files: tuple[tuple[str, int], ...]  # (path in the repo, bytes), sorted
    left_out: tuple[str, ...]  # files of the folder that stay local

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def commit_message(self) -> str:
        return f"distill push: {self.folder.name}/ of run {self.run_name}"

    @property
    def where(self) -> str:
        visibility = "private" if self.private else "public"
        return f"{self.repo_type} repo {self.repo_id} ({visibility}) on {self.endpoint}"


def plan_push(run_dir: Path, cfg: PushConfig) -> PushPlan:
    """Check the run folder and list what would go up; raises UserError naming what to fix."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    part = PARTS[cfg.what]  # type: ignore[index]  # checked in PushConfig
    if not run_dir.is_dir():
        raise UserError(
            f"{run_dir}: no such run directory (`distill run --task T --out {run_dir}` makes one)"
        )
    folder = run_dir / cfg.what  # type: ignore[operator]
    if not folder.is_dir():
        raise UserError(f"{folder}: not found; `{part.stage}` writes it (or `distill run`)")
    if not (folder / CARD_FILE).is_file():
        raise UserError(f"{folder / CARD_FILE}: no card to push with it; rerun `{part.stage}`")
    ignore = (*part.left_out, *_TEMP, *DEFAULT_IGNORE_PATTERNS)
    # The same listing upload_folder makes (sorted rglob of files, then the same filter).
    local = [p.relative_to(folder).as_posix() for p in sorted(folder.glob("**/*")) if p.is_file()]
    kept = list(filter_repo_objects(local, ignore_patterns=list(ignore)))
    return PushPlan(
        run_name=run_dir.resolve().name,
        folder=folder,
        repo_id=cfg.repo,  # type: ignore[arg-type]  # checked in PushConfig
        repo_type=part.repo_type,
        private=not cfg.public,
        endpoint=(cfg.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
        ignore=ignore,
        files=tuple((name, (folder / name).stat().st_size) for name in kept),
        left_out=tuple(name for name in local if name not in set(kept)),
    )


def token_from_env() -> str:
    """$HF_TOKEN, or a UserError saying how to set it (the token is never read from a flag)."""
    token = os.environ.get(TOKEN_VAR, "").strip()
    if not token:
        raise UserError(
            f"{TOKEN_VAR} is not set: export a hub token with write access "
            "(read from the environment only, never from a flag); --dry-run needs none"
        )
    return token


class PushFailed(RuntimeError):
    """The hub or the network failed (5xx, 408, 429, no connection): the same push may succeed
    later. The message is safe to print: it never holds the token."""


@dataclass(frozen=True)
class PushResult:
    repo_url: str
    commit_url: str


def push(plan: PushPlan, token: str) -> PushResult:
    """Create the repo (kept if it exists) and upload the planned files in one commit."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(
        endpoint=plan.endpoint, token=token, library_name="distill", library_version=__version__
    )
    try:
        repo_url = api.create_repo(
            plan.repo_id, repo_type=plan.repo_type, private=plan.private, exist_ok=True
        )
        commit = api.upload_folder(
            repo_id=plan.repo_id,
            repo_type=plan.repo_type,
            folder_path=plan.folder,
            commit_message=plan.commit_message,
            commit_description=(
                f"{len(plan.files)} files from the run folder `{plan.folder.name}/`, "
                f"uploaded by distill {__version__}."
            ),
            ignore_patterns=list(plan.ignore),
        )
    except HfHubHTTPError as exc:
        raise _http_error(plan, exc, token) from None
    except OfflineModeIsEnabled:
        raise UserError(
            "HF_HUB_OFFLINE is set: unset it to push (--dry-run works offline)"
        ) from None
    except ValueError as exc:  # the hub's /api/validate-yaml refused the card's front matter
        raise UserError(f"{plan.folder / CARD_FILE}: {_mask(exc, token)}") from None
    except Exception as exc:
        # Transport errors of the hub client's HTTP library share no base class with OSError;
        # a narrower except would end a dropped connection in a traceback. Reported, not hidden.
        raise PushFailed(
            f"push to {plan.where}: {type(exc).__name__}: {_mask(exc, token)}"
        ) from None
    return PushResult(repo_url=str(repo_url), commit_url=str(commit))


# Per-status advice; statuses not listed fall back to the server's own message.
_ADVICE = {
    401: f"the hub refused the token in ${TOKEN_VAR} (expired or mistyped?)",
    403: f"the token in ${TOKEN_VAR} may not write to this repo (a write token, and a namespace you belong to?)",
    404: "no such repo or API at this endpoint (check --repo and --endpoint)",
}
_RETRYABLE = {408, 429}


def _http_error(plan: PushPlan, exc: Any, token: str) -> Exception:
    """One line naming the repo and the status: UserError (exit 2) or PushFailed (exit 1)."""
    status = exc.response.status_code if exc.response is not None else None
    said = _mask(getattr(exc, "server_message", None) or "", token)
    advice = _ADVICE.get(status) or (
        "the hub failed; try again later" if _transient(status) else ""
    )
    line = f"push to {plan.where}: HTTP {status}: " + "; ".join(
        part for part in (advice, said and f"server said: {said}") if part
    )
    return PushFailed(line) if _transient(status) else UserError(line)


def _transient(status: int | None) -> bool:
    return status is None or status >= 500 or status in _RETRYABLE


def _mask(text: object, token: str) -> str:
    """First line of `text`, shortened, with the token masked (a server may echo it back)."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first.replace(token, "***")[:300]
