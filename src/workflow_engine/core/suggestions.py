""""Did you mean ...?" for a misspelt field of a strict model.

Pydantic reports an unknown field as "Extra inputs are not permitted" and nothing more.
To name the field that was probably meant, the model that refused it is found by
walking the error's location through the validated model's field annotations (nested
models, lists, dicts, optional and union members), and its field names are compared
with the unknown one.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.alias_generators import to_snake

__all__ = ["suggest_field"]

_SEQUENCES = (list, tuple, set, frozenset, Sequence)
_MAPPINGS = (dict,)


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(_unwrap(a) for a in get_args(annotation) if a is not type(None))
    return (annotation,)


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias, info.validation_alias) or to_snake(key) == name:
            return _unwrap(info.annotation)
    return None


def _step(annotation: Any, part: int | str) -> tuple[Any, bool]:
    """Where ``part`` of a location leads from ``annotation``; and whether it was used
    (a union member's tag in the location is used; an optional's wrapper is skipped)."""
    annotation = _unwrap(annotation)
    members = _members(annotation)
    if len(members) > 1:
        for member in members:
            if isinstance(part, str) and getattr(member, "__name__", None) == part:
                return member, True
        return None, False
    if members[0] is not annotation:
        return members[0], False
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (_field(annotation, part) if isinstance(part, str) else None), True
    if origin in _SEQUENCES and isinstance(part, int):
        return _unwrap(get_args(annotation)[0]), True
    if origin in _MAPPINGS and isinstance(part, str):
        return _unwrap(get_args(annotation)[1]), True
    return None, False


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    current: Any = model
    parts = list(loc)
    while parts:  # each step uses a part or unwraps an optional: it ends
        current, used = _step(current, parts[0])
        if current is None:
            return None
        if used:
            parts.pop(0)
    members = [m for m in _members(_unwrap(current))
               if isinstance(m, type) and issubclass(m, BaseModel)]
    return members[0] if len(members) == 1 else None


def suggest_field(model: type[BaseModel], loc: Sequence[int | str]) -> str | None:
    """The field of ``model`` probably meant by the unknown field at ``loc``, or None."""
    if not loc or not isinstance(loc[-1], str):
        return None
    owner = _model_at(model, loc[:-1])
    if owner is None:
        return None
    unknown = loc[-1]
    names = list(owner.model_fields)
    close = (difflib.get_close_matches(unknown, names, n=1, cutoff=0.75)
             or difflib.get_close_matches(to_snake(unknown), names, n=1, cutoff=0.75))
    return close[0] if close else None
