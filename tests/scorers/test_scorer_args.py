"""A scorer's arguments are checked against its factory's signature (scorers/base.py check_args)."""

from __future__ import annotations

import warnings

from promptlooper.scorers import check_args


def test_an_argument_named_like_a_pydantic_attribute_is_checked_without_a_warning() -> None:
    # json_schema takes ``schema``, a name BaseModel has: checking it must not warn the user.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_args("json_schema", {"schema": {"type": "object", "required": ["city"]}}) == []
        problems = check_args("json_schema", {"schema": "not a mapping", "scheme": {}})
    assert ("schema", "Input should be a valid dictionary") in problems
    assert any(path == "scheme" for path, _ in problems)  # an unknown argument, named as written


def test_a_missing_argument_is_named() -> None:
    assert [path for path, _ in check_args("json_schema", {})] == ["schema"]
