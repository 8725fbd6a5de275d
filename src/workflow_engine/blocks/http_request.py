"""The http_request block: call an HTTP API once per row, and map its JSON answer into
columns.

The method is fixed; the URL, the header values and the strings of a JSON body are
templates over the row's columns (:mod:`.templates`): values substituted into the URL are
percent-encoded, and its scheme and host are literal, so a row's data never chooses where
the request goes. Header values may name the server's secrets, ``{secret.NAME}``; the
definition and its history hold the name only. Answers are read as JSON and mapped into
columns by JMESPath expressions. The calls themselves (the address guard, the per-host rate
budget, retries, the size limit, never sending a POST or PATCH twice) are
:mod:`..outbound`'s. As in the enrichment blocks, a row whose call fails gets the reason in
``<prefix>_error``; ``on_row_error`` keeps it, drops it or fails the block, and past
``max_error_ratio`` the block fails.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import jmespath
import jmespath.exceptions
import pandas as pd
from pydantic import AfterValidator, Field, JsonValue, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from ..errors import OutboundError, Problem
from ..outbound import IDEMPOTENT, CallCancelled, Outgoing
from .base import Block, BlockContext, BlockError, BlockParams, ColumnName, check_row_errors
from .compute import _typed, _values
from .templates import JsonTemplate, Template, TemplateInvalid

__all__ = ["HttpRequest"]

# A header's name: an HTTP token. The ones that frame the message are the client's own.
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")]
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _template(text: str, *, secrets: bool = False) -> Template:
    try:
        return Template.parse(text, secrets=secrets)
    except TemplateInvalid as exc:
        raise PydanticCustomError("template_invalid", "{reason}", {"reason": str(exc)}
                                  ) from None


def _checked_url(text: str) -> str:
    template = _template(text)
    literal = template.parts[0][0] if template.parts else ""
    split = urlsplit(literal)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise PydanticCustomError(
            "url_invalid", "the URL must start with http:// or https:// and a literal host "
            "(placeholders may follow in the path and query), as in "
            "https://api.example.com/companies/{domain}", {})
    host_part = literal[len(split.scheme) + 3:]
    placeholders = len(template.parts) > 1 or template.parts[0][1] is not None
    if placeholders and not any(mark in host_part for mark in "/?#"):
        raise PydanticCustomError(
                "url_invalid", "the URL's host must be literal: a placeholder may not choose "
                "where the request goes; put it in the path or query", {})
    if split.username is not None or split.password is not None:
        raise PydanticCustomError(
            "url_invalid", "no credentials in the URL: put them in a header from a secret, "
            "as Authorization: Bearer {secret.NAME}", {})
    return text


def _checked_header(text: str) -> str:
    _template(text, secrets=True)
    return text


def _checked_jmespath(text: str) -> str:
    try:
        jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as exc:
        reason = str(exc).replace("\n", " ")
        raise PydanticCustomError("jmespath_invalid", "not a JMESPath expression: {reason}",
                                  {"reason": reason}) from None
    return text


UrlTemplate = Annotated[str, StringConstraints(min_length=1, max_length=4000),
                        AfterValidator(_checked_url)]
HeaderTemplate = Annotated[str, StringConstraints(max_length=4000),
                           AfterValidator(_checked_header)]
JmesPath = Annotated[str, StringConstraints(min_length=1, max_length=2000),
                     AfterValidator(_checked_jmespath)]


class HttpRequestParams(BlockParams):
    """Parameters of ``http_request``."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        "GET", description="POST and PATCH are sent at most once per row and instance "
        "(their answers are stored and reused); the others may be repeated.")
    url: UrlTemplate = Field(
        description="The URL, with {column} placeholders (percent-encoded) after a literal "
        "http(s)://host.")
    headers: dict[HeaderName, HeaderTemplate] = Field(
        default_factory=dict, max_length=50,
        description="Header -> value template: {column}, and {secret.NAME} for a secret of "
        "the server's HTTP_SECRETS, named, never written here.")
    body: dict[str, JsonValue] | list[JsonValue] | None = Field(
        None, description="A JSON body whose strings are templates; a string that is just "
        "\"{column}\" sends the cell's own value (numbers stay numbers, empty is null).")
    extract: dict[ColumnName, JmesPath] = Field(
        default_factory=dict, max_length=100,
        description="New column -> JMESPath expression over the JSON answer.")
    rate_per_minute: int = Field(
        60, ge=1, le=60_000, description="Requests per minute to the URL's host, shared by "
        "every run and process.")
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Seconds to connect, to send, and to wait for each "
        "part of the answer; the answer's body must also arrive whole within four times it.")
    max_retries: int = Field(
        3, ge=0, le=10, description="Retries of 429, 5xx, timeouts and network errors (POST "
        "and PATCH: only those that provably did nothing: no connection, 429, 503).")
    concurrency: int = Field(4, ge=1, le=32, description="Rows' requests out at once.")
    on_row_error: Literal["keep", "drop", "fail"] = Field(
        "keep", description="A row whose request failed: keep it (error in the error "
        "column), drop it, or fail the block.")
    on_unknown_outcome: Literal["error", "resend"] = Field(
        "error", description="A POST or PATCH that left but whose answer never came: "
        "'error' gives it the row error http_outcome_unknown, now and on every later run; "
        "'resend' sends it again on a later run (a retry, or the run resumed after a "
        "restart), accepting that it may take effect twice.")
    max_error_ratio: float = Field(
        0.5, ge=0, le=1, description="Fail the block when more rows than this share fail.")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        "http", description="Prefix of the status and error columns.")

    @model_validator(mode="after")
    def _consistent(self) -> HttpRequestParams:
        framing = [name for name in self.headers if name.lower() in FRAMING_HEADERS]
        if framing:
            raise ValueError(f"headers: {', '.join(framing)} are set by the client, not here")
        if self.body is not None and self.method == "GET":
            raise ValueError("a GET sends no body: use POST, PUT or PATCH, or put the values "
                             "in the URL")
        if self.body is not None:
            try:
                JsonTemplate.parse(self.body)
            except TemplateInvalid as exc:
                raise ValueError(str(exc)) from None
        taken = {f"{self.prefix}_status", f"{self.prefix}_error"} & set(self.extract)
        if taken:
            raise ValueError(f"extract: {', '.join(sorted(taken))} is the block's own column; "
                             "extract into another name or change prefix")
        return self


class HttpRequest(Block[HttpRequestParams]):
    """Call an HTTP API per row and write what its JSON answer says into columns."""

    kind = "http_request"
    description = ("Call an HTTP API once per row (URL, headers and JSON body templated from "
                   "the row, secrets by name) and map its JSON answer into columns with "
                   "JMESPath; failures go to <prefix>_error.")
    Params = HttpRequestParams
    requires = "the columns the templates name"
    produces = "the input's columns, the extracted columns, <prefix>_status, <prefix>_error"

    def __init__(self, params: HttpRequestParams, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        self.url = Template.parse(params.url)
        self.headers = {name: Template.parse(value, secrets=True)
                        for name, value in params.headers.items()}
        self.body = JsonTemplate.parse(params.body) if params.body is not None else None
        self.expressions = {column: jmespath.compile(text)
                            for column, text in params.extract.items()}

    @property
    def error_column(self) -> str:
        """Where a row's failure is written."""
        return f"{self.params.prefix}_error"

    @property
    def status_column(self) -> str:
        """Where a row's answer's HTTP status is written."""
        return f"{self.params.prefix}_status"

    def required_columns(self) -> list[str]:
        """Every column a template names."""
        found = [*self.url.columns]
        for template in self.headers.values():
            found.extend(template.columns)
        if self.body is not None:
            found.extend(self.body.columns)
        return list(dict.fromkeys(found))

    def column_path(self, column: str) -> str:
        """The first template that names ``column``: ``.url``, ``.headers.<name>``,
        ``.body``."""
        if column in self.url.columns:
            return ".url"
        for name, template in self.headers.items():
            if column in template.columns:
                return f".headers.{name}"
        return ".body" if self.body is not None and column in self.body.columns else ""

    def secrets(self) -> list[str]:
        """The names of the secrets the headers use."""
        return list(dict.fromkeys(name for template in self.headers.values()
                                  for name in template.secrets))

    def check_secrets(self, known: Collection[str] | None, path: str) -> list[Problem]:
        """A secret the server does not have is a definition error at its header."""
        if known is None:
            return []
        return [
            Problem(f"{path}.headers.{header}", "unknown_secret",
                    f"No secret '{name}' is configured on this server (HTTP_SECRETS names: "
                    f"{', '.join(sorted(known)) or 'none'}).")
            for header, template in self.headers.items()
            for name in template.secrets if name not in known
        ]

    def produced_columns(self) -> list[str]:
        """The extracted columns, the status and the error column."""
        return [*self.params.extract, self.status_column, self.error_column]

    def keeps_rows(self) -> bool:
        """Every row stays, unless failed rows are dropped."""
        return self.params.on_row_error != "drop"

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        calls = context.http
        if calls is None:
            raise BlockError(f"{self.kind}: no outbound HTTP is configured on this server.")
        missing = [name for name in self.secrets() if name not in calls.secrets]
        if missing:
            raise BlockError(f"{self.kind}: the server has no secret "
                             f"{', '.join(repr(name) for name in missing)} (HTTP_SECRETS).",
                             missing_secrets=missing)
        table = table.reset_index(drop=True)
        cells = {str(column): _values(table[column]) for column in table.columns}
        count = len(table)
        extracted: dict[str, list[Any]] = {column: [None] * count
                                           for column in self.params.extract}
        statuses: list[int | None] = [None] * count
        errors: list[str | None] = [None] * count
        reused = [False] * count
        done = [0]
        lock = threading.Lock()
        context.progress(0, count)
        context.sent(0)

        def one(position: int) -> None:
            if context.cancel.is_set():
                return
            row = {column: values[position] for column, values in cells.items()}
            try:
                answer = calls.send(
                    self.outgoing(row, context.instance_id, calls.secrets,
                                  step=context.step, position=position),
                    rate_per_minute=self.params.rate_per_minute,
                    timeout=self.params.timeout_seconds, max_retries=self.params.max_retries,
                    cancel=context.cancel, on_unknown_outcome=self.params.on_unknown_outcome)
            except OutboundError as exc:
                errors[position] = f"{exc.code}: {exc.detail}"
            except CallCancelled:
                return
            else:
                statuses[position] = answer.status
                reused[position] = answer.reused
                for column, expression in self.expressions.items():
                    extracted[column][position] = expression.search(answer.body)
            with lock:
                done[0] += 1
                context.progress(done[0], count)
                context.sent(done[0])

        with ThreadPoolExecutor(max_workers=min(self.params.concurrency, max(count, 1)),
                                thread_name_prefix="http-request") as pool:
            for _ in pool.map(one, range(count)):
                pass
        context.check_cancelled()

        failed = [message for message in errors if message is not None]
        # Recorded with the outcome: a retry or a resumed run shows what it did not send.
        context.details["http_request"] = {
            "answered": sum(status is not None for status in statuses),
            "reused": sum(reused), "failed": len(failed)}
        check_row_errors(self.kind, errors, on_row_error=self.params.on_row_error,
                         max_error_ratio=self.params.max_error_ratio)
        output = table.copy()
        for column, values in extracted.items():
            output[column] = _typed(values)
        output[self.status_column] = pd.Series(statuses, dtype="Int64")
        output[self.error_column] = pd.Series(errors, dtype="string")
        if self.params.on_row_error == "drop":
            output = output[output[self.error_column].isna().to_numpy()].reset_index(drop=True)
        return output

    def outgoing(self, row: dict[str, Any], instance_id: str | None,
                 secrets: Mapping[str, str], *, step: str | None = None,
                 position: int | None = None) -> Outgoing:
        """The row's request; :class:`TemplateMissingColumn` if a template names a column
        the row lacks.

        A POST or PATCH is the row's own (its identity names the block's step and the
        row's position in the block's input, which a retry or a resumed run reads again):
        two rows that render the same request each send it once."""
        url = self.url.render(row, where="url", quote=lambda text: quote(text, safe=""))
        headers = {name: template.render(row, where=f"headers.{name}", secrets=secrets)
                   for name, template in self.headers.items()}
        named = {name: template.render(row, where=f"headers.{name}")
                 for name, template in self.headers.items()}
        body = self.body.render(row, where="body") if self.body is not None else None
        return Outgoing(
            self.params.method, url, headers,
            frozenset(name for name, template in self.headers.items() if template.secrets),
            body=body, has_body=self.body is not None,
            identity={"instance": instance_id, "method": self.params.method, "url": url,
                      "headers": named, "body": body,
                      **({"step": step, "row": position}
                         if self.params.method not in IDEMPOTENT else {})})

