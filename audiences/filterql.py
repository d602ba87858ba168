"""The text form of audience rules, in Lytics' FilterQL style:
``FILTER AND(taxonomy = "cuisine", EXISTS email, INCLUDE cart_7d, NOT INCLUDE bought_7d)``.
Parsed with lark (audiences/filterql.lark) into the rule JSON and printed back. Event
conditions have no text form yet (``to_text`` refuses them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput

_PARSER = Lark((Path(__file__).parent / "filterql.lark").read_text(), parser="lalr",
               maybe_placeholders=False)
KEYWORDS = {"filter", "and", "or", "not", "between", "in", "intersects", "contains", "like",
            "exists", "include", "consent", "true", "false"}
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_NUMBERLIKE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")


class FilterSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        self.line, self.column = line, column
        super().__init__(f"line {line}, column {column}: {message}")


class _ToRule(Transformer):
    def start(self, items: list[Any]) -> Any:
        return items[-1]

    def group(self, items: list[Any]) -> Any:
        return {str(items[0]).lower(): items[1:]}

    def negation(self, items: list[Any]) -> Any:
        inner = items[1]
        if inner.get("op") == "include" and "audience" in inner:
            return {"audience": inner["audience"], "op": "exclude"}
        if inner.get("op") == "exists" and len(inner) == 2:
            return {**inner, "op": "not exists"}
        return {"not": inner}

    def name(self, items: list[Any]) -> tuple[str, str]:
        text = str(items[-1])
        text = text[1:-1] if text.startswith("`") else text
        return ("attribute" if len(items) == 2 else "field", text)

    def _cond(self, name: tuple[str, str], op: str, value: Any = None, has: bool = True
              ) -> Any:
        node = {name[0]: name[1], "op": op}
        if has:
            node["value"] = value
        return node

    def compare(self, items: list[Any]) -> Any:
        return self._cond(items[0], str(items[1]), items[2])

    def between(self, items: list[Any]) -> Any:
        return self._cond(items[0], "between", [items[2], items[4]])

    def in_(self, items: list[Any]) -> Any:
        return self._cond(items[0], "not in" if len(items) == 4 else "in", items[-1])

    def intersects(self, items: list[Any]) -> Any:
        return self._cond(items[0], "intersects", items[-1])

    def contains(self, items: list[Any]) -> Any:
        return self._cond(items[0], "not contains" if len(items) == 4 else "contains",
                          items[-1])

    def like(self, items: list[Any]) -> Any:
        return self._cond(items[0], "like", items[-1])

    def exists(self, items: list[Any]) -> Any:
        return self._cond(items[1], "exists", has=False)

    def include(self, items: list[Any]) -> Any:
        return {"audience": items[1][1], "op": "include"}

    def consent(self, items: list[Any]) -> Any:
        return {"consent": items[1][1]}

    def list(self, items: list[Any]) -> Any:
        return items

    def string(self, items: list[Token]) -> Any:
        return json.loads(str(items[0]))

    def number(self, items: list[Token]) -> Any:
        text = str(items[0])
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)

    def true(self, items: list[Any]) -> Any:
        return True

    def false(self, items: list[Any]) -> Any:
        return False


def parse_filter(text: str) -> dict[str, Any]:
    """The rule JSON of a FilterQL text; FilterSyntaxError with the line and column."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise FilterSyntaxError(f"unexpected {_near(text, exc)}", exc.line, exc.column
                                ) from None
    return _ToRule().transform(tree)


def _near(text: str, exc: UnexpectedInput) -> str:
    pos = getattr(exc, "pos_in_stream", None)
    if pos is None or pos >= len(text):
        return "end of text"
    return repr(text[pos:pos + 12])


def _name(name: str) -> str:
    plain = _PLAIN.match(name) and name.lower() not in KEYWORDS and not _NUMBERLIKE.match(name)
    return name if plain else f"`{name}`"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _cond_text(node: dict[str, Any]) -> str:
    name = _name(node["field"]) if "field" in node else "@" + _name(node["attribute"])
    op, value = node["op"], node.get("value")
    if op in ("exists", "not exists"):
        return ("NOT " if op == "not exists" else "") + f"EXISTS {name}"
    if op == "between":
        return f"{name} BETWEEN {_value(value[0])} AND {_value(value[1])}"
    if op in ("in", "not in", "intersects"):
        items = ", ".join(_value(v) for v in value)
        return f"{name} {op.upper()} ({items})"
    return f"{name} {op.upper() if op[0].isalpha() else op} {_value(value)}"


def _text(node: dict[str, Any]) -> str:
    if "and" in node or "or" in node:
        key = "and" if "and" in node else "or"
        return f"{key.upper()}(" + ", ".join(_text(c) for c in node[key]) + ")"
    if "not" in node:
        return "NOT " + _text(node["not"])
    if "audience" in node:
        prefix = "NOT " if node["op"] == "exclude" else ""
        return f"{prefix}INCLUDE {_name(node['audience'])}"
    if "consent" in node:
        return f"CONSENT {_name(node['consent'])}"
    if "event" in node:
        raise ValueError("event conditions have no text form yet")
    return _cond_text(node)


def to_text(rule: dict[str, Any]) -> str:
    """The FilterQL text of a (valid) rule."""
    return "FILTER " + _text(rule)
