"""The grammar of expressions and the parser: text to a syntax tree (``nodes``).

The grammar is written inline for lark (LALR, contextual lexer), so the grammar and the code
that turns its parse tree into nodes sit side by side. Lark's errors become
``ExpressionSyntaxError`` with the line and column, and a hint for a missing bracket.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from profiles.schema.expressions.errors import ExpressionSyntaxError
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

__all__ = ["GRAMMAR", "MAX_EXPRESSION_LENGTH", "parse"]

MAX_EXPRESSION_LENGTH = 4000

GRAMMAR = r"""
?start: expr

?expr: or_expr
?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT not_expr            -> not_op
         | comparison
?comparison: sum_expr
           | sum_expr COMP_OP sum_expr       -> compare
           | sum_expr IN sum_expr            -> in_op
           | sum_expr NOT IN sum_expr        -> not_in_op
           | sum_expr CONTAINS sum_expr      -> contains_op
?sum_expr: product
         | sum_expr ADD_OP product           -> arith
?product: unary
        | product MUL_OP unary               -> arith
?unary: atom
      | ADD_OP unary                         -> sign
?atom: STRING                                -> string
     | FLOAT                                 -> float
     | INT                                   -> int
     | TRUE                                  -> true
     | FALSE                                 -> false
     | NULL                                  -> null
     | PATH                                  -> path
     | FUNC_NAME "(" [expr ("," expr)*] ")"  -> call
     | "[" [expr ("," expr)* [","]] "]"      -> list
     | "(" expr ")"

OR.2: /or\b/i
AND.2: /and\b/i
NOT.2: /not\b/i
IN.2: /in\b/i
CONTAINS.2: /contains\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
FUNC_NAME.3: /[^\W\d]\w*(?:\.[^\W\d]\w*)*(?=\s*\()/
PATH.1: /(?:[^\W\d]\w*|`(?:[^`\\\n]|\\.)+`)(?:\.(?:\w+|`(?:[^`\\\n]|\\.)+`)|\[-?\d+\])*/
COMP_OP: "==" | "!=" | "<=" | ">=" | "=" | "<" | ">"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/" | "%"
STRING: /"(?:[^"\\\n]|\\.)*"/ | /'(?:[^'\\\n]|\\.)*'/
FLOAT: /\d+\.\d+(?:[eE][+-]?\d+)?/ | /\d+[eE][+-]?\d+/
INT: /\d+/

%ignore /\s+/
"""

_CLOSERS = {"RPAR": "')'", "RSQB": "']'"}


@functools.cache
def _parser() -> Lark:
    """Built on first use: constructing the LALR tables costs tens of milliseconds."""
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


# \b and \f are left out on purpose: unknown escapes stay as written, so regular
# expressions such as "\bword\b" or "\d+" need no doubled backslashes.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'",
            "/": "/", "`": "`"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_BACKTICK_RE = re.compile(r"`((?:[^`\\]|\\.)+)`")


def _unescape(body: str) -> str:
    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, m.group(0))

    return _ESCAPE_RE.sub(replace, body) if "\\" in body else body


def _split_path(token: Token) -> tuple[tuple[str | int, ...], str]:
    """A PATH token into segments (names and indexes) and the flat-key text it reads."""
    text = str(token)
    segments: list[str | int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            i += 1
            continue
        if ch == "[":
            end = text.index("]", i)
            segments.append(int(text[i + 1:end]))
            i = end + 1
        elif ch == "`":
            m = _BACKTICK_RE.match(text, i)
            assert m is not None  # the lexer only produces closed backticks
            segments.append(re.sub(r"\\(.)", r"\1", m.group(1)))
            i = m.end()
        else:
            m = re.compile(r"\w+").match(text, i)
            assert m is not None
            segments.append(m.group(0))
            i = m.end()
    return tuple(segments), render_path(tuple(segments))


def _pos(tok: Token) -> tuple[int, int]:
    return tok.line or 1, tok.column or 1


# A rule's children. Named here because inside _ToAst the rule method `list` shadows the builtin.
_Children = list[Any]


class _ToAst(Transformer[Token, Node]):
    """Lark's parse tree into our AST, with the position of each operator and call."""

    @v_args(inline=True)
    def string(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=_unescape(tok[1:-1]))

    @v_args(inline=True)
    def int(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=int(tok))

    @v_args(inline=True)
    def float(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=float(tok))

    @v_args(inline=True)
    def true(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=True)

    @v_args(inline=True)
    def false(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=False)

    @v_args(inline=True)
    def null(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=None)

    @v_args(inline=True)
    def path(self, tok: Token) -> Node:
        segments, text = _split_path(tok)
        return Path(*_pos(tok), segments=segments, text=text)

    def call(self, children: list[Any]) -> Node:
        name, *args = children
        return Call(*_pos(name), name=str(name).lower(), args=tuple(args))

    @v_args(meta=True)
    def list(self, meta: Any, items: list[Node]) -> Node:
        return ListNode(getattr(meta, "line", 1), getattr(meta, "column", 1), items=tuple(items))

    @v_args(inline=True)
    def sign(self, op: Token, operand: Node) -> Node:
        return Unary(*_pos(op), op=str(op), operand=operand)

    @v_args(inline=True)
    def not_op(self, op: Token, operand: Node) -> Node:
        return Unary(*_pos(op), op="not", operand=operand)

    @v_args(inline=True)
    def compare(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="=" if op == "==" else str(op), left=left, right=right)

    @v_args(inline=True)
    def arith(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op=str(op), left=left, right=right)

    @v_args(inline=True)
    def in_op(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="in", left=left, right=right)

    @v_args(inline=True)
    def not_in_op(self, left: Node, op: Token, _in: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="not in", left=left, right=right)

    @v_args(inline=True)
    def contains_op(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="contains", left=left, right=right)

    def or_expr(self, children: _Children) -> Node:
        return self._logical("or", children)

    def and_expr(self, children: _Children) -> Node:
        return self._logical("and", children)

    @staticmethod
    def _logical(op: str, children: _Children) -> Node:
        first_op = next(c for c in children if isinstance(c, Token))
        operands = tuple(c for c in children if not isinstance(c, Token))
        return Logical(*_pos(first_op), op=op, operands=operands)


def parse(text: str) -> Node:
    """Text to AST, with lark's errors turned into positioned ExpressionSyntaxErrors."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError("an expression must be text", 1, 1)
    if not text.strip():
        raise ExpressionSyntaxError("empty expression", 1, 1)
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionSyntaxError(
            f"expression is longer than {MAX_EXPRESSION_LENGTH} characters", 1, 1)
    try:
        tree = _parser().parse(text)
    except UnexpectedToken as exc:
        raise _unexpected_token(text, exc) from None
    except UnexpectedCharacters as exc:
        ch = exc.char  # the character at exc.pos_in_stream, which lark types as None
        reason = {'"': "unterminated string", "'": "unterminated string",
                  "`": "unterminated backtick name"}.get(ch, f"unexpected character {ch!r}")
        raise ExpressionSyntaxError(reason, exc.line, exc.column) from None
    except UnexpectedEOF:
        line, column = _end_position(text)
        raise ExpressionSyntaxError("unexpected end of expression", line, column) from None
    try:
        return _transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, ExpressionSyntaxError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise ExpressionSyntaxError("expression nests too deeply", 1, 1) from None


def _transform(tree: Tree[Token]) -> Node:
    result = _ToAst().transform(tree)
    if not isinstance(result, Node):  # pragma: no cover - every rule has a callback
        raise ExpressionSyntaxError("could not read the expression", 1, 1)
    return result


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _unexpected_token(text: str, exc: UnexpectedToken) -> ExpressionSyntaxError:
    tok = exc.token
    if tok.type == "$END":
        closers = sorted(_CLOSERS[n] for n in exc.expected if n in _CLOSERS)
        hint = f"missing {' or '.join(closers)}?" if closers else None
        line, column = _end_position(text)
        return ExpressionSyntaxError("unexpected end of expression", line, column, hint)
    return ExpressionSyntaxError(f"unexpected token '{tok}'", tok.line or 1, tok.column or 1)
