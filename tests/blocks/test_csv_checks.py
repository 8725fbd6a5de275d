"""How a broken CSV is described: short escaped excerpts, and the first undecodable byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.blocks.csv_checks import EXCERPT_CHARS, excerpt, first_undecodable_byte


class TestExcerpt:
    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("plain", "'plain'"),
            ("tab\there", "'tab\\there'"),
            ("nul\x00", "'nul\\x00'"),
            ("it's", "'it\\'s'"),
            ("back\\slash", "'back\\\\slash'"),
            ("caf\ufffd", "'caf\\ufffd'"),
            ("José", "'José'"),
            ("x" * 50, "'" + "x" * (EXCERPT_CHARS - 1) + "…'"),
            ("x" * EXCERPT_CHARS, "'" + "x" * EXCERPT_CHARS + "'"),
        ],
    )
    def test_quotes_and_escapes(self, text: str, shown: str) -> None:
        assert excerpt(text) == shown

    @given(st.text())
    def test_is_short_and_printable_whatever_the_input(self, text: str) -> None:
        shown = excerpt(text)
        assert shown.isprintable()
        assert len(shown) <= EXCERPT_CHARS + 2


class TestFirstUndecodableByte:
    @pytest.mark.parametrize(
        ("content", "encoding", "offset"),
        [
            (b"caf\xe9,b\n", "utf-8", 3),
            (b"ok\n" + "é".encode() * 10 + b"\xff", "utf-8", 23),
            (b"caf\xe9,b\n", "latin-1", None),
            (b"abc\x81", "cp1252", 3),
            (b"ab\xc3", "utf-8", 2),
        ],
    )
    def test_finds_the_offset(
        self, tmp_path: Path, content: bytes, encoding: str, offset: int | None
    ) -> None:
        path = tmp_path / "f.csv"
        path.write_bytes(content)
        assert first_undecodable_byte(path, encoding) == offset

    def test_across_chunk_boundaries(self, tmp_path: Path) -> None:
        """A character split between two reads is not a bad byte; the offset counts
        from the start of the file."""
        path = tmp_path / "f.csv"
        prefix = b"a" * ((1 << 20) - 1) + "é".encode()
        path.write_bytes(prefix + b"\xff")
        assert first_undecodable_byte(path, "utf-8") == len(prefix)
