"""The expression language of mappings, guards and route rules (issue 4, item 3).

Marketers write expressions such as ``email(origin.email)`` or
``contains(`_url`, "localhost")``; they run on every raw event, so the text is parsed
once with lark (never ``eval``), checked (unknown functions, arity, bad constant
arguments are refused with a position), and compiled into nested Python closures so that
evaluation does no tree walking. docs/expressions.md is the language reference.

Missing values: a path that is absent, or JSON ``null``, evaluates to ``None`` ("missing").
Functions of a missing argument return missing instead of raising, so a mapping simply
produces no value; ``exists``, ``oneof``, ``set``, ``join``, ``sum`` and ``count`` are the
functions that look at missing values themselves. A value of the wrong type is an
:class:`ExpressionError` at evaluation (the pipeline records it on the event).

This package is the language's entry point: other code imports from here. Inside, each module
imports only those above it in this list:

- ``errors``: ``ExpressionSyntaxError`` (refused at compile time, with line and column) and
  ``ExpressionError`` (a bad value while evaluating);
- ``nodes``: the syntax tree;
- ``grammar``: the lark grammar (inline) and ``parse``, text to nodes;
- ``values``: the values, equality, ordering, the operators and dates (``to_date``);
- ``functions``: the function registry ``FUNCTIONS`` and every function;
- ``compiler``: nodes to closures, result types, ``compile_expression`` and ``Expression``.

It imports nothing of Strata: no Django, no models.
"""

from __future__ import annotations

from profiles.schema.expressions.compiler import MAX_DEPTH, Expression, compile_expression
from profiles.schema.expressions.errors import ExpressionError, ExpressionSyntaxError
from profiles.schema.expressions.functions import (
    FUNCTIONS,
    MAX_MATCH_INPUT,
    MAX_PATTERN_LENGTH,
    FunctionSpec,
)
from profiles.schema.expressions.grammar import MAX_EXPRESSION_LENGTH
from profiles.schema.expressions.values import to_date

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "MAX_MATCH_INPUT",
    "MAX_PATTERN_LENGTH",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "FunctionSpec",
    "compile_expression",
    "to_date",
]
