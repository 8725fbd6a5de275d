"""Strict JSON: every document has one meaning, or is refused with the rule it breaks."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.errors import MalformedJSON
from workflow_engine.strict_json import MAX_DEPTH, loads

scalars = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def refusal(data: bytes | str) -> MalformedJSON:
    with pytest.raises(MalformedJSON) as caught:
        loads(data)
    return caught.value


class TestAccepted:
    @given(documents)
    def test_every_json_document_reads_back_as_written(self, document: Any) -> None:
        """What json.dumps writes (finite numbers, each name once) loads unchanged."""
        assert loads(json.dumps(document).encode()) == document

    @given(documents)
    def test_non_ascii_text_reads_as_utf8(self, document: Any) -> None:
        """UTF-8 with characters outside ASCII, unescaped."""
        assert loads(json.dumps(document, ensure_ascii=False).encode()) == document


class TestRefused:
    @pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32",
                                          "utf-32-le"])
    def test_other_unicode_encodings(self, encoding: str) -> None:
        """UTF-16 and UTF-32, with or without a byte order mark."""
        assert refusal('{"a": 1}'.encode(encoding)).context["rule"] == "encoding"

    def test_a_byte_order_mark(self) -> None:
        assert refusal(b'\xef\xbb\xbf{"a": 1}').context["rule"] == "encoding"

    def test_invalid_utf8_names_its_offset(self) -> None:
        problem = refusal(b'{"a": "caf\xe9"}')
        assert (problem.context["rule"], problem.context["offset"]) == ("encoding", 10)

    @given(st.integers(min_value=309, max_value=100_000), st.booleans())
    def test_numbers_that_overflow_a_double(self, exponent: int, negative: bool) -> None:
        literal = f"{'-' if negative else ''}1.5e{exponent}"
        assert math.isinf(float(literal))
        problem = refusal(f'{{"x": [{literal}]}}')
        assert problem.context["rule"] == "non_finite"
        assert "Infinity" in problem.detail

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_constants(self, constant: str) -> None:
        assert refusal(f'{{"x": {constant}}}').context["rule"] == "non_finite"

    @given(st.dictionaries(st.text(max_size=8), scalars, min_size=1, max_size=5),
           st.data())
    def test_a_repeated_name_is_found_where_it_is(self, obj: dict[str, Any],
                                                  data: st.DataObject) -> None:
        """The repeated name, inside an object nested in a list inside an object: the
        problem's path leads to it."""
        name = data.draw(st.sampled_from(sorted(obj)))
        inner = json.dumps(obj)[:-1] + f", {json.dumps(name)}: 0}}"
        problem = refusal(f'{{"before": 1, "outer": [true, {inner}]}}')
        assert problem.context["rule"] == "duplicate_key"
        assert problem.context["path"] == f"outer[1].{name}"
        assert [error.path for error in problem.errors] == [f"outer[1].{name}"]

    def test_the_first_repeated_name_in_document_order_is_reported(self) -> None:
        problem = refusal('{"a": {"x": 1, "x": 2}, "b": {"y": 1, "y": 2}}')
        assert problem.context["path"] == "a.x"

    def test_syntax_errors_give_line_and_column(self) -> None:
        problem = refusal('{\n  "a": }')
        assert (problem.context["rule"], problem.context["line"]) == ("syntax", 2)

    @pytest.mark.parametrize("data", [b"", b"  \n"])
    def test_an_empty_document(self, data: bytes) -> None:
        assert refusal(data).context["rule"] == "syntax"

    def test_nesting_past_the_limit(self) -> None:
        depth = MAX_DEPTH + 1
        assert refusal("[" * depth + "]" * depth).context["rule"] == "depth"
        assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None

    def test_an_unpaired_surrogate(self) -> None:
        assert refusal('{"a": "\\ud800"}').context["rule"] == "surrogate"
        assert loads('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}

    @given(st.integers(min_value=309, max_value=4000), st.booleans())
    def test_integers_past_a_double(self, digits: int, negative: bool) -> None:
        literal = ("-" if negative else "") + "9" * digits
        assert refusal(f'{{"x": {literal}}}').context["rule"] == "non_finite"

    def test_the_largest_integer_a_double_holds_is_accepted(self) -> None:
        largest = int(sys.float_info.max)
        assert loads(f"[{largest}, {-largest}]") == [largest, -largest]
        assert refusal(f"[{largest + 2 ** 971}]").context["rule"] == "non_finite"

    def test_an_integer_too_long_to_convert(self) -> None:
        assert refusal('{"a": ' + "9" * 5000 + "}").context["rule"] == "number"
