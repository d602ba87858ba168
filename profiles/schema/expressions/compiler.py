"""Compiling a syntax tree into nested closures, and the compiled ``Expression``.

``compile_expression`` parses (``grammar``), checks what can be checked without data (unknown
functions, arity, constant arguments, nesting), folds constant sub-expressions, and builds one
closure per node, so evaluating an event does no tree walking. ``Expression.result_type`` is
what the expression produces as far as can be told without data, for the schema's field checks.
"""

from __future__ import annotations

import copy as copy_module
import difflib
import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from profiles.schema.expressions.errors import ExpressionError, ExpressionSyntaxError
from profiles.schema.expressions.functions import FUNCTIONS, NOT_CONSTANT, FunctionSpec
from profiles.schema.expressions.grammar import parse
from profiles.schema.expressions.nodes import (
    Binary,
    Call,
    ListNode,
    Literal,
    Logical,
    Node,
    Path,
    Unary,
    render_path,
)
from profiles.schema.expressions.values import BINARY_IMPLS, UNARY_IMPLS, show_value

__all__ = ["MAX_DEPTH", "Evaluator", "Expression", "compile_expression"]

MAX_DEPTH = 100

Evaluator = Callable[[Any, "datetime | None"], Any]


class _Code(NamedTuple):
    fn: Evaluator
    constant: bool
    value: Any  # the value when constant


def _const(value: Any) -> _Code:
    """A constant; lists and maps are copied per evaluation so callers may change results."""
    if type(value) in (list, dict):
        items = value.values() if type(value) is dict else value
        copy = copy_module.deepcopy if any(type(i) in (list, dict) for i in items) else type(
            value).copy
        return _Code(lambda ev, now: copy(value), True, value)
    return _Code(lambda ev, now: value, True, value)


def _walk(obj: Any, segments: tuple[str | int, ...], keys: tuple[tuple[str, ...], ...],
          i: int) -> Any:
    """Follow segments from i, trying flat keys (``"origin.email"``) before nesting."""
    n = len(segments)
    while i < n:
        seg = segments[i]
        t = type(obj)
        if t is dict:
            row = keys[i]
            for j in range(n, i + 1, -1):  # the longest flat key first
                key = row[j]
                if key in obj:
                    found = _walk(obj[key], segments, keys, j)
                    if found is not None:
                        return found
            if type(seg) is int:
                return None
            obj = obj.get(seg)
        elif t is list and type(seg) is int:
            if -len(obj) <= seg < len(obj):
                obj = obj[seg]
            else:
                return None
        else:
            return None
        if obj is None:
            return None
        i += 1
    return obj


def _compile_path(node: Path) -> _Code:
    segments = node.segments
    flat = node.text
    if len(segments) == 1 and isinstance(segments[0], str):
        key = segments[0]

        def get(ev: Any, now: datetime | None) -> Any:
            return ev.get(key)

        return _Code(get, False, None)
    if len(segments) == 2 and all(isinstance(s, str) for s in segments):
        first, second = segments

        def get2(ev: Any, now: datetime | None) -> Any:
            found = ev.get(flat)
            if found is not None:
                return found
            inner = ev.get(first)
            return inner.get(second) if type(inner) is dict else None

        return _Code(get2, False, None)
    n = len(segments)
    keys = tuple(
        tuple(render_path(segments[i:j]) if j > i else "" for j in range(n + 1)) for i in range(n)
    )

    def walk(ev: Any, now: datetime | None) -> Any:
        found = ev.get(flat)
        if found is not None:
            return found
        return _walk(ev, segments, keys, 0)

    return _Code(walk, False, None)


class _Compiler:
    """AST to closures, with the checks that make a bad expression fail at compile time."""

    def __init__(self) -> None:
        self.fields: set[str] = set()
        self.functions: set[str] = set()

    def compile(self, node: Node, depth: int = 0) -> _Code:
        if depth > MAX_DEPTH:
            raise ExpressionSyntaxError("expression nests too deeply", node.line, node.column)
        if isinstance(node, Literal):
            return _const(node.value)
        if isinstance(node, Path):
            self.fields.add(node.text)
            return _compile_path(node)
        if isinstance(node, Call):
            return self._call(node, depth)
        if isinstance(node, ListNode):
            return self._list(node, depth)
        if isinstance(node, Unary):
            return self._unary(node, depth)
        if isinstance(node, Binary):
            return self._binary(node, depth)
        if isinstance(node, Logical):
            return self._logical(node, depth)
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover

    def _fold(self, node: Node, fn: Evaluator) -> _Code:
        """Run a constant sub-expression now; its errors become compile errors."""
        try:
            value = fn({}, None)
        except ExpressionError as exc:
            reason = f"{exc.label}: {exc.reason}" if exc.label else exc.reason
            raise ExpressionSyntaxError(reason, node.line, node.column) from None
        return _const(value)

    def _call(self, node: Call, depth: int) -> _Code:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            close = difflib.get_close_matches(node.name, FUNCTIONS, n=1)
            raise ExpressionSyntaxError(f"unknown function '{node.name}'", node.line,
                                        node.column,
                                        f"did you mean '{close[0]}'?" if close else None)
        n = len(node.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            raise ExpressionSyntaxError(
                f"{spec.name}() takes {spec.arity_text()}, got {n}", node.line, node.column)
        self.functions.add(spec.name)
        args = [self.compile(a, depth + 1) for a in node.args]
        if spec.check is not None:
            try:
                spec.check([a.value if a.constant else NOT_CONSTANT for a in args])
            except ExpressionError as exc:
                # every check validates the last argument (layout, part, pattern)
                where = node.args[-1] if args[-1].constant else node
                raise ExpressionSyntaxError(f"{spec.name}(): {exc.reason}", where.line,
                                            where.column) from None
        fn = self._call_closure(spec, [a.fn for a in args], node.line, node.column)
        if spec.pure and all(a.constant for a in args):
            return self._fold(node, fn)
        return _Code(fn, False, None)

    @staticmethod
    def _call_closure(spec: FunctionSpec, fns: list[Evaluator], line: int, column: int
                      ) -> Evaluator:
        impl = spec.impl
        label = f"{spec.name}()"
        if spec.uses_now:
            def call_now(ev: Any, now: datetime | None) -> Any:
                return impl(now)

            return call_now
        if spec.strict and len(fns) == 1:
            f0 = fns[0]

            def call1(ev: Any, now: datetime | None) -> Any:
                a = f0(ev, now)
                if a is None:
                    return None
                try:
                    return impl(a)
                except ExpressionError as exc:
                    raise exc.located(label, line, column) from None

            return call1
        if spec.strict and len(fns) == 2:
            f0, f1 = fns

            def call2(ev: Any, now: datetime | None) -> Any:
                a = f0(ev, now)
                if a is None:
                    return None
                b = f1(ev, now)
                if b is None:
                    return None
                try:
                    return impl(a, b)
                except ExpressionError as exc:
                    raise exc.located(label, line, column) from None

            return call2
        strict = spec.strict

        def call(ev: Any, now: datetime | None) -> Any:
            values = [f(ev, now) for f in fns]
            if strict and None in values:
                return None
            try:
                return impl(*values)
            except ExpressionError as exc:
                raise exc.located(label, line, column) from None

        return call

    def _list(self, node: ListNode, depth: int) -> _Code:
        items = [self.compile(i, depth + 1) for i in node.items]
        if all(i.constant for i in items):
            return _const([i.value for i in items])
        fns = [i.fn for i in items]

        def make_list(ev: Any, now: datetime | None) -> Any:
            return [f(ev, now) for f in fns]

        return _Code(make_list, False, None)

    def _unary(self, node: Unary, depth: int) -> _Code:
        operand = self.compile(node.operand, depth + 1)
        impl = UNARY_IMPLS[node.op]
        label = "NOT" if node.op == "not" else f"unary {node.op}"
        line, column = node.line, node.column
        f0 = operand.fn

        def unary(ev: Any, now: datetime | None) -> Any:
            a = f0(ev, now)
            if a is None:
                return None
            try:
                return impl(a)
            except ExpressionError as exc:
                raise exc.located(label, line, column) from None

        if operand.constant:
            return self._fold(node, unary)
        return _Code(unary, False, None)

    def _binary(self, node: Binary, depth: int) -> _Code:
        left = self.compile(node.left, depth + 1)
        right = self.compile(node.right, depth + 1)
        label = node.op.upper() if node.op[0].isalpha() else node.op
        line, column = node.line, node.column
        fl, fr = left.fn, right.fn
        if (node.op in ("in", "not in") and right.constant and type(right.value) is list
                and right.value and all(type(v) is str for v in right.value)):
            choices = frozenset(right.value)
            negate = node.op == "not in"

            def in_strings(ev: Any, now: datetime | None) -> Any:
                a = fl(ev, now)
                if a is None:
                    return None
                return (type(a) is str and a in choices) is not negate

            code = in_strings
        else:
            impl = BINARY_IMPLS[node.op]

            def binary(ev: Any, now: datetime | None) -> Any:
                a = fl(ev, now)
                if a is None:
                    return None
                b = fr(ev, now)
                if b is None:
                    return None
                try:
                    return impl(a, b)
                except ExpressionError as exc:
                    raise exc.located(label, line, column) from None

            code = binary
        if left.constant and right.constant:
            return self._fold(node, code)
        return _Code(code, False, None)

    def _logical(self, node: Logical, depth: int) -> _Code:
        operands = [self.compile(o, depth + 1) for o in node.operands]
        fns = tuple(o.fn for o in operands)
        label = node.op.upper()
        where = f"{label} at {node.line}:{node.column}"
        # Kleene logic: AND stops at false, OR at true; missing makes the result missing
        # only when no operand decides it.
        stop = node.op == "or"

        def logical(ev: Any, now: datetime | None) -> Any:
            unknown = False
            for f in fns:
                v = f(ev, now)
                if v is stop:
                    return stop
                if v is None:
                    unknown = True
                elif v is not (not stop):
                    raise ExpressionError(f"expects true or false, got {show_value(v)}", where,
                                          label)
            return None if unknown else not stop

        if all(o.constant for o in operands):
            return self._fold(node, logical)
        return _Code(logical, False, None)


_RESULT_TYPES = {"=": "bool", "!=": "bool", "<": "bool", "<=": "bool", ">": "bool", ">=": "bool",
                 "in": "bool", "not in": "bool", "contains": "bool"}


def _result_type(node: Node) -> str:
    """What an expression produces, as far as can be told without data (for field checks)."""
    if isinstance(node, Literal):
        v = node.value
        return "any" if v is None else {str: "string", bool: "bool", int: "int",
                                        float: "number"}.get(type(v), "any")
    if isinstance(node, Call):
        return FUNCTIONS[node.name].returns
    if isinstance(node, Logical) or (isinstance(node, Unary) and node.op == "not"):
        return "bool"
    if isinstance(node, ListNode):
        return "list"
    if isinstance(node, Unary):
        return _result_type(node.operand)
    if isinstance(node, Binary):
        if node.op in _RESULT_TYPES:
            return "bool"
        sides = {_result_type(node.left), _result_type(node.right)}
        if node.op == "/" and sides <= {"int", "number"}:
            return "number"
        if sides == {"int"}:
            return "int"
        if sides <= {"int", "number"}:
            return "number"
        if sides == {"string"} and node.op == "+":
            return "string"
    return "any"


class Expression:
    """A compiled expression: evaluate it against events as often as needed."""

    __slots__ = ("_fn", "ast", "fields_read", "functions_used", "result_type", "text")

    def __init__(self, text: str, ast: Node, fn: Evaluator, fields_read: frozenset[str],
                 functions_used: frozenset[str]) -> None:
        self.text = text
        self.ast = ast
        self._fn = fn
        self.fields_read = fields_read
        self.functions_used = functions_used
        self.result_type = _result_type(ast)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, event: Mapping[str, Any], now: datetime | None = None) -> Any:
        """The value for one event: None when missing; ExpressionError for a bad value."""
        try:
            return self._fn(event, now)
        except ExpressionError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError,
                ZeroDivisionError, RecursionError) as exc:
            raise ExpressionError(f"cannot evaluate {self.text!r}: {exc}") from exc

    def matches(self, event: Mapping[str, Any], now: datetime | None = None) -> bool:
        """For guards and route rules: True only when the value is true; missing is False."""
        value = self.evaluate(event, now)
        if value is None or value is False:
            return False
        if value is True:
            return True
        raise ExpressionError(f"a condition must be true or false, got {show_value(value)}",
                              f"{self.text!r}")


@functools.lru_cache(maxsize=2048)
def compile_expression(text: str) -> Expression:
    """Parse, check and compile; ExpressionSyntaxError (with line and column) if refused."""
    ast = parse(text)
    compiler = _Compiler()
    code = compiler.compile(ast)
    return Expression(text, ast, code.fn, frozenset(compiler.fields),
                      frozenset(compiler.functions))
