from __future__ import annotations

import asyncio

from promptlooper.ui.timeline import Timeline, event_row, summarize


def ev(i: int, etype: str, **payload):
    return {"id": i, "ts": f"2026-01-01T10:00:{i:02d}.000+00:00", "type": etype, "payload": payload}


def test_summaries_say_what_happened():
    assert summarize(ev(1, "new_best_found", config_id="a" * 64, score=0.8, n=3, varied={"t": 0.5})) == \
        f"config {'a' * 12} · score 0.800 (n=3) · t=0.5"
    assert summarize(ev(2, "run.failed", config_id="b" * 64, error="HTTP 500")) == f"config {'b' * 12} · HTTP 500"
    assert summarize(ev(3, "experiment.paused", reason="budget exhausted")) == "budget exhausted"
    assert summarize(ev(4, "configuration.rejected", config_id="c" * 64, by="ana", reason="rude")) == f"config {'c' * 12} by ana: rude"
    assert summarize(ev(5, "something.new", a=1, nested={"x": 1})) == "a=1"
    row = event_row(ev(7, "run.completed", config_id="d", score=1))
    assert row["time"] == "10:00:07" and row["family"] == "run"


class FakeWB:
    db_path = ":fake:"

    def __init__(self, events):
        self.all = events

    def events(self, ref, types=None, after_id=0, limit=None):
        out = [e for e in self.all if e["id"] > after_id]
        return out[:limit] if limit else out


def test_filter_toggle_only_all_and_incremental_polls():
    wb = FakeWB([ev(1, "experiment.started", total=4), ev(2, "run.started", config_id="a"), ev(3, "run.completed", config_id="a", score=1),
                 ev(4, "new_best_found", config_id="a", score=1.0, n=1)])
    view = Timeline(wb, "p/e", live=False)
    assert [e["id"] for e in view.events] == [4, 3, 1]  # newest first, run.started hidden by default
    assert {t["type"]: (t["count"], t["hidden"]) for t in view.types}["run.started"] == (1, True)
    view.handle_message({"action": "toggle", "type": "run.started"})
    assert [e["id"] for e in view.events] == [4, 3, 2, 1]
    view.handle_message({"action": "only", "type": "new_best_found"})
    assert [e["type"] for e in view.events] == ["new_best_found"]
    view.handle_message({"action": "all"})
    assert len(view.events) == 4 and view.hidden == []
    view.handle_message({"action": "toggle", "type": "run.completed"})
    wb.all.append(ev(5, "run.completed", config_id="b", score=0))
    wb.all.append(ev(6, "run.failed", config_id="b", error="x"))
    view.add_events(wb.events("p/e", after_id=view._last_id))
    assert [e["id"] for e in view.events] == [6, 4, 2, 1]
    assert {t["type"]: t["count"] for t in view.types}["run.completed"] == 2
    view.add_events(wb.events("p/e"))  # old ids again: ignored
    assert {t["type"]: t["count"] for t in view.types}["run.completed"] == 2


def test_polls_the_store_while_a_sweep_runs(wb, server, make_exp):
    server.latency = 0.01
    exp = make_exp()

    async def scenario() -> None:
        handle = wb.start(exp)
        view = Timeline(wb, exp, poll=0.1)
        await handle
        await asyncio.sleep(0.4)
        counts = {t["type"]: t["count"] for t in view.types}
        assert counts["run.completed"] == 12 and counts["experiment.completed"] == 1
        assert view.events[0]["type"] == "experiment.completed"
        view.close()

    asyncio.run(scenario())
