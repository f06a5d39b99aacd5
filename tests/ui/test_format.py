from __future__ import annotations

import math

import numpy as np
import pytest

from promptlooper.ui._format import (
    clean,
    dump_mapping,
    fmt_cost,
    fmt_duration,
    fmt_ms,
    fmt_score,
    fmt_value,
    parse_mapping,
)


def test_clean_makes_json_safe_values():
    assert clean({"a": math.nan, "b": np.float64(0.5), "c": (1, np.int64(2)), "d": math.inf}) == \
        {"a": None, "b": 0.5, "c": [1, 2], "d": None}


def test_formats():
    assert fmt_score(0.12345) == "0.123" and fmt_score(None) == "–" and fmt_score(math.nan) == "–"
    assert fmt_cost(0.00123) == "$0.0012"
    assert fmt_ms(1234.4) == "1,234 ms" and fmt_ms(12_500) == "12.5 s"
    assert fmt_duration(5) == "5 s" and fmt_duration(125) == "2 min 05 s" and fmt_duration(None) == "–"
    assert fmt_value(0.5) == "0.5" and fmt_value([1, 2]) == "[1, 2]" and fmt_value("x") == "x"


def test_parse_mapping_takes_json_or_yaml_and_says_what_is_wrong():
    assert parse_mapping('{"a": [1, 2]}', "space") == {"a": [1, 2]}
    assert parse_mapping("a: [1, 2]\nb: x", "space") == {"a": [1, 2], "b": "x"}
    assert parse_mapping("  ", "space") == {}
    with pytest.raises(ValueError, match="space: expected a mapping"):
        parse_mapping("[1, 2]", "space")
    with pytest.raises(ValueError, match="not valid JSON or YAML"):
        parse_mapping("a: [1, 2", "space")
    assert parse_mapping(dump_mapping({"t": [0.0, 0.5]}), "x") == {"t": [0.0, 0.5]}
