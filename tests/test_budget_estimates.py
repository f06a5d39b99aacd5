"""What a call is reserved for against a shared budget (engine/budgets.py): a bound of its cost
when the request bounds its reply, the mean reply of its model when it does not."""

from __future__ import annotations

from typing import Any

from promptlooper.engine.budgets import DEFAULT_OUTPUT, SharedBudget
from promptlooper.hashing import canonical_json
from promptlooper.store.budgets import NANOS

PRICE = (2.5, 10.0)  # USD per million tokens in / out


def _budget() -> SharedBudget:
    return SharedBudget(None, "s", "o", limits=dict, price=lambda endpoint, model: PRICE,  # type: ignore[arg-type]
                        on_exhausted=lambda: None, ttl=10.0)


def test_a_bounded_request_is_reserved_at_its_bytes_plus_max_tokens_at_the_models_price() -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q: café?"}]
    text = canonical_json(messages)
    ticket = _budget().ticket("ep", "m", text, {"max_tokens": 50, "temperature": 0.2})
    nbytes = len(text.encode())  # "é" is two bytes: a token covers at least one
    assert nbytes > len(text)
    assert ticket.tokens == nbytes + 50
    assert ticket.nanos == -(-(nbytes * PRICE[0] + 50 * PRICE[1]) * NANOS // 1_000_000)  # rounded up


def test_tools_count_as_prompt_and_an_unbounded_reply_is_reserved_at_its_models_mean() -> None:
    budget = _budget()
    text = canonical_json([{"role": "user", "content": "weather in paris"}])
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    first = budget.ticket("ep", "m", text, {"tools": tools})
    assert first.tokens == len(text) + len(canonical_json(tools)) + DEFAULT_OUTPUT  # nothing seen yet
    for out in (100, 300):
        budget.settle(budget.ticket("ep", "m", text, {}), "ep", "m", 5, out)
    assert budget.ticket("ep", "m", text, {}).tokens == len(text) + 200
    assert budget.ticket("ep", "other", text, {}).tokens == len(text) + DEFAULT_OUTPUT  # per model
