"""Reads scoped to some configurations of an experiment: the ``IN`` lists they add to a statement.

A worker's chunk reads what concerns its own configurations only (engine/sweep.py, ``_own_configs``)
instead of the whole experiment's rows. The ids go as placeholders, ``SCOPE_MAX`` a statement
(SQLite bounds their number); a read whose rows are per configuration merges its parts' answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from .in_lists import IN_MAX, marks, parts

SCOPE_MAX = IN_MAX  # configuration ids per statement


def config_scopes(column: str, config_ids: Sequence[str] | None) -> list[tuple[str, tuple[str, ...]]]:
    """``(" AND <column> IN (?,…)", ids)`` for each part of ``config_ids``; one empty scope for None
    (every configuration), none for no configuration at all."""
    if config_ids is None:
        return [("", ())]
    ids = sorted(set(config_ids))
    return [(f" AND {column} IN ({marks(len(part))})", tuple(part)) for part in parts(ids, SCOPE_MAX)]
