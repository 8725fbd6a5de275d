"""Files: upload CSVs for read_csv, list and download them, and download outputs."""

from __future__ import annotations

from pathlib import PurePath

import pandas as pd
from flask import Blueprint, Response, current_app, request, send_file
from pydantic import Field

from ..blocks.csv_checks import Delimiter, TextEncoding
from ..errors import ValidationFailed
from ..settings import Settings
from ..storage import FileInfo, StoredFile
from . import file_service
from .requests import QueryModel, query
from .responses import json_response
from .schemas import CsvSummary, FileList, FileOut

__all__ = ["blueprint"]

blueprint = Blueprint("files", __name__, url_prefix="/api")

PREVIEW_ROWS = 10


class CsvDialect(QueryModel):
    """How to read a CSV: its delimiter and encoding (as read_csv's params)."""

    delimiter: Delimiter = ","
    encoding: TextEncoding = "utf-8"


class UploadQuery(CsvDialect):
    """Options of an upload."""

    overwrite: bool = Field(False, description="Replace a file of the same name.")


class PreviewQuery(CsvDialect):
    """How much to preview."""

    rows: int = Field(PREVIEW_ROWS, ge=1, le=1000)


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    plain = frame.astype(object).where(pd.notna(frame), None)
    return [{str(key): value for key, value in row.items()}
            for row in plain.to_dict(orient="records")]


def _listing(listing: list[FileInfo]) -> Response:
    return json_response(FileList(items=[
        FileOut(name=info.name, size=info.size, modified_at=info.modified_at)
        for info in listing
    ]))


def _download(stored: StoredFile) -> Response:
    info = stored.info()
    response = send_file(stored.open(), mimetype="text/csv", as_attachment=True,
                         download_name=stored.name, last_modified=info.modified_at / 1000)
    response.content_length = info.size
    return response


@blueprint.get("/files")
def list_files() -> Response:
    """The CSV files read_csv can read, uploads and samples, by name."""
    return _listing(file_service().inputs())


@blueprint.post("/files")
def upload_file() -> Response:
    """Upload a CSV (multipart field ``file``) into the uploads directory. It is parsed
    first: a file that is not a well-formed CSV with a header and rows is refused, and
    nothing is stored. Samples are never written to."""
    settings: Settings = current_app.config["WORKFLOW_SETTINGS"]
    request.max_content_length = settings.max_upload_bytes
    options = query(UploadQuery)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed("Send the CSV as a multipart/form-data field named 'file'.")
    name = request.form.get("name") or PurePath(upload.filename).name
    uploaded = file_service().upload(name, upload.stream, overwrite=options.overwrite,
                                     delimiter=options.delimiter, encoding=options.encoding)
    frame = uploaded.table
    body = CsvSummary(name=name, size=uploaded.size,
                      columns=[str(c) for c in frame.columns], row_count=len(frame),
                      preview=_records(frame.head(PREVIEW_ROWS)))
    response = json_response(body, 201)
    response.headers["Location"] = f"/api/files/{name}"
    return response


@blueprint.get("/files/<name>")
def download_file(name: str) -> Response:
    """Download an input file."""
    return _download(file_service().input(name))


@blueprint.get("/files/<name>/preview")
def preview_file(name: str) -> Response:
    """The first rows of an input file, parsed as read_csv would."""
    options = query(PreviewQuery)
    preview = file_service().preview(name, rows=options.rows, delimiter=options.delimiter,
                                     encoding=options.encoding)
    frame = preview.table
    return json_response(CsvSummary(
        name=name, size=preview.size, columns=[str(c) for c in frame.columns],
        row_count=None, preview=_records(frame),
    ))


@blueprint.get("/outputs")
def list_outputs() -> Response:
    """Files written by save_csv."""
    return _listing(file_service().written())


@blueprint.get("/outputs/<name>")
def download_output(name: str) -> Response:
    """Download a file written by save_csv."""
    return _download(file_service().output(name))
