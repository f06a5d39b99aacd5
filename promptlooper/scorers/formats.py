"""Format compliance: valid JSON, a JSON Schema, a regular expression."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Literal

from .core import ScoreContext, ScoreFn, ScoreResult, scorer

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.S)


def _parse_json(text: str) -> tuple[Any, str | None]:
    body = text.strip()
    m = _FENCE.match(body)  # models often wrap JSON in a ``` fence; that is still valid JSON
    if m:
        body = m.group(1)
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


@scorer("json", description="1 if the output parses as JSON (a ```json fence is allowed).")
def json_valid() -> ScoreFn:
    def score(ctx: ScoreContext) -> ScoreResult:
        _, error = _parse_json(ctx.output)
        return ScoreResult(0.0 if error else 1.0, {"error": error} if error else None)

    return score


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@scorer("json_schema", description="1 if the output is JSON valid against the schema; partial credit per error otherwise.")
def json_schema(schema: dict[str, Any]) -> ScoreFn:
    import jsonschema

    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except jsonschema.SchemaError as exc:
        raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from exc

    def score(ctx: ScoreContext) -> ScoreResult:
        data, error = _parse_json(ctx.output)
        if error:
            return ScoreResult(0.0, {"error": error})
        errors = [e.message for e in validator.iter_errors(data)]
        # Valid JSON that breaks the schema scores above invalid JSON: 0.5 / (1 + errors).
        value = 1.0 if not errors else 0.5 / (1 + len(errors))
        return ScoreResult(value, {"errors": errors[:5]} if errors else None)

    return score


@scorer("regex", description="1 if the pattern matches (search, fullmatch or match).")
def regex(pattern: str, mode: Literal["search", "fullmatch", "match"] = "search", ignore_case: bool = False) -> ScoreFn:
    try:
        compiled = re.compile(pattern, re.I if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    method = getattr(compiled, mode)

    def score(ctx: ScoreContext) -> float:
        return 1.0 if method(ctx.output.strip()) else 0.0

    return score


@scorer("markdown", description="Share of the required markdown elements present (headings, lists, code, tables).")
def markdown(require: list[Literal["heading", "list", "code", "table", "bold"]] = ["heading", "list"]) -> ScoreFn:  # noqa: B006 - pydantic validates a copy
    checks = {
        "heading": re.compile(r"^#{1,6}\s+\S", re.M),
        "list": re.compile(r"^\s*(?:[-*+]|\d+\.)\s+\S", re.M),
        "code": re.compile(r"```"),
        "table": re.compile(r"^\s*\|.*\|\s*$", re.M),
        "bold": re.compile(r"\*\*[^*]+\*\*"),
    }
    wanted = list(require)

    def score(ctx: ScoreContext) -> ScoreResult:
        found = [k for k in wanted if checks[k].search(ctx.output)]
        return ScoreResult(len(found) / len(wanted) if wanted else 1.0, {"found": found})

    return score
