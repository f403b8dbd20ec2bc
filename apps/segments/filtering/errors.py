"""FilterError: a bad filter, naming the leaf at fault (and, for text, the position)."""

from __future__ import annotations

from cdp.errors import DomainError


class FilterError(DomainError):
    """A filter that can't be used: 400 with code "invalid_filter".

    `leaf` names the node at fault as a path from the root (`and[1].or[0]`, `not.where`; "" for
    the root itself); `position` is the 0-based character offset for text-form errors.
    """

    status_code = 400
    code = "invalid_filter"

    def __init__(self, message: str, *, leaf: str = "", position: int | None = None) -> None:
        self.reason = message
        self.leaf = leaf
        self.position = position
        where = f"at {leaf}: " if leaf else ""
        at = f" (position {position})" if position is not None else ""
        super().__init__(f"{where}{message}{at}", field=leaf or None)
