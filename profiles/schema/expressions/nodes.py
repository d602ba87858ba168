"""The syntax tree of an expression: what the grammar produces and the compiler reads.

Every node carries the 1-based line and column it starts at, so errors can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Binary", "Call", "ListNode", "Literal", "Logical", "Node", "Path", "Unary",
           "render_path"]


@dataclass(frozen=True, slots=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class Path(Node):
    segments: tuple[str | int, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in", "not in", "contains"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical(Node):
    op: str  # "and", "or"
    operands: tuple[Node, ...]


def render_path(segments: tuple[str | int, ...]) -> str:
    """How a run of segments appears as one flat key (``response.activities[0].data``)."""
    out = ""
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out = f"{out}.{seg}" if out else seg
    return out
