"""How a broken CSV is found and described: its width from the header, short escaped
excerpts, and the first undecodable byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.blocks.csv_checks import (
    EXCERPT_CHARS,
    CsvInvalid,
    check_width,
    excerpt,
    first_undecodable_byte,
)
from workflow_engine.limits import MIN_HEADER_BYTES, Limits
from workflow_engine.storage import LocalArea, StoredFile


def stored(path: Path) -> StoredFile:
    """The file at ``path``, as the checks read files: through storage."""
    return LocalArea(path.parent).file(path.name)


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
        assert first_undecodable_byte(stored(path), encoding) == offset

    def test_across_chunk_boundaries(self, tmp_path: Path) -> None:
        """A character split between two reads is not a bad byte; the offset counts
        from the start of the file."""
        path = tmp_path / "f.csv"
        prefix = b"a" * ((1 << 20) - 1) + "é".encode()
        path.write_bytes(prefix + b"\xff")
        assert first_undecodable_byte(stored(path), "utf-8") == len(prefix)


class TestCheckWidth:
    """The header's fields are counted as the parser would count them, from its bytes."""

    @pytest.mark.parametrize(
        ("header", "count"),
        [
            pytest.param(b"a,b,c\n", 3, id="plain"),
            pytest.param(b'"a,b",c\n', 2, id="quoted delimiter"),
            pytest.param(b'"a\nb",c,d\n', 3, id="quoted newline"),
            pytest.param(b"\n\na,b,c,d\n", 4, id="blank lines first"),
            pytest.param(b"a,b,c,d\r\n", 4, id="CRLF"),
            pytest.param(b"a,b,c,d", 4, id="a header alone, no newline"),
        ],
    )
    def test_counts_fields(self, tmp_path: Path, header: bytes, count: int) -> None:
        path = tmp_path / "f.csv"
        path.write_bytes(header + b"1,2,3,4\n" if header.endswith(b"\n") else header)
        check_width(stored(path), "f.csv", delimiter=",", encoding="utf-8",
                    limits=Limits(max_csv_columns=count))
        with pytest.raises(CsvInvalid, match=f"has {count} columns"):
            check_width(stored(path), "f.csv", delimiter=",", encoding="utf-8",
                        limits=Limits(max_csv_columns=count - 1))

    def test_uses_the_delimiter(self, tmp_path: Path) -> None:
        path = tmp_path / "f.csv"
        path.write_bytes(b"a;b,c;d\n")
        with pytest.raises(CsvInvalid, match="has 3 columns"):
            check_width(stored(path), "f.csv", delimiter=";", encoding="utf-8",
                        limits=Limits(max_csv_columns=2))

    def test_reads_no_further_than_the_header_bound(self, tmp_path: Path) -> None:
        """A quote left open runs past the bound: refused without reading the rest."""
        path = tmp_path / "f.csv"
        path.write_bytes(b'a,"' + b"x" * MIN_HEADER_BYTES + b'"\n1,2\n')
        with pytest.raises(CsvInvalid, match="header line is longer than") as caught:
            check_width(stored(path), "f.csv", delimiter=",", encoding="utf-8",
                        limits=Limits(max_csv_columns=2))
        assert caught.value.context["max_header_bytes"] == MIN_HEADER_BYTES

    def test_a_header_that_is_not_in_its_encoding(self, tmp_path: Path) -> None:
        path = tmp_path / "f.csv"
        path.write_bytes(b"caf\xe9,b\n1,2\n")
        with pytest.raises(UnicodeDecodeError):
            check_width(stored(path), "f.csv", delimiter=",", encoding="utf-8", limits=Limits())
