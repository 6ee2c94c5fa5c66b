"""Exceptions of the teacher layer. Callers catch `RequestFailed` per request and move on; the
others stop a run. No message ever contains the API key (the client redacts server messages)."""

from __future__ import annotations


class TeacherError(Exception):
    """Base class of every teacher error."""


class TeacherFatalError(TeacherError):
    """The server refused the request for a reason a retry cannot fix (400/401/403/404, or the
    embedded model could not be assembled/started). Stop the run and show this message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BudgetExceeded(TeacherError):
    """Sending this request could take the spend past `budget_usd`: it was not sent."""


class RequestFailed(TeacherError):
    """One request gave up: retries exhausted, invalid JSON, or no choices. Counted in
    `accounting.failures`; the caller skips the item and continues."""
