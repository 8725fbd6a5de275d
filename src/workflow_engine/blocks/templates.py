"""Templates of the http_request block: text with ``{column}`` placeholders.

The syntax is that of Python's format strings, parsed with the standard library's own
parser (``string.Formatter().parse``) and nothing more: ``{name}`` is the row's value of
column ``name`` (the whole text between the braces, spaces and dots included),
``{secret.NAME}`` the server's secret ``NAME`` (in header values only), ``{{`` and ``}}``
are literal braces. Nothing is evaluated: no attribute, index, conversion or format spec.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TemplateMissingColumn

__all__ = ["SECRET_PREFIX", "JsonTemplate", "Template", "TemplateInvalid", "cell_text"]

SECRET_PREFIX = "secret."


class TemplateInvalid(ValueError):
    """A template that does not parse, or uses what it may not."""


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pandas' NA
    except (TypeError, ValueError):
        return False


def cell_text(value: Any) -> str:
    """A cell as text in a URL, header or body: empty for a missing value, JSON for lists
    and objects, ``true``/``false`` for booleans, integral floats without ``.0``."""
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def cell_json(value: Any) -> Any:
    """A cell as a JSON value of a body: null for a missing value, numbers as numbers."""
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Template:
    """A parsed template: literal texts and the placeholders between them."""

    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str, *, secrets: bool = False) -> Template:
        """Parse ``text``; :class:`TemplateInvalid` says what is wrong."""
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateInvalid(f"{exc} (write {{{{ and }}}} for literal braces)") from None
        for literal, field, spec, conversion in parsed:
            if field is None:
                parts.append((literal, None))
                continue
            if conversion or spec:
                shown = f"{field}{'!' + conversion if conversion else ''}:{spec or ''}"
                raise TemplateInvalid(
                    f"placeholder {{{shown}}}: no conversion or format spec is allowed; a "
                    "placeholder is {column} or {secret.NAME}")
            if not field.strip():
                raise TemplateInvalid("an empty placeholder {}: name a column, as {company}")
            if field.startswith(SECRET_PREFIX) and not secrets:
                raise TemplateInvalid(
                    f"{{{field}}}: secrets may be used in header values only")
            parts.append((literal, field))
        return cls(tuple(parts))

    @property
    def columns(self) -> list[str]:
        """The columns the template reads, in order, once each."""
        return list(dict.fromkeys(field for _, field in self.parts
                                  if field is not None and not field.startswith(SECRET_PREFIX)))

    @property
    def secrets(self) -> list[str]:
        """The names of the secrets the template uses."""
        return list(dict.fromkeys(field[len(SECRET_PREFIX):] for _, field in self.parts
                                  if field is not None and field.startswith(SECRET_PREFIX)))

    @property
    def whole(self) -> str | None:
        """The column, when the template is exactly one column placeholder."""
        if len(self.parts) == 1 and self.parts[0][0] == "" and self.parts[0][1] is not None \
                and not self.parts[0][1].startswith(SECRET_PREFIX):
            return self.parts[0][1]
        return None

    def render(self, row: Mapping[str, Any], *, where: str,
               quote: Callable[[str], str] = lambda text: text,
               secrets: Mapping[str, str] | None = None) -> str:
        """The text for ``row``: each column's value through ``quote``, each secret by its
        value (or, without ``secrets``, left as its placeholder: a request's identity names
        secrets, never holds them). A column the row lacks raises
        :class:`TemplateMissingColumn` naming ``where`` the template is."""
        out: list[str] = []
        for literal, field in self.parts:
            out.append(literal)
            if field is None:
                continue
            if field.startswith(SECRET_PREFIX):
                name = field[len(SECRET_PREFIX):]
                out.append(secrets[name] if secrets is not None else "{" + field + "}")
            elif field not in row:
                raise TemplateMissingColumn(
                    f"{where} names column '{field}', which the table does not have.",
                    column=field)
            else:
                out.append(quote(cell_text(row[field])))
        return "".join(out)


@dataclass(frozen=True)
class JsonTemplate:
    """A JSON body whose strings are templates; a string that is exactly ``{column}``
    becomes the cell's own JSON value (a number stays a number, an empty cell is null)."""

    value: Any

    @classmethod
    def parse(cls, value: Any, path: str = "") -> JsonTemplate:
        """Parse every string of ``value``; :class:`TemplateInvalid` names the path."""
        return cls(_parse(value, path))

    @property
    def columns(self) -> list[str]:
        """The columns the body reads."""
        found: list[str] = []
        _walk(self.value, lambda template: found.extend(template.columns))
        return list(dict.fromkeys(found))

    def render(self, row: Mapping[str, Any], *, where: str) -> Any:
        """The body for ``row``."""
        return _render(self.value, row, where)


def _parse(value: Any, path: str) -> Any:
    if isinstance(value, str):
        try:
            return Template.parse(value)
        except TemplateInvalid as exc:
            raise TemplateInvalid(f"{path or 'body'}: {exc}") from None
    if isinstance(value, list):
        return [_parse(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _parse(item, f"{path}.{key}" if path else key)
                for key, item in value.items()}
    return value


def _walk(value: Any, visit: Callable[[Template], None]) -> None:
    if isinstance(value, Template):
        visit(value)
    elif isinstance(value, list):
        for item in value:
            _walk(item, visit)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, visit)


def _render(value: Any, row: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, Template):
        whole = value.whole
        if whole is not None:
            if whole not in row:
                raise TemplateMissingColumn(
                    f"{where} names column '{whole}', which the table does not have.",
                    column=whole)
            return cell_json(row[whole])
        return value.render(row, where=where)
    if isinstance(value, list):
        return [_render(item, row, where) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, row, where) for key, item in value.items()}
    return value
