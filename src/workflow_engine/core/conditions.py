"""Conditions: one vocabulary of operators for filtering rows and guarding actions.

A condition is data, never code: an operand, an operator and a value. The filter block
applies it to a column (vectorised, in ``blocks/filtering.py``); an action's guard
applies it here to one fact about the instance (its row count, its columns, a context
value). Nothing is ever ``eval``'d.

The semantics, shared by both:
- text comparisons ignore case unless ``case_sensitive`` is true;
- ``gt``/``gte``/``lt``/``lte`` compare numbers as numbers; a value that is not a number
  never matches;
- ``equals``/``not_equals``/``in``/``not_in`` compare as numbers when both sides are
  numbers, else as text;
- ``is_empty`` is true for a missing value and for blank text;
- ``is_true``/``is_false`` accept booleans and the words true/false, yes/no, y/n, t/f, 1/0;
- ``matches`` is an RE2 regular expression (linear time: no backreferences, no
  catastrophic backtracking), searched anywhere in the text, at most 500 characters.
"""

from __future__ import annotations

import json
import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .spec import SpecModel

__all__ = [
    "FALSE_WORDS",
    "MAX_PATTERN_LENGTH",
    "NUMBER_PATTERN",
    "TRUE_WORDS",
    "ColumnCondition",
    "FactCondition",
    "Guard",
    "Operator",
    "as_number",
    "evaluate",
    "regex_search",
]

MAX_PATTERN_LENGTH = 500
MAX_VALUES = 1000
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0"})


class Operator(StrEnum):
    """What a condition checks."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    NOT_IN = "not_in"
    IS_EMPTY = "is_empty"
    IS_NOT_EMPTY = "is_not_empty"
    IS_TRUE = "is_true"
    IS_FALSE = "is_false"
    MATCHES = "matches"


UNARY = frozenset({Operator.IS_EMPTY, Operator.IS_NOT_EMPTY, Operator.IS_TRUE, Operator.IS_FALSE})
ORDERING = frozenset({Operator.GT, Operator.GTE, Operator.LT, Operator.LTE})
MEMBERSHIP = frozenset({Operator.IN, Operator.NOT_IN})

Scalar = str | int | float | bool


class _Condition(SpecModel):
    # Lax for this one field: JSON carries the operator's name, not an enum member.
    operator: Operator = Field(strict=False)
    value: Scalar | list[Scalar] | None = Field(
        None, description="Compared against; a list for in/not_in; omitted for is_* operators."
    )
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _value_fits_operator(self) -> _Condition:
        op, value = self.operator, self.value
        if op in UNARY:
            if value is not None:
                raise ValueError(f"'{op}' takes no value")
        elif op in MEMBERSHIP:
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_VALUES:
                raise ValueError(f"'{op}' needs a list of 1 to {MAX_VALUES} values")
        elif isinstance(value, list) or value is None:
            raise ValueError(f"'{op}' needs a single value")
        elif op in ORDERING and as_number(value) is None:
            raise ValueError(f"'{op}' compares numbers; {value!r} is not a number")
        elif op is Operator.MATCHES:
            _check_pattern(value)
        return self


def _check_pattern(value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_PATTERN_LENGTH:
        raise ValueError(f"'matches' needs a pattern of 1 to {MAX_PATTERN_LENGTH} characters")
    import pyarrow as pa

    try:
        regex_search(value, [""], case_sensitive=True)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"not a valid RE2 pattern: {exc}") from None


class ColumnCondition(_Condition):
    """A condition on one column of the table (the filter block's)."""

    column: Annotated[str, StringConstraints(min_length=1, max_length=256)]


Fact = Annotated[
    str,
    StringConstraints(pattern=r"^(row_count|column_count|columns|context\.[A-Za-z0-9_.-]{1,64})$"),
]


class FactCondition(_Condition):
    """A condition on a fact about the instance: ``row_count``, ``column_count``,
    ``columns`` (the list of column names) or ``context.<key>``."""

    fact: Fact


class Guard(SpecModel):
    """An action's guard: the action is available only when its conditions hold."""

    conditions: list[FactCondition] = Field(min_length=1, max_length=50)
    match: Literal["all", "any"] = "all"


# Plain decimal numbers only: no "1_000", "inf" or "0x10", which Python's float() would
# take and a column's vectorised parse would not.
NUMBER_PATTERN = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$"
_NUMBER = re.compile(NUMBER_PATTERN)


def as_number(value: object) -> float | None:
    """``value`` as a finite number, or None if it is not one (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a double's range
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _text(value: object, case_sensitive: bool) -> str:
    text = value if isinstance(value, str) else _format(value)
    # lower(), not casefold(): it is what the vectorised column kernels do.
    return text if case_sensitive else text.lower()


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str | list | dict) and not (
        value.strip() if isinstance(value, str) else value
    )


def _truth(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    word = _format(value).strip().casefold() if value is not None else ""
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _same(left: object, right: object, case_sensitive: bool) -> bool:
    a, b = as_number(left), as_number(right)
    if a is not None and b is not None:
        return a == b
    if _is_empty(left):
        return False
    return _text(left, case_sensitive) == _text(right, case_sensitive)


def evaluate(condition: _Condition, operand: object) -> bool:
    """Whether ``operand`` satisfies ``condition``.

    A list operand (the ``columns`` fact) matches ``contains``/``not_contains`` by
    membership, the other operators against each element (any).
    """
    op, value, cs = condition.operator, condition.value, condition.case_sensitive
    if isinstance(operand, list) and op not in UNARY:
        if op is Operator.CONTAINS:
            return any(_same(item, value, cs) for item in operand)
        if op is Operator.NOT_CONTAINS:
            return not any(_same(item, value, cs) for item in operand)
        return any(evaluate(condition, item) for item in operand)
    if op is Operator.IS_EMPTY:
        return _is_empty(operand)
    if op is Operator.IS_NOT_EMPTY:
        return not _is_empty(operand)
    if op is Operator.IS_TRUE:
        return _truth(operand) is True
    if op is Operator.IS_FALSE:
        return _truth(operand) is False
    if op in ORDERING:
        number, bound = as_number(operand), as_number(value)
        if number is None or bound is None:
            return False
        return {
            Operator.GT: number > bound, Operator.GTE: number >= bound,
            Operator.LT: number < bound, Operator.LTE: number <= bound,
        }[op]
    if op is Operator.EQUALS:
        return _same(operand, value, cs)
    if op is Operator.NOT_EQUALS:
        return not _same(operand, value, cs)
    if op in MEMBERSHIP:
        found = any(_same(operand, item, cs) for item in value)  # type: ignore[union-attr]
        return found if op is Operator.IN else not found
    if _is_empty(operand):
        return op is Operator.NOT_CONTAINS
    text, needle = _text(operand, cs), _text(value, cs)
    if op is Operator.CONTAINS:
        return needle in text
    if op is Operator.NOT_CONTAINS:
        return needle not in text
    if op is Operator.STARTS_WITH:
        return text.startswith(needle)
    if op is Operator.ENDS_WITH:
        return text.endswith(needle)
    return bool(regex_search(str(value), [_format(operand)], case_sensitive=cs)[0])


def regex_search(pattern: str, texts: Any, *, case_sensitive: bool) -> Any:
    """RE2 search of ``pattern`` in each of ``texts`` (a list or Arrow array): an Arrow
    boolean array, null where the text is null. RE2 runs in linear time, so a hostile
    pattern cannot stall the server as a backtracking engine would."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.string())
    return pc.match_substring_regex(array, pattern, ignore_case=not case_sensitive)
