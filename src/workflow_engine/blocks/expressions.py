"""The expression language of the ``compute`` block: a small, safe subset of Python's
expression syntax, evaluated by ``simpleeval`` (never by Python's ``eval``).

An expression is parsed once, when the definition is saved, and checked against a
whitelist of syntax: literals, column names, arithmetic, comparisons, ``and``/``or``/
``not``, ``x if c else y``, indexing and slicing, tuples and lists, and calls of the
functions in :data:`FUNCTIONS`. There is no attribute access at all (so no way to
``__class__`` or ``__globals__``), no lambdas, comprehensions, f-strings or assignment,
and the nesting is bounded. Work is bounded too: simpleeval caps string lengths
(``MAX_STRING_LENGTH``) and powers (``MAX_POWER``); we cap integer powers by the size of
their result and ``round``'s digits, which simpleeval does not.

A column whose name is an identifier is a variable (``first + ' ' + last``); any column is
``row["company location"]``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import simpleeval

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "CompiledExpression",
    "ExpressionError",
    "ExpressionInvalid",
    "UnknownName",
    "compile_expression",
]

MAX_EXPRESSION_LENGTH = 2000
MAX_DEPTH = 100
# The largest integer a power may make (in bits): 2**4096 is plenty for data work and far
# from simpleeval's own bound (which lets 4000000**4000000 through).
MAX_POWER_BITS = 4096
MAX_ROUND_DIGITS = 100
ROW = "row"


class ExpressionInvalid(ValueError):
    """An expression that does not parse, or uses syntax or a function the language lacks.

    ``line`` and ``column`` (1-based) say where, when a position is known.
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{message}{where}")
        self.line, self.column = line, column


class ExpressionError(Exception):
    """One row's evaluation failed; ``code`` says how (``type_error``, ``missing_value``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class UnknownName(Exception):
    """A name that is neither a column of the row nor a function."""


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}() needs text, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "an empty value" if value is None else type(value).__name__


def _number(name: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}() needs a number, got {_kind(value)}")
    return value


def _to_int(value: Any) -> int:
    if value is None or isinstance(value, list | dict):
        raise TypeError(f"int() needs a number or text, got {_kind(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)  # "3.0" is 3; "3.5" and "abc" are errors
            if not number.is_integer():
                raise ValueError(f"int() of {value!r}: not a whole number") from None
            return int(number)
    return int(value)


def _to_float(value: Any) -> float:
    if value is None or isinstance(value, list | dict):
        raise TypeError(f"float() needs a number or text, got {_kind(value)}")
    return float(value.strip() if isinstance(value, str) else value)


def _to_str(value: Any) -> str:
    if value is None:
        raise TypeError("str() of an empty value (use coalesce(x, '') for a default)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _coalesce(*values: Any) -> Any:
    """The first value that is neither missing nor blank text."""
    for value in values:
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def _round(value: Any, digits: Any = 0) -> int | float:
    number = _number("round", value)
    if isinstance(digits, bool) or not isinstance(digits, int):
        raise TypeError(f"round() digits must be a whole number, got {_kind(digits)}")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise ValueError(f"round() digits beyond ±{MAX_ROUND_DIGITS}")
    return round(number, digits)


def _extreme(name: str, pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        if len(values) < 2:
            raise TypeError(f"{name}() takes two or more values")
        return pick(values)
    return extreme


def _power(base: Any, exponent: Any) -> Any:
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_POWER_BITS):
        raise simpleeval.NumberTooHigh(
            f"{base} ** {exponent} is too large (more than {MAX_POWER_BITS} bits)")
    return simpleeval.safe_power(base, exponent)


#: The functions an expression may call, by name.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lower": lambda s: _text("lower", s).lower(),
    "upper": lambda s: _text("upper", s).upper(),
    "strip": lambda s: _text("strip", s).strip(),
    "len": lambda x: len(x) if isinstance(x, str | list | dict) else len(_text("len", x)),
    "contains": lambda s, part: _text("contains", part) in _text("contains", s),
    "startswith": lambda s, part: _text("startswith", s).startswith(_text("startswith", part)),
    "endswith": lambda s, part: _text("endswith", s).endswith(_text("endswith", part)),
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "coalesce": _coalesce,
    "round": _round,
    "abs": lambda x: abs(_number("abs", x)),
    "min": _extreme("min", min),
    "max": _extreme("max", max),
}

OPERATORS: dict[type, Any] = {
    ast.Add: simpleeval.safe_add, ast.Sub: operator.sub, ast.Mult: simpleeval.safe_mult,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: _power, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda x, y: operator.contains(y, x),
    ast.NotIn: lambda x, y: not operator.contains(y, x),
    ast.Is: operator.is_, ast.IsNot: operator.is_not,
}

_ALLOWED = (ast.Expression, ast.Constant, ast.Name, ast.Load, ast.UnaryOp, ast.BinOp,
            ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.IfExp, ast.Call, ast.Subscript,
            ast.Slice, ast.Tuple, ast.List, *OPERATORS)
_DESCRIBED = {ast.Attribute: "attribute access (use the functions: lower(x), not x.lower())",
              ast.Lambda: "lambda", ast.JoinedStr: "f-strings (use +)",
              ast.NamedExpr: "assignment", ast.Dict: "dict literals", ast.Set: "sets",
              ast.ListComp: "comprehensions", ast.GeneratorExp: "comprehensions",
              ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
              ast.Starred: "* arguments"}


def _position(node: ast.AST) -> tuple[int | None, int | None]:
    line = getattr(node, "lineno", None)
    column = getattr(node, "col_offset", None)
    return line, (column + 1 if column is not None else None)


def _check(tree: ast.Expression) -> tuple[list[str], list[str]]:
    """Refuse what the language lacks; return the names used (in order) and the columns
    read through ``row[...]``."""
    names: list[str] = []
    keyed: list[str] = []
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionInvalid(f"nested deeper than {MAX_DEPTH}", *_position(node))
        if not isinstance(node, _ALLOWED):
            what = _DESCRIBED.get(type(node), type(node).__name__)
            raise ExpressionInvalid(f"not part of the language: {what}", *_position(node))
        if isinstance(node, ast.Constant) and not isinstance(
                node.value, str | int | float | bool | type(None)):
            raise ExpressionInvalid(f"not part of the language: {type(node.value).__name__} "
                                    "literals", *_position(node))
        children: Iterable[ast.AST] = ast.iter_child_nodes(node)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                raise ExpressionInvalid(f"not part of the language: {_DESCRIBED[ast.Attribute]}",
                                        *_position(node.func))
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                called = node.func.id if isinstance(node.func, ast.Name) else "this"
                raise ExpressionInvalid(
                    f"no function {called!r}; the functions are {', '.join(FUNCTIONS)}",
                    *_position(node))
            if node.keywords:
                raise ExpressionInvalid("not part of the language: keyword arguments",
                                        *_position(node.keywords[0].value))
            children = node.args
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id == ROW:
            key = node.slice
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ExpressionInvalid('row[...] takes a column name in quotes, as in '
                                        'row["company location"]', *_position(node))
            keyed.append(key.value)
            children = ()
        elif isinstance(node, ast.Name):
            if node.id == ROW:
                raise ExpressionInvalid('row is used as row["column name"]', *_position(node))
            if node.id in FUNCTIONS:
                raise ExpressionInvalid(f"{node.id} is a function: call it, as in "
                                        f"{node.id}(x)", *_position(node))
            names.append(node.id)
        stack.extend((child, depth + 1) for child in reversed(list(children)))
    return names, keyed


def _parse(text: str) -> ast.Expression:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionInvalid(f"longer than {MAX_EXPRESSION_LENGTH} characters")
    stripped = text.lstrip()
    if not stripped.strip():
        raise ExpressionInvalid("empty expression")
    # Leading blanks would be an indentation error; positions still count them.
    removed = text[:len(text) - len(stripped)]
    lines_removed = removed.count("\n")
    columns_removed = len(removed) - removed.rfind("\n") - 1
    try:
        return ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        line = (exc.lineno or 1) + lines_removed
        column = (exc.offset or 1) + (columns_removed if line == lines_removed + 1 else 0)
        raise ExpressionInvalid(f"does not parse ({exc.msg})", line, column) from None
    except (MemoryError, RecursionError, ValueError):
        raise ExpressionInvalid("does not parse (too complex)") from None


class _Lookup:
    """Names as simpleeval sees them: the current row's values, ``row`` the row itself.

    A callable (not a mapping), so that a name that is no column raises
    :class:`UnknownName` instead of falling back to a function of that name."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.row = _RowView(self)

    def __call__(self, node: ast.Name) -> Any:
        if node.id == ROW:
            return self.row
        try:
            return self.values[node.id]
        except KeyError:
            raise UnknownName(node.id) from None


class _RowView:
    """``row`` in an expression: the current row by column name."""

    def __init__(self, lookup: _Lookup) -> None:
        self.lookup = lookup

    def __getitem__(self, column: str) -> Any:
        try:
            return self.lookup.values[column]
        except KeyError:
            raise UnknownName(column) from None


def _failure(exc: Exception, used: dict[str, Any]) -> ExpressionError:
    empty = [name for name, value in used.items() if value is None]
    if isinstance(exc, UnknownName):
        return ExpressionError("unknown_column", f"no column {exc.args[0]!r} in the table")
    if isinstance(exc, TypeError) and empty:
        return ExpressionError("missing_value", f"{', '.join(map(repr, empty))} empty ({exc})")
    if isinstance(exc, ZeroDivisionError):
        return ExpressionError("division_by_zero", str(exc))
    if isinstance(exc, simpleeval.NumberTooHigh | simpleeval.IterableTooLong | OverflowError):
        return ExpressionError("too_large", str(exc))
    if isinstance(exc, TypeError):
        return ExpressionError("type_error", str(exc))
    if isinstance(exc, ValueError):
        return ExpressionError("value_error", str(exc))
    if isinstance(exc, LookupError):
        return ExpressionError("index_error", f"{type(exc).__name__}: {exc}")
    return ExpressionError("expression_failed", f"{type(exc).__name__}: {exc}")


@dataclass
class CompiledExpression:
    """A checked expression, ready to evaluate row after row."""

    text: str
    tree: ast.Expression
    names: list[str]  # identifiers used as variables, first use first
    keyed: list[str]  # columns read as row["..."]

    @property
    def columns(self) -> list[str]:
        """Every column the expression reads."""
        return list(dict.fromkeys([*self.names, *self.keyed]))

    def evaluator(self) -> Callable[[dict[str, Any]], Any]:
        """A function of a row (column -> value, missing values None) to the value, raising
        :class:`ExpressionError` when the row's evaluation fails."""
        lookup = _Lookup()
        engine = simpleeval.EvalWithCompoundTypes(
            operators=OPERATORS, functions=FUNCTIONS, names=lookup,
            allowed_attrs={},  # belt and braces: the check refuses attributes already
        )
        body = self.tree.body
        names = self.names

        def evaluate(row: dict[str, Any]) -> Any:
            lookup.values = row
            try:
                return engine.eval(self.text, previously_parsed=body)
            except (ArithmeticError, LookupError, TypeError, ValueError, UnknownName,
                    simpleeval.InvalidExpression, RecursionError) as exc:
                raise _failure(exc, {name: row.get(name) for name in names}) from None

        return evaluate


def compile_expression(text: str) -> CompiledExpression:
    """Parse and check an expression, raising :class:`ExpressionInvalid` (with the
    position) when it does not parse or leaves the language."""
    tree = _parse(text)
    names, keyed = _check(tree)
    return CompiledExpression(text, tree, list(dict.fromkeys(names)), list(dict.fromkeys(keyed)))
