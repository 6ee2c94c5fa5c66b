"""The one exception type for mistakes a user can fix (defined in `common`, re-exported here)."""

from __future__ import annotations

from common.errors import UserError

__all__ = ["UserError"]
