"""Where user files live: directories of named files, on this machine's disk or in an
object store that every process of a cluster reads.

Uploads, the shipped samples, save_csv's outputs and instances' snapshots are each a
:class:`FileArea`: a directory whose files are addressed by plain names only. Every name a
client or a definition gives is checked here, by :func:`plain_name`, before a backend sees
it: no separators, no ``..``, no absolute paths, no NUL or control characters. Code outside
this module reads and writes through :meth:`FileArea.file` and never sees a path.

Two backends, both on fsspec, chosen by ``STORAGE_URL`` (see :func:`open_areas`):

- :class:`LocalArea`, a directory on the local disk (the default): one machine. Links are
  followed and refused where they land outside the area.
- :class:`ObjectStoreArea`, a prefix of an S3-compatible bucket: for a cluster, where
  servers and workers on other machines must read the same files.

Writes are atomic in both: a reader sees the old file or the whole new one, never part of
one. Locally a hidden temporary file beside the target is renamed over it; an object
store shows an object only once its upload completes, so the new file is staged on local
scratch disk and uploaded whole.

An area may have a ``fallback``: a second, read-only area whose files are found (and
listed) after its own. Input CSVs use one: uploads are written to the files area, and the
samples shipped in ``data/`` stay readable by name without anything being written there.
"""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from .errors import FileNotFound, InvalidPath
from .settings import Settings

__all__ = [
    "FILE_NAME_PATTERN",
    "Areas",
    "FileArea",
    "FileInfo",
    "LocalArea",
    "ObjectStoreArea",
    "Readable",
    "StagedFile",
    "StoredFile",
    "open_areas",
    "plain_name",
]

FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$"
_FILE_NAME = re.compile(FILE_NAME_PATTERN)
# Sub-directories are named by identifiers (an instance's id), which may start with '_'.
_DIRECTORY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
COPY_CHUNK_BYTES = 1 << 20


def plain_name(name: object) -> str:
    """``name`` if it is a plain file name; :class:`InvalidPath` otherwise.

    The one rule for every file name: 1 to 128 letters, digits, spaces, ``.``, ``_`` or
    ``-``, starting with a letter or digit, with no ``..``. (``fullmatch``: ``$`` alone
    would let a trailing newline through.)
    """
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
        raise InvalidPath(
            f"{name!r} is not a plain file name: use 1 to 128 letters, digits, spaces, "
            "'.', '_' or '-', starting with a letter or digit, with no '..'.",
            name=name if isinstance(name, str) and name.isprintable() else None,
        )
    return name


def _directory_name(name: str) -> str:
    if not _DIRECTORY_NAME.fullmatch(name) or not name.strip("."):
        raise InvalidPath(f"{name!r} is not a plain directory name.",
                          name=name if name.isprintable() else None)
    return name


@dataclass(frozen=True)
class FileInfo:
    """What a listing says of a file: its name, size in bytes and last change (ms)."""

    name: str
    size: int
    modified_at: int


class Readable(Protocol):
    """A named file that can be read from its start any number of times (a CSV is read
    once for its header, then again to parse it)."""

    @property
    def name(self) -> str:
        """The file's name, for messages."""

    def size(self) -> int:
        """Its size in bytes."""

    def open(self) -> BinaryIO:
        """A binary stream from its first byte; close it after use."""


class StagedFile:
    """A private scratch copy of a file being replaced: written, read back (to check
    it), then published whole in the file's place, or dropped."""

    def __init__(self, target: StoredFile, scratch: Path) -> None:
        self.target = target
        self._scratch = scratch

    @property
    def name(self) -> str:
        """The name it will be published under."""
        return self.target.name

    def writer(self) -> BinaryIO:
        """A stream that writes the scratch copy from its start."""
        return self._scratch.open("wb")

    def write(self, data: bytes | IO[bytes]) -> None:
        """Fill the scratch copy with ``data`` (bytes, or a stream read to its end)."""
        with self.writer() as out:
            _copy(data, out)

    def size(self) -> int:
        """Bytes written so far."""
        return self._scratch.stat().st_size

    def open(self) -> BinaryIO:
        """Read the scratch copy back."""
        return self._scratch.open("rb")

    def publish(self) -> None:
        """Put the scratch copy in the target's place, all at once."""
        self.target.area._publish(self._scratch, self.target.name)


class StoredFile:
    """One named file of an area, which need not exist yet: read it, or replace it whole.

    Reading a file that is not there raises :class:`FileNotFound`."""

    def __init__(self, area: FileArea, name: str) -> None:
        self.area = area
        self.name = name

    def __repr__(self) -> str:
        return f"StoredFile({self.area!r}, {self.name!r})"

    def exists(self) -> bool:
        """Whether a regular file of this name is there."""
        return self.area._info(self.name) is not None

    def info(self) -> FileInfo:
        """Its size and last change."""
        found = self.area._info(self.name)
        if found is None:
            raise self._missing()
        return found

    def size(self) -> int:
        """Its size in bytes."""
        return self.info().size

    def open(self) -> BinaryIO:
        """A binary stream of its content, from the start."""
        try:
            return self.area._open(self.name)
        except (FileNotFoundError, IsADirectoryError):
            raise self._missing() from None

    def read_bytes(self) -> bytes:
        """Its whole content."""
        with self.open() as stream:
            return stream.read()

    def write(self, data: bytes | IO[bytes]) -> None:
        """Replace its content with ``data`` (bytes, or a stream read to its end),
        atomically."""
        with self.writing() as out:
            _copy(data, out)

    @contextmanager
    def writing(self) -> Iterator[BinaryIO]:
        """A stream whose content replaces the file, atomically, when the block ends
        without an error; nothing changes if it raises."""
        with self.staged() as staged:
            with staged.writer() as out:
                yield out
            # Only reached without an error, the stream closed and so flushed.
            staged.publish()

    @contextmanager
    def staged(self) -> Iterator[StagedFile]:
        """A scratch copy to fill and check before :meth:`StagedFile.publish` puts it
        in place; dropped when the block ends, published or not."""
        scratch = self.area._scratch(self.name)
        try:
            yield StagedFile(self, scratch)
        finally:
            scratch.unlink(missing_ok=True)

    def delete(self) -> None:
        """Remove the file."""
        if not self.exists():
            raise self._missing()
        self.area._delete(self.name)

    def _missing(self) -> FileNotFound:
        return FileNotFound(f"No file named {self.name!r} in {self.area.label}.",
                            name=self.name)


def _copy(data: bytes | IO[bytes], out: BinaryIO) -> None:
    if isinstance(data, bytes):
        out.write(data)
        return
    while chunk := data.read(COPY_CHUNK_BYTES):
        out.write(chunk)


class FileArea(ABC):
    """A directory of files addressed by plain names only, on some filesystem.

    The public methods check names and follow the fallback; the backends implement the
    underscored ones for names already checked."""

    def __init__(self, fs: AbstractFileSystem, root: str, label: str = "files",
                 fallback: FileArea | None = None) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.label = label
        # Searched after this area, with its own name rules; never written to.
        self.fallback = fallback

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r}, {self.label!r})"

    def file(self, name: str) -> StoredFile:
        """The file ``name`` of this area (not the fallback), there or not yet;
        :class:`InvalidPath` if the name could lead anywhere else."""
        name = plain_name(name)
        # A backend refuses a plain name that still leads elsewhere (a link, locally).
        self._location(name)
        return StoredFile(self, name)

    def existing(self, name: str) -> StoredFile:
        """An existing file, here or else in the fallback; :class:`FileNotFound`
        otherwise."""
        found = self.find(name)
        if found is None:
            raise FileNotFound(f"No file named {name!r} in {self.label}.", name=name)
        return found

    def find(self, name: str) -> StoredFile | None:
        """An existing file, here or else in the fallback, if any."""
        stored = self.file(name)
        if stored.exists():
            return stored
        return self.fallback.find(name) if self.fallback is not None else None

    def listing(self) -> list[FileInfo]:
        """The files here and in the fallback, by name, each name once (this area's
        file wins: it is the one read)."""
        found = {info.name: info for info in self._listing()}
        below = self.fallback.listing() if self.fallback is not None else []
        for info in below:
            found.setdefault(info.name, info)
        return [found[name] for name in sorted(found)]

    def names(self) -> list[str]:
        """Plain file names here and in the fallback, sorted, each once."""
        return [info.name for info in self.listing()]

    def directory(self, name: str) -> FileArea:
        """The sub-directory ``name`` as an area of its own (snapshots keep one per
        instance); its files obey the same rules."""
        return self._child(_directory_name(name))

    def _location(self, name: str) -> str:
        """Where the file ``name`` (a plain name) is on the filesystem."""
        return f"{self.root}/{name}"

    def _open(self, name: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._location(name), "rb"))

    def _delete(self, name: str) -> None:
        self.fs.rm_file(self._location(name))

    @abstractmethod
    def _info(self, name: str) -> FileInfo | None:
        """The file's info, or None where no regular file has this name."""

    @abstractmethod
    def _listing(self) -> list[FileInfo]:
        """This area's own files with plain names."""

    @abstractmethod
    def _scratch(self, name: str) -> Path:
        """A new empty local file to stage a replacement of ``name`` in."""

    @abstractmethod
    def _publish(self, scratch: Path, name: str) -> None:
        """Put ``scratch`` in the place of ``name`` at once (it is removed after)."""

    @abstractmethod
    def _child(self, name: str) -> FileArea:
        """The area of the sub-directory ``name``."""


class LocalArea(FileArea):
    """A directory on the local disk. Its files may be links, but only to files inside
    the directory (or, for a sub-directory, inside the area it belongs to)."""

    def __init__(self, root: Path, label: str = "files", fallback: FileArea | None = None,
                 *, boundary: Path | None = None) -> None:
        super().__init__(LocalFileSystem(), str(root), label, fallback)
        self.path = Path(root)
        self.boundary = boundary or self.path

    def _candidate(self, name: str) -> Path:
        candidate = self.path / name
        # A name is plain, but the file (or the directory) may be a link: follow it and
        # check where it lands.
        if not candidate.resolve().is_relative_to(self.boundary.resolve()):
            raise InvalidPath(f"{name!r} leads outside the {self.label} directory.",
                              name=name)
        return candidate

    def _location(self, name: str) -> str:
        return str(self._candidate(name))

    def _info(self, name: str) -> FileInfo | None:
        path = self._candidate(name)
        # is_file follows links, as reading does.
        if not path.is_file():
            return None
        stat = path.stat()
        return FileInfo(name, stat.st_size, int(stat.st_mtime * 1000))

    def _listing(self) -> list[FileInfo]:
        if not self.path.is_dir():
            return []
        found = []
        for entry in os.scandir(self.path):
            try:
                info = self._info(plain_name(entry.name))
            except InvalidPath:
                # Not a plain name (a temporary file), or a link leading out: not listed.
                continue
            if info is not None:
                found.append(info)
        return found

    def _scratch(self, name: str) -> Path:
        # Beside the target, so the rename that publishes it stays on one filesystem.
        self.path.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        os.close(handle)
        return Path(scratch)

    def _publish(self, scratch: Path, name: str) -> None:
        os.replace(scratch, self._candidate(name))

    def _child(self, name: str) -> FileArea:
        return LocalArea(self.path / name, f"{self.label}/{name}", boundary=self.boundary)


class ObjectStoreArea(FileArea):
    """A prefix of an S3-compatible bucket (s3fs). An object's name is the file's name
    under the prefix; objects further down (sub-directories) are not files here."""

    def _info(self, name: str) -> FileInfo | None:
        try:
            found = self.fs.info(self._location(name))
        except FileNotFoundError:
            return None
        return _object_info(name, found) if found.get("type") == "file" else None

    def _listing(self) -> list[FileInfo]:
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            name = str(entry["name"]).rsplit("/", 1)[-1]
            try:
                plain_name(name)
            except InvalidPath:
                continue
            if entry.get("type") == "file":
                found.append(_object_info(name, entry))
        return found

    def _scratch(self, name: str) -> Path:
        handle, scratch = tempfile.mkstemp(prefix=".workflow-engine-staged-", suffix=".tmp")
        os.close(handle)
        return Path(scratch)

    def _publish(self, scratch: Path, name: str) -> None:
        # One PUT (multipart for large files): the object appears when it completes.
        self.fs.put_file(str(scratch), self._location(name))

    def _child(self, name: str) -> FileArea:
        return ObjectStoreArea(self.fs, self._location(name), f"{self.label}/{name}")


def _object_info(name: str, entry: dict[str, Any]) -> FileInfo:
    modified = entry.get("LastModified")
    millis = int(modified.timestamp() * 1000) if isinstance(modified, datetime) else 0
    return FileInfo(name, int(entry.get("size") or 0), millis)


@dataclass(frozen=True)
class Areas:
    """The areas an engine reads and writes."""

    files: FileArea
    """Uploads, with the shipped samples as their fallback: what read_csv reads."""
    outputs: FileArea
    """What save_csv writes."""
    snapshots: FileArea
    """Instances' tables, one sub-directory per instance."""


def open_areas(settings: Settings) -> Areas:
    """The areas the settings name: under ``STORAGE_URL`` in an object store if it is
    set, else the local directories ``FILES_DIR``, ``OUTPUTS_DIR`` and ``SNAPSHOTS_DIR``.
    The samples are shipped with the code, so they are read from the local
    ``SAMPLES_DIR`` in either case."""
    samples = LocalArea(settings.samples_dir, "samples") if settings.samples_dir else None
    if settings.storage_url is None:
        for directory in (settings.files_dir, settings.outputs_dir, settings.snapshots_dir):
            directory.mkdir(parents=True, exist_ok=True)
        return Areas(
            files=LocalArea(settings.files_dir, "files", fallback=samples),
            outputs=LocalArea(settings.outputs_dir, "outputs"),
            snapshots=LocalArea(settings.snapshots_dir, "snapshots"),
        )
    # Listings are never cached: another process may have written a file since.
    fs, root = url_to_fs(settings.storage_url, use_listings_cache=False,
                         skip_instance_cache=True, **settings.storage_options)
    root = root.rstrip("/")
    return Areas(
        files=ObjectStoreArea(fs, f"{root}/files", "files", fallback=samples),
        outputs=ObjectStoreArea(fs, f"{root}/outputs", "outputs"),
        snapshots=ObjectStoreArea(fs, f"{root}/snapshots", "snapshots"),
    )
