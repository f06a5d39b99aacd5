"""Notes, prices and endpoints changed in another process wake the views that follow the store.

A view follows a PostgreSQL store through ``listen_changes`` (what ``ui._base.Changes`` calls):
woken by the commits that change its experiment. A project's note changes the experiments of
that project (the summary shows the project's notes); prices and endpoints change every view
(costs, endpoint names). Each change is made by a separate Python process, as a colleague's
notebook or the CLI would; nothing here polls.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest
from helpers import fake_experiment

import promptlooper as pl
from promptlooper.testing import FakeModel

WOKEN_WITHIN = 5.0  # seconds: a bound for a loaded machine, not a rate


def _elsewhere(url: str, code: str) -> None:
    """Run ``code`` with ``wb`` (a Workbench on ``url``) in another Python process."""
    script = f"import promptlooper as pl\nwb = pl.Workbench({url!r})\ntry:\n    {code}\nfinally:\n    wb.close()\n"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@pytest.fixture
def followed(pg_url: str, fake: FakeModel):
    """Two experiments in two projects, and a subscription of each's view to its changes."""
    wb = pl.Workbench(pg_url)
    ours = fake_experiment(fake.base_url, name="ours")
    theirs = fake_experiment(fake.base_url, name="theirs", project="elsewhere")
    woken = {ours.key: threading.Event(), theirs.key: threading.Event()}
    stops = [wb.store.listen_changes(wb.store.experiment(wb.register(e))["id"], woken[e.key].set) for e in (ours, theirs)]
    # The registrations' own announcements may reach the feed after the subscriptions: a marker
    # announced after them arrives after them (one connection hears the commits in order).
    synced = threading.Event()
    stops.append(wb.store.listen_changes("marker", synced.set))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('promptlooper_changes', 'marker')")
    assert synced.wait(WOKEN_WITHIN)
    for event in woken.values():
        event.clear()
    yield wb, woken, ours, theirs
    for stop in stops:
        stop()
    wb.close()


def test_a_note_added_by_another_process_wakes_the_views_of_its_project(pg_url: str, followed) -> None:
    wb, woken, ours, theirs = followed
    _elsewhere(pg_url, f"wb.add_note({ours.project!r}, 'looked at the long answers', by='ana')")
    assert woken[ours.key].wait(WOKEN_WITHIN)
    assert [n["text"] for n in wb.notes(ours.project)] == ["looked at the long answers"]
    assert not woken[theirs.key].is_set()  # another project's views are left alone


@pytest.mark.parametrize("change", [
    "wb.set_price('fake-small', 1.0, 2.0)",
    "wb.add_endpoint('other', 'http://127.0.0.1:9/v1')",
    "wb.add_endpoint('other', 'http://127.0.0.1:9/v1'); wb.remove_endpoint('other')",
])
def test_prices_and_endpoints_changed_by_another_process_wake_every_view(pg_url: str, followed, change: str) -> None:
    wb, woken, ours, theirs = followed
    _elsewhere(pg_url, change)
    assert woken[ours.key].wait(WOKEN_WITHIN) and woken[theirs.key].wait(WOKEN_WITHIN)
