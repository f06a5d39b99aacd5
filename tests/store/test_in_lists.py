"""Long value lists cut into statements SQLite accepts (store/in_lists.py), as the store's reads use them."""

from __future__ import annotations

from promptlooper.store.in_lists import IN_MAX, marks, parts


def test_parts_keep_every_value_once_in_order_and_no_part_is_longer_than_asked() -> None:
    values = [f"k{i}" for i in range(IN_MAX * 2 + 7)]
    cut = list(parts(values))
    assert [len(p) for p in cut] == [IN_MAX, IN_MAX, 7]
    assert [v for p in cut for v in p] == values
    assert [len(p) for p in parts(iter(values[:7]), 3)] == [3, 3, 1]  # any iterable, once
    assert list(parts([])) == []


def test_marks_bind_exactly_the_values_of_a_part() -> None:
    assert marks(3) == "?,?,?" and marks(1) == "?"


def test_a_store_reads_more_cache_keys_than_one_statement_binds(tmp_path) -> None:
    from promptlooper.store import Store
    from promptlooper.store.records import CacheEntry

    store = Store(tmp_path / "s.db")
    try:
        n = IN_MAX + 3
        store.write_results([], cache=[CacheEntry(f"key{i}", "ep", "m", {}, f"reply {i}", 1, 2, 3.0) for i in range(n)])
        found = store.cache_get_many([f"key{i}" for i in range(n)] + ["absent"])
        assert len(found) == n and found[f"key{n - 1}"][0] == f"reply {n - 1}"
    finally:
        store.close()
