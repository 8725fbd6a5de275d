"""read_csv and save_csv, and every way a CSV can be broken; snapshots of JSON values."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_engine.blocks import BlockContext, CsvInvalid
from workflow_engine.blocks.csv_files import ReadCsv, SaveCsv
from workflow_engine.blocks.tables import read_csv_table, read_snapshot, write_snapshot
from workflow_engine.errors import FileNotFound, InvalidPath
from workflow_engine.storage import StoredFile


def write(context: BlockContext, name: str, content: bytes | str) -> StoredFile:
    stored = context.files.file(name)
    stored.write(content.encode() if isinstance(content, str) else content)
    return stored


def output_text(context: BlockContext, name: str) -> str:
    return context.outputs.file(name).read_bytes().decode()


def read(context: BlockContext, name: str, **params: str) -> pd.DataFrame:
    return ReadCsv(ReadCsv.Params(file=name, **params))(None, context)


class TestReadCsv:
    def test_reads_every_column_as_text(self, context: BlockContext) -> None:
        """Zip codes keep their zeros; empty cells are missing values."""
        write(context, "a.csv", "name,zip,score\nAnn,01234,7\nBo,,8.5\n")
        table = read(context, "a.csv")
        assert list(table.columns) == ["name", "zip", "score"]
        assert table["zip"].tolist()[0] == "01234"
        assert pd.isna(table["zip"].tolist()[1])
        assert table["score"].tolist() == ["7", "8.5"]

    def test_only_empty_cells_are_missing(self, context: BlockContext) -> None:
        """NA is Namibia and null may be a name: text stays text."""
        write(context, "n.csv", "country,note\nNA,null\nN/A,\n")
        table = read(context, "n.csv")
        assert table["country"].tolist() == ["NA", "N/A"]
        assert table["note"].tolist()[0] == "null"
        assert pd.isna(table["note"].tolist()[1])

    def test_quoted_delimiters_and_newlines(self, context: BlockContext) -> None:
        write(context, "q.csv", 'name,city\n"Lee, Ann","Austin,\nTX"\n')
        assert read(context, "q.csv")["city"].tolist() == ["Austin,\nTX"]

    def test_other_delimiter_and_encoding(self, context: BlockContext) -> None:
        write(context, "l.csv", "name;city\nJosé;Zürich\n".encode("latin-1"))
        table = read(context, "l.csv", delimiter=";", encoding="latin-1")
        assert table.iloc[0].tolist() == ["José", "Zürich"]

    def test_reports_progress(self, context: BlockContext) -> None:
        seen: list[tuple[int, int | None]] = []
        context.progress = lambda done, total: seen.append((done, total))
        write(context, "p.csv", "a\n" + "x\n" * 10)
        read(context, "p.csv")
        assert seen[-1] == (10, 10)

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            pytest.param(b"", "is empty", id="empty file"),
            pytest.param(b"name,email\n", "header but no data rows", id="header only"),
            pytest.param(b"a,b\n1,2\n3,4,5\n", "not a well-formed CSV", id="ragged row"),
            pytest.param(b"a,b\n1\n", "not a well-formed CSV", id="short row"),
            pytest.param(b"name\n\xff\xfe\xfa\n", "not valid utf-8", id="not UTF-8"),
            pytest.param(b"caf\xe9,b\n1,2\n", "the byte at offset 3 (0xe9)",
                         id="header not UTF-8"),
            pytest.param(b'a,b\n1,"' + b"x" * (2 << 20) + b'"\n', "longer than 1 MiB",
                         id="row longer than a block"),
            pytest.param(b"email,email\nx,y\n", "duplicate column names 'email'",
                         id="duplicate columns"),
            pytest.param(b"a,,b\n1,2,3\n", "empty name", id="unnamed column"),
            pytest.param(b'a,b\n"unterminated,1\n', "not a well-formed CSV",
                         id="unterminated quote"),
        ],
    )
    def test_broken_files_fail_with_a_clear_message(
        self, context: BlockContext, content: bytes, words: str
    ) -> None:
        write(context, "bad.csv", content)
        with pytest.raises(CsvInvalid) as caught:
            read(context, "bad.csv")
        assert words in caught.value.detail
        assert "bad.csv" in caught.value.detail

    def test_an_encoding_that_fails_without_an_offset(self, context: BlockContext) -> None:
        write(context, "u.csv", b"a\x00,b\n1,2\n3")
        with pytest.raises(CsvInvalid, match="not valid utf-16"):
            read(context, "u.csv", encoding="utf-16")

    @pytest.mark.parametrize(("encoding", "says"), [
        ("klingon", "unknown encoding 'klingon'"),
        # Codecs that turn bytes into bytes: not a way to read text (nor to make the
        # server decompress a file).
        ("hex", "'hex' is not a text encoding"), ("zlib", "'zlib' is not a text encoding"),
        ("base64", "'base64' is not a text encoding"),
    ])
    def test_only_text_encodings_are_accepted(self, encoding: str, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            ReadCsv.Params(file="u.csv", encoding=encoding)

    @pytest.mark.parametrize("delimiter", ["\u00e9", "\x00", '"', "\n"])
    def test_a_delimiter_is_a_tab_or_printable_ascii(self, delimiter: str) -> None:
        with pytest.raises(ValueError, match="delimiter must be"):
            ReadCsv.Params(file="u.csv", delimiter=delimiter)
        assert ReadCsv.Params(file="u.csv", delimiter="\t").delimiter == "\t"

    def test_a_row_quoting_pyarrows_words_is_a_width_error(
        self, context: BlockContext
    ) -> None:
        """A row that happens to read "invalid UTF8" is not an encoding problem."""
        write(context, "w.csv", "a,b\n1,2\ninvalid UTF8,x,y\n")
        with pytest.raises(CsvInvalid, match="a row has 3 fields where the header has 2"):
            read(context, "w.csv")

    def test_a_missing_file(self, context: BlockContext) -> None:
        with pytest.raises(FileNotFound):
            read(context, "nope.csv")

    @pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../b.csv",
                                      "..", ".hidden.csv", "a\x00b.csv", "dir/a.csv"])
    def test_names_cannot_leave_the_files_directory(self, name: str) -> None:
        with pytest.raises(ValueError, match="pattern"):
            ReadCsv.Params(file=name)

    def test_a_link_out_of_the_directory_is_refused(
        self, context: BlockContext, tmp_path: Path
    ) -> None:
        secret = tmp_path / "secret.csv"
        secret.write_text("a\n1\n")
        (tmp_path / "files" / "link.csv").symlink_to(secret)
        with pytest.raises(InvalidPath, match="leads outside"):
            read(context, "link.csv")

    def test_max_rows_reads_only_the_beginning(self, context: BlockContext) -> None:
        stored = write(context, "big.csv", "a\n" + "1\n" * 1000)
        assert len(read_csv_table(stored, max_rows=5)) == 5


class TestSaveCsv:
    def test_writes_and_passes_the_table_on(self, context: BlockContext) -> None:
        table = pd.DataFrame({"name": ["Ann", None], "n": ["1", "2"]})
        out = SaveCsv(SaveCsv.Params(file_name="out.csv"))(table, context)
        assert out is table
        back = pd.read_csv(io.StringIO(output_text(context, "out.csv")), dtype=str)
        assert back["n"].tolist() == ["1", "2"]
        assert pd.isna(back["name"][1])

    def test_a_lone_column_keeps_its_empty_rows(self, context: BlockContext) -> None:
        """One column's missing cell is no empty line (readers skip those): it stays a row."""
        table = pd.DataFrame({"email": ["a@x.com", None, "b@x.com", None]})
        SaveCsv(SaveCsv.Params(file_name="one.csv"))(table, context)
        context.files.file("one.csv").write(context.outputs.file("one.csv").read_bytes())
        back = read(context, "one.csv")
        assert back["email"].tolist() == ["a@x.com", "", "b@x.com", ""]

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(columns=st.integers(1, 3), data=st.data())
    def test_every_row_comes_back(self, context: BlockContext, columns: int,
                                  data: st.DataObject) -> None:
        """Whatever the cells, what save_csv writes read_csv reads back row for row:
        text as it was, a missing cell missing or empty."""
        cell = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r"),
                                   max_size=8)
        rows = data.draw(st.lists(st.lists(cell, min_size=columns, max_size=columns),
                                  min_size=1, max_size=8))
        table = pd.DataFrame(rows, columns=[f"c{i}" for i in range(columns)], dtype=object)
        SaveCsv(SaveCsv.Params(file_name="rt.csv", neutralise_formulas=False))(table, context)
        context.files.file("rt.csv").write(context.outputs.file("rt.csv").read_bytes())
        back = read(context, "rt.csv")
        assert len(back) == len(table)
        for written, read_back in zip(rows, back.astype(object).values.tolist(), strict=True):
            for before, after in zip(written, read_back, strict=True):
                if before is None:
                    assert pd.isna(after) or after == ""
                else:
                    assert after == before

    def test_neutralises_formulas_by_default(self, context: BlockContext) -> None:
        """Cells a spreadsheet would run are prefixed with a quote (CSV injection)."""
        table = pd.DataFrame({"v": ["=1+1", "+cmd", "-2-3", "@SUM(A1)", "safe", None,
                                    "-5", "+3.25"]})
        SaveCsv(SaveCsv.Params(file_name="x.csv"))(table, context)
        text = output_text(context, "x.csv")
        for cell in ("'=1+1", "'+cmd", "'-2-3", "'@SUM(A1)"):
            assert cell in text
        for cell in ("'safe", "'-5", "'+3.25"):
            assert cell not in text

    def test_formulas_kept_when_asked(self, context: BlockContext) -> None:
        table = pd.DataFrame({"v": ["=1+1"]})
        SaveCsv(SaveCsv.Params(file_name="x.csv", neutralise_formulas=False))(table, context)
        assert "'=" not in output_text(context, "x.csv")

    def test_refuses_to_overwrite_when_told_not_to(self, context: BlockContext) -> None:
        context.outputs.file("x.csv").write(b"old")
        with pytest.raises(Exception, match="already exists"):
            SaveCsv(SaveCsv.Params(file_name="x.csv", overwrite=False))(
                pd.DataFrame({"a": ["1"]}), context)
        assert output_text(context, "x.csv") == "old"

    def test_upper_case_extension(self) -> None:
        assert SaveCsv.Params(file_name="OUT.CSV").file_name == "OUT.CSV"

    @pytest.mark.parametrize("name", ["x.txt", "../x.csv", "/tmp/x.csv", "x.csv/.."])
    def test_output_names_are_plain_csv_names(self, name: str) -> None:
        with pytest.raises(ValueError, match="pattern"):
            SaveCsv.Params(file_name=name)


class TestJsonColumns:
    TABLE = pd.DataFrame({
        "name": ["Ann", "Bo", "Cy"],
        "refs": [{"https://a.example": "a source"}, None, [1, "=x", {"k": None}]],
        "mixed": [None, "just text", {"nested": {"n": 1.5}}],
    })

    def test_a_snapshot_keeps_lists_and_objects(self) -> None:
        stream = io.BytesIO()
        write_snapshot(self.TABLE, stream)
        stream.seek(0)
        back = read_snapshot(stream)
        assert back.to_dict(orient="records") == self.TABLE.to_dict(orient="records")

    def test_a_csv_gets_them_as_json_text(self, context: BlockContext) -> None:
        SaveCsv(SaveCsv.Params(file_name="j.csv"))(self.TABLE, context)
        back = pd.read_csv(io.StringIO(output_text(context, "j.csv")), dtype=str)
        assert json.loads(back["refs"][0]) == {"https://a.example": "a source"}
        assert json.loads(back["refs"][2]) == [1, "=x", {"k": None}]
        assert back["mixed"][1] == "just text"
