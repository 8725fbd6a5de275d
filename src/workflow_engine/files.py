"""Directories of user files, and the one way to name a file inside them.

Every name a client or a definition gives goes through :meth:`FileArea.path`, which
refuses anything that could reach outside the directory: separators, ``..``, absolute
paths, NUL and control characters, and links that resolve elsewhere.

An area may have a ``fallback``: a second, read-only area whose files are found (and
listed) after its own. Input CSVs use one: uploads are written under ``var/``, and the
samples shipped in ``data/`` stay readable by name without anything being written there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidPath, NotFound

__all__ = ["FILE_NAME_PATTERN", "FileArea", "FileNotFound"]

FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$"
_NAME = re.compile(FILE_NAME_PATTERN)


class FileNotFound(NotFound):
    """No file has this name in the directory."""

    code = "file_not_found"
    title = "File not found"


@dataclass(frozen=True)
class FileArea:
    """A directory whose files are addressed by plain names only."""

    root: Path
    label: str = "files"
    # Searched after this area, with its own path rules; never written to.
    fallback: FileArea | None = None

    def path(self, name: str) -> Path:
        """The path of ``name`` inside the area; :class:`InvalidPath` if it could escape."""
        if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
            raise InvalidPath(
                f"{name!r} is not a plain file name: use 1 to 128 letters, digits, spaces, "
                "'.', '_' or '-', starting with a letter or digit, with no '..'.",
                name=name if isinstance(name, str) and name.isprintable() else None,
            )
        root = self.root.resolve()
        candidate = root / name
        # A name is plain, but the file may be a link; follow it and check where it lands.
        if not candidate.resolve().is_relative_to(root):
            raise InvalidPath(f"{name!r} leads outside the {self.label} directory.", name=name)
        return candidate

    def existing(self, name: str) -> Path:
        """The path of an existing regular file, here or else in the fallback;
        :class:`FileNotFound` otherwise."""
        found = self.find(name)
        if found is None:
            raise FileNotFound(f"No file named {name!r} in {self.label}.", name=name)
        return found

    def find(self, name: str) -> Path | None:
        """The path of an existing regular file, here or else in the fallback, if any."""
        path = self.path(name)
        if path.is_file():
            return path
        return self.fallback.find(name) if self.fallback is not None else None

    def names(self) -> list[str]:
        """Plain file names in the area and its fallback, sorted, each once."""
        own: set[str] = set()
        if self.root.is_dir():
            own = {
                entry.name for entry in self.root.iterdir()
                if entry.is_file() and _NAME.match(entry.name) and ".." not in entry.name
            }
        below = self.fallback.names() if self.fallback is not None else []
        return sorted(own.union(below))
