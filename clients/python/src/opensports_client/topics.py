"""Topic patterns (PROTOCOL.md section 2.3): ``+`` is one level, ``#`` the rest (last level only)."""

from __future__ import annotations


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` (concrete) is matched by ``pattern``."""
    p, t = pattern.split("/"), topic.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(p) == len(t)
