"""The store is one class per backend made of one part per noun (experiments, runs, claims,
chunks, …). Two parts defining the same name would silently shadow one another by the order of
the bases: a call claim once ran the chunk lease's ``_claim`` that way. A backend's own class may
override a part's method on purpose; two parts may not."""

from __future__ import annotations

import pytest

from promptlooper.store.postgres.store import PostgresStore
from promptlooper.store.store import Store


@pytest.mark.parametrize("store_class", [Store, PostgresStore])
def test_no_two_parts_of_a_store_define_the_same_name(store_class: type) -> None:
    defined: dict[str, list[str]] = {}
    for part in store_class.__mro__[1:]:
        if part is object:
            continue
        for name in vars(part):
            if not name.startswith("__"):
                defined.setdefault(name, []).append(part.__name__)
    assert {name: parts for name, parts in defined.items() if len(parts) > 1} == {}
