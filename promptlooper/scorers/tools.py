"""Scoring a stage that offers tools: which tool the model called, and with what arguments."""

from __future__ import annotations

from typing import Any

from ..providers.tool_calls import parse
from .core import ScoreContext, ScoreFn, ScoreResult, scorer


def _matches(expected: Any, got: Any, exact: bool) -> bool:
    if isinstance(expected, dict) and isinstance(got, dict):
        if exact and set(expected) != set(got):
            return False
        return all(k in got and _matches(v, got[k], exact) for k, v in expected.items())
    if isinstance(expected, str) and isinstance(got, str):
        return expected.strip().casefold() == got.strip().casefold()
    return bool(expected == got)


@scorer("tool_call", description="1 if the output calls `tool` with `arguments` (a subset, or exact=true); "
                                 "`partial` for the right tool with other arguments, 0 for no such call.")
def tool_call(tool: str | None = None, arguments: dict[str, Any] | None = None, exact: bool = False,
              partial: float = 0.5) -> ScoreFn:
    if not 0.0 <= partial <= 1.0:
        raise ValueError("partial must lie in [0, 1]")

    def score(ctx: ScoreContext) -> ScoreResult:
        reply = parse(ctx.output)
        calls = reply["tool_calls"] if reply else []
        if not calls:
            return ScoreResult(0.0, {"reason": "no tool call", "tool_calls": []})
        named = [c for c in calls if tool is None or c.get("name") == tool]
        if not named:
            return ScoreResult(0.0, {"reason": f"called {[c.get('name') for c in calls]}, not {tool!r}", "tool_calls": calls})
        if arguments is None or any(_matches(arguments, c.get("arguments"), exact) for c in named):
            return ScoreResult(1.0, {"tool_calls": calls})
        return ScoreResult(partial, {"reason": f"{tool or named[0].get('name')!r} called with other arguments",
                                     "expected": arguments, "tool_calls": calls})

    return score
