"""JSON as the API reads it: one meaning for every document, or a refusal that says why.

RFC 8259 leaves room that two parsers may fill differently: other encodings, a byte order
mark, numbers too large for a double, repeated names in an object. A body that one
component reads one way and another (a proxy, an audit log, a client library) reads
another is a security hole, so each of these is refused with the rule it broke:

``encoding``    not UTF-8 (UTF-16 and UTF-32 bodies hold NUL bytes, which JSON text never
                does), or a byte order mark before the document;
``syntax``      not JSON, with the line and column;
``non_finite``  ``NaN``, ``Infinity``, or a number that overflows a double (``1e309``,
                or an integer of 309 digits);
``number``      an integer of more digits than Python converts (4300);
``duplicate_key`` a name repeated in one object, with the object's path;
``depth``       nested deeper than :data:`MAX_DEPTH`;
``surrogate``   a ``\\uD800``-``\\uDFFF`` escape without its pair, which is not text.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from .errors import MalformedJSON, Problem

__all__ = ["MAX_DEPTH", "loads"]

MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_BOM = "\ufeff"
_DOUBLE_MAX = int(sys.float_info.max)
_DOUBLE_DIGITS = len(str(_DOUBLE_MAX)) - 1


class _Refused(ValueError):
    """Raised from inside the decoder's hooks; carries the rule and the message."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class _Repeated(dict[str, Any]):
    """An object in which ``name`` was given more than once (the decoder kept the last)."""

    name: str = ""


def _refuse(rule: str, message: str, **context: Any) -> MalformedJSON:
    return MalformedJSON(message, rule=rule, **context)


def loads(data: bytes | str, *, what: str = "The body") -> Any:
    """``data`` parsed as strict JSON; :class:`MalformedJSON` naming the rule it breaks.

    ``what`` names the document in messages ("The body", "definitions/x.json").
    """
    text = _text(data, what)
    if not text.strip():
        raise _refuse("syntax", f"{what} is empty; a JSON document is required.")
    repeated: list[_Repeated] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(items)
        if len(found) == len(items):
            return found
        marked = _Repeated(found)
        marked.name = _first_repeated(items)
        repeated.append(marked)
        return marked

    try:
        document = json.loads(text, object_pairs_hook=pairs, parse_float=_finite_float,
                              parse_int=_finite_int, parse_constant=_constant)
    except _Refused as exc:
        raise _refuse(exc.rule, f"{what} {exc}") from exc
    except json.JSONDecodeError as exc:
        raise _refuse(
            "syntax",
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            line=exc.lineno, column=exc.colno,
        ) from exc
    except RecursionError as exc:
        raise _refuse("depth", f"{what} is nested deeper than {MAX_DEPTH} levels.") from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise _refuse("number", f"{what} holds a number JSON parsing refuses: {exc}.") from exc
    _check_depth(document, what)
    if repeated:
        path, name = _repeated_path(document)
        where = f"{path}.{name}" if path else name
        raise _refuse(
            "duplicate_key",
            f"{what} gives the name {name!r} twice in the object at "
            f"{path or 'the top level'}: each name may appear once.",
            errors=[Problem(where, "duplicate_key", f"{name!r} appears more than once.")],
            path=where,
        )
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _refuse(
                "surrogate",
                f"{what} holds an unpaired UTF-16 surrogate (a \\uD800-\\uDFFF escape "
                "without its pair), which is not text.",
            ) from exc
    return document


def _text(data: bytes | str, what: str) -> str:
    if isinstance(data, str):
        text = data
    else:
        if b"\x00" in data:
            raise _refuse(
                "encoding",
                f"{what} holds NUL bytes, so it is not UTF-8 JSON (UTF-16 and UTF-32 look "
                "like this): send UTF-8.", offset=data.index(b"\x00"))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse(
                "encoding", f"{what} is not valid UTF-8 (byte {exc.start}): send UTF-8.",
                offset=exc.start) from exc
    if text.startswith(_BOM):
        raise _refuse("encoding", f"{what} starts with a byte order mark: send UTF-8 "
                      "without one.", offset=0)
    return text


def _first_repeated(items: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no name is repeated")  # pragma: no cover


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused("non_finite", f"holds the number {literal[:40]}, which does not fit a "
                       "double (it would become Infinity).")
    return value


def _finite_int(literal: str) -> int:
    value = int(literal)
    # A double holds integers up to about 1.8e308: beyond that, every reader that converts
    # numbers to doubles (JavaScript, most databases, our own conditions) sees Infinity.
    if len(literal) > _DOUBLE_DIGITS and abs(value) > _DOUBLE_MAX:
        raise _Refused("non_finite", f"holds the integer {literal[:40]}…, which does not fit "
                       "a double (it would become Infinity).")
    return value


def _constant(name: str) -> Any:
    raise _Refused("non_finite", f"holds {name}, which is not a JSON value.")


def _check_depth(document: Any, what: str) -> None:
    """Refuse documents nested deeper than anything the API needs."""
    level: list[Any] = [document] if isinstance(document, dict | list) else []
    for _ in range(MAX_DEPTH):
        if not level:
            return
        level = [
            child for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    if level:
        raise _refuse("depth", f"{what} is nested deeper than {MAX_DEPTH} levels.")


def _repeated_path(document: Any) -> tuple[str, str]:
    """The path of the first object (in document order) that repeated a name."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Repeated):
            return path, node.name
        if isinstance(node, dict):
            children = [(f"{path}.{key}" if path else str(key), value)
                        for key, value in node.items()]
        elif isinstance(node, list):
            children = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    raise AssertionError("a repeated name was seen but not found")  # pragma: no cover
