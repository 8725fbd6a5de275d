"""Files: upload CSVs for read_csv, list and download them, and download outputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from flask import Blueprint, Response, current_app, request, send_file
from pydantic import Field

from ..blocks.csv_checks import Delimiter, TextEncoding
from ..blocks.tables import read_csv_table
from ..errors import Conflict, ValidationFailed
from ..files import FileArea
from ..settings import Settings
from . import runner
from .requests import QueryModel, query
from .responses import json_response
from .schemas import CsvSummary, FileList, FileOut

__all__ = ["blueprint"]

blueprint = Blueprint("files", __name__, url_prefix="/api")

PREVIEW_ROWS = 10


class FileExists(Conflict):
    """A file of that name is there already."""

    code = "file_exists"
    title = "File exists"


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


def _listing(area: FileArea) -> Response:
    items = []
    for name in area.names():
        stat = area.existing(name).stat()
        items.append(FileOut(name=name, size=stat.st_size, modified_at=int(stat.st_mtime * 1000)))
    return json_response(FileList(items=items))


@blueprint.get("/files")
def list_files() -> Response:
    """The CSV files read_csv can read, uploads and samples, by name."""
    return _listing(runner().catalog.files)


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
    name = request.form.get("name") or Path(upload.filename).name
    catalog = runner().catalog
    area = catalog.files
    target = area.path(name)
    if not name.lower().endswith(".csv"):
        raise ValidationFailed(f"{name!r} is not a .csv file; only CSV files are accepted.",
                               name=name)
    # A sample of that name counts: the upload would take its place for read_csv.
    if area.find(name) is not None and not options.overwrite:
        raise FileExists(f"{name!r} exists; add ?overwrite=true to replace it.", name=name)
    area.root.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=area.root, prefix=".upload-", suffix=".tmp")
    os.close(handle)
    try:
        upload.save(temporary)
        frame = read_csv_table(Path(temporary), name=name, delimiter=options.delimiter,
                               encoding=options.encoding, limits=catalog.limits)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    body = CsvSummary(name=name, size=target.stat().st_size,
                      columns=[str(c) for c in frame.columns], row_count=len(frame),
                      preview=_records(frame.head(PREVIEW_ROWS)))
    response = json_response(body, 201)
    response.headers["Location"] = f"/api/files/{name}"
    return response


@blueprint.get("/files/<name>")
def download_file(name: str) -> Response:
    """Download an input file."""
    return send_file(runner().catalog.files.existing(name), mimetype="text/csv",
                     as_attachment=True, download_name=name)


@blueprint.get("/files/<name>/preview")
def preview_file(name: str) -> Response:
    """The first rows of an input file, parsed as read_csv would."""
    options = query(PreviewQuery)
    catalog = runner().catalog
    path = catalog.files.existing(name)
    frame = read_csv_table(path, name=name, max_rows=options.rows, limits=catalog.limits,
                           delimiter=options.delimiter, encoding=options.encoding)
    return json_response(CsvSummary(
        name=name, size=path.stat().st_size, columns=[str(c) for c in frame.columns],
        row_count=None, preview=_records(frame),
    ))


@blueprint.get("/outputs")
def list_outputs() -> Response:
    """Files written by save_csv."""
    return _listing(runner().outputs)


@blueprint.get("/outputs/<name>")
def download_output(name: str) -> Response:
    """Download a file written by save_csv."""
    return send_file(runner().outputs.existing(name), mimetype="text/csv",
                     as_attachment=True, download_name=name)
