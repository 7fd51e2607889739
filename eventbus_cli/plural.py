"""``counted``: a number with its noun, singular or plural, for messages people read."""

from __future__ import annotations

__all__ = ("counted",)

_IRREGULAR = {"delivery": "deliveries", "retry": "retries", "is": "are", "was": "were"}


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``"1 delivery"``, ``"2 deliveries"``, ``"0 listeners"``."""
    if number == 1:
        return f"{number} {noun}"
    return f"{number} {plural or _IRREGULAR.get(noun) or noun + 's'}"
