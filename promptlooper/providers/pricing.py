"""Cost estimates from a per-model price table (USD per million tokens) the user can extend.

Prices change; these defaults are a starting point, overridden by an endpoint's own ``prices``
and by ``promptlooper prices set`` (stored in the settings table).
"""

from __future__ import annotations

from fnmatch import fnmatch

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "smollm2-135m": (0.0, 0.0),
    "gpt-4o-mini*": (0.15, 0.60),
    "gpt-4o*": (2.50, 10.00),
    "gpt-4.1-mini*": (0.40, 1.60),
    "gpt-4.1*": (2.00, 8.00),
    "o4-mini*": (1.10, 4.40),
    "claude-3-5-haiku*": (0.80, 4.00),
    "claude-3-5-sonnet*": (3.00, 15.00),
}


def find_price(model: str, *tables: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """First match wins: later (more specific) tables are consulted first, exact before glob.
    None when no table prices ``model`` (an unpriced model, which is not the same as a free one)."""
    for table in (*reversed(tables), DEFAULT_PRICES):
        if model in table:
            return tuple(table[model])  # type: ignore[return-value]
        for pattern, price in table.items():
            if fnmatch(model, pattern):
                return tuple(price)  # type: ignore[return-value]
    return None


def price_for(model: str, *tables: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """:func:`find_price`, with an unpriced model counted as free."""
    return find_price(model, *tables) or (0.0, 0.0)


def cost(tokens_in: int, tokens_out: int, price: tuple[float, float]) -> float:
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
