"""A reply's tool calls, kept as the stage's output.

A reply that calls tools is stored (in the response cache, the stage result and the run's output)
as the canonical JSON of ``{"content": TEXT, "tool_calls": [{"name": ..., "arguments": {...}}]}``,
so a cache hit, ``show RUN`` and re-scoring see exactly what the model asked for. Arguments are
parsed from the JSON string the API sends (kept as the string when it is not JSON); call ids are
dropped: they are random per reply and say nothing about the model's choice.
"""

from __future__ import annotations

import json
from typing import Any

from ..hashing import canonical_json

_HEAD = '{"content":'


def envelope(content: str, calls: list[Any]) -> str:
    """The output text of a reply with ``content`` and the API's ``tool_calls`` list."""
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args: Any = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass  # not JSON: kept as the model wrote it, for a scorer to judge
        out.append({"name": str(fn.get("name") or ""), "arguments": args})
    return canonical_json({"content": content, "tool_calls": out})


def parse(output: Any) -> dict[str, Any] | None:
    """``{"content", "tool_calls"}`` of a stage output that holds tool calls, else None."""
    if isinstance(output, dict):
        return output if "tool_calls" in output else None
    if not isinstance(output, str) or not output.startswith(_HEAD):
        return None
    try:
        value = json.loads(output)
    except ValueError:
        return None
    if isinstance(value, dict) and set(value) == {"content", "tool_calls"} and isinstance(value["tool_calls"], list):
        return value
    return None
