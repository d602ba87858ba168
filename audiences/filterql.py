"""The text form of audience rules, in Lytics' FilterQL style:
``FILTER AND(taxonomy = "cuisine", EXISTS email, INCLUDE cart_7d, NOT INCLUDE bought_7d)``.
Parsed with lark (audiences/filterql.lark) into the rule JSON and printed back. Event
conditions:
``EVENT added_to_cart WHERE(price > 10, sku:string = "A1") MIN 2 WITHIN 7`` (a property's
type, when the rule names one, follows its name after a colon)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput

_PARSER = Lark((Path(__file__).parent / "filterql.lark").read_text(), parser="lalr",
               maybe_placeholders=False)
KEYWORDS = {"filter", "and", "or", "not", "between", "in", "intersects", "contains", "like",
            "exists", "include", "consent", "true", "false", "event", "where", "min", "within",
            "day", "days"}
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
        if inner.get("op") == "exists" and "value" not in inner and "not" not in inner:
            return {**inner, "op": "not exists"}
        return {"not": inner}

    def name(self, items: list[Token]) -> tuple[str, str, str | None]:
        kind = "attribute" if items[0].type == "ATTR" else "field"
        words = [t for t in items if t.type != "ATTR"]
        text = str(words[0])
        text = text[1:-1] if text.startswith("`") else text
        return (kind, text, str(words[1]) if len(words) > 1 else None)

    def _cond(self, name: tuple[str, str, str | None], op: str, value: Any = None,
              has: bool = True) -> Any:
        node = {name[0]: name[1], "op": op}
        if has:
            node["value"] = value
        if name[2] is not None:
            node["type"] = name[2]
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

    def event(self, items: list[Any]) -> Any:
        node: dict[str, Any] = {"event": items[1][1]}
        for part in items[2:]:
            node.update(part)
        return node

    def event_where(self, items: list[Any]) -> Any:
        return {"where": [_as_property(c) for c in items[1:]]}

    def event_min(self, items: list[Any]) -> Any:
        return {"min_count": _whole(items[1])}

    def event_within(self, items: list[Any]) -> Any:
        return {"within_days": _whole(items[1])}

    def list(self, items: list[Any]) -> Any:
        return items

    # Below the ``list`` rule's method, ``list`` in this class names it: items are Sequences.
    def string(self, items: Sequence[Token]) -> Any:
        return json.loads(str(items[0]))

    def number(self, items: Sequence[Token]) -> Any:
        text = str(items[0])
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)

    def true(self, items: Sequence[Any]) -> Any:
        return True

    def false(self, items: Sequence[Any]) -> Any:
        return False


def _as_property(node: Any) -> Any:
    """A condition inside WHERE(...) is on an event property."""
    if isinstance(node, dict) and "field" in node:
        return {"property": node["field"], **{k: v for k, v in node.items() if k != "field"}}
    return node


def _whole(token: Token) -> int | float:
    text = str(token)
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


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


def _subject(node: dict[str, Any]) -> str:
    if "field" in node:
        return _name(node["field"])
    if "attribute" in node:
        return "@" + _name(node["attribute"])
    typed = f":{node['type']}" if node.get("type") else ""
    return _name(node["property"]) + typed


def _event_text(node: dict[str, Any]) -> str:
    text = f"EVENT {_name(node['event'])}"
    if node.get("where"):
        text += " WHERE(" + ", ".join(_cond_text(c) for c in node["where"]) + ")"
    if node.get("min_count") is not None:
        text += f" MIN {node['min_count']}"
    if node.get("within_days") is not None:
        text += f" WITHIN {node['within_days']}"
    return text


def _cond_text(node: dict[str, Any]) -> str:
    name = _subject(node)
    op = node["op"]
    value: Any = node.get("value")
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
        return _event_text(node)
    return _cond_text(node)


def to_text(rule: dict[str, Any]) -> str:
    """The FilterQL text of a (valid) rule."""
    return "FILTER " + _text(rule)
