"""A prompt stage's messages: system, templated turns, conversations from sample fields, user.

The short form (``system`` + ``user``) renders to ``[system?, user]`` as it always did; a stage
with ``messages`` renders each ``{role, content}`` template and splices in each conversation a
``{from_field: NAME}`` names, between the system and the user message.
"""

from __future__ import annotations

from typing import Any

from .. import templates
from ..errors import PromptLooperError

ROLES = ("system", "user", "assistant", "tool")


def conversation_problem(value: Any) -> str | None:
    """Why ``value`` is not a conversation (a list of {role, content} messages), or None."""
    if not isinstance(value, list):
        return f"expected a list of {{role, content}} messages, got {type(value).__name__}"
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            return f"message {i} is a {type(message).__name__}, not {{role, content}}"
        if message.get("role") not in ROLES:
            return f"message {i} has role {message.get('role')!r}; use one of {', '.join(ROLES)}"
        content = message.get("content")
        if not isinstance(content, str) and not (content is None and message.get("tool_calls")):
            return f"message {i} has no text content"
    return None


def messages_for(stage: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """What a call of ``stage`` sends: the runner's and ``plan``'s one way of building it."""
    if "messages" in stage:
        return render(stage, ctx)
    # The short form, on the hot path: [system?, user].
    messages = []
    if stage.get("system"):
        messages.append({"role": "system", "content": templates.render(stage["system"], ctx)})
    messages.append({"role": "user", "content": templates.render(stage["user"], ctx)})
    return messages


def render(stage: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages one call of ``stage`` sends, rendered with ``ctx`` (the run's template context)."""
    messages: list[dict[str, Any]] = []
    if stage.get("system"):
        messages.append({"role": "system", "content": templates.render(stage["system"], ctx)})
    for turn in stage.get("messages") or ():
        field = turn.get("from_field")
        if field is None:
            messages.append({"role": turn["role"], "content": templates.render(turn["content"], ctx)})
            continue
        sample = ctx.get("sample") or {}
        if field not in sample:
            raise PromptLooperError(f"stage {stage['name']!r}: the sample has no field {field!r} (messages: from_field)")
        problem = conversation_problem(sample[field])
        if problem:
            raise PromptLooperError(f"stage {stage['name']!r}: sample field {field!r}: {problem}")
        messages.extend(dict(m) for m in sample[field])
    if stage.get("user") is not None:
        messages.append({"role": "user", "content": templates.render(stage["user"], ctx)})
    if not messages:
        raise PromptLooperError(f"stage {stage['name']!r} rendered no message to send")
    return messages


def call_params(stage: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The body parameters of a prompt stage's call (what its cache key holds besides the messages)."""
    params = dict(stage["params"])
    if repeat:
        # Each repeat is a distinct sample of the model: a distinct seed and cache key.
        params["seed"] = int(params.get("seed", 0)) + repeat
    if "tools" in stage:  # sent in the body, so in the call's cache key and stored parameters
        params["tools"] = stage["tools"]
        if "tool_choice" in stage:
            params["tool_choice"] = stage["tool_choice"]
    return params


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """What scorers see as the stage's input: the last user message's text."""
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""
