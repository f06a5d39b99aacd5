from __future__ import annotations

import math

import pandas as pd

from promptlooper.ui.leaderboard import (
    Leaderboard,
    build_rows,
    classify_columns,
    default_direction,
    run_view,
    sort_rows,
)


def frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"rank": 1, "config_id": "aaa", "temp": 0.5, "persona": "b", "score": 0.9, "ci_low": 0.8, "ci_high": 1.0, "n": 3,
         "distinguishable": "best", "keyword": 1.0, "tokens": 30, "cost": 0.02, "latency_ms": 10.0, "failed": 0,
         "decision": "", "full_config_id": "aaa111"},
        {"rank": 2, "config_id": "bbb", "temp": 0.0, "persona": "a", "score": 0.5, "ci_low": math.nan, "ci_high": math.nan, "n": 1,
         "distinguishable": False, "keyword": math.nan, "tokens": 10, "cost": 0.01, "latency_ms": 30.0, "failed": 1,
         "decision": "approved", "full_config_id": "bbb222"},
        {"rank": 3, "config_id": "ccc", "temp": 1.0, "persona": "c", "score": math.nan, "ci_low": math.nan, "ci_high": math.nan,
         "n": 0, "distinguishable": False, "keyword": 0.2, "tokens": 20, "cost": 0.03, "latency_ms": 20.0, "failed": 0,
         "decision": "", "full_config_id": "ccc333"},
    ]).astype({"distinguishable": object})


def test_columns_are_classified_and_cells_formatted():
    varied, scorers, info = classify_columns(frame())
    assert (varied, scorers, info) == (["temp", "persona"], ["keyword"], ["distinguishable"])
    cols, rows = build_rows(frame())
    assert [c["key"] for c in cols] == ["rank", "config_id", "temp", "persona", "score", "interval", "n", "distinguishable",
                                         "keyword", "tokens", "cost", "latency_ms", "failed", "decision"]
    first, second = rows[0], rows[1]
    assert first["id"] == "aaa111" and first["cells"]["score"] == "0.900" and first["cells"]["interval"] == "0.80–1.00"
    assert first["cells"]["distinguishable"] == "best" and second["cells"]["distinguishable"] == "no"
    assert second["cells"]["interval"] == "–" and second["cells"]["keyword"] == "–" and second["values"]["keyword"] is None
    assert second["decision"] == "approved" and second["failed"] == 1
    assert second["cells"]["failed"] == "1" and first["cells"]["failed"] == ""
    clean_cols, _ = build_rows(frame().assign(failed=0))
    assert "failed" not in [c["key"] for c in clean_cols]  # the column appears when a run failed


def test_sort_puts_missing_values_last_in_both_directions():
    _, rows = build_rows(frame())
    ids = lambda rs: [r["id"][:3] for r in rs]  # noqa: E731
    assert ids(sort_rows(rows, "score", True)) == ["aaa", "bbb", "ccc"]
    assert ids(sort_rows(rows, "score", False)) == ["bbb", "aaa", "ccc"]
    assert ids(sort_rows(rows, "keyword", False)) == ["ccc", "aaa", "bbb"]
    assert ids(sort_rows(rows, "cost", False)) == ["bbb", "aaa", "ccc"]
    assert ids(sort_rows(rows, "persona", False)) == ["bbb", "aaa", "ccc"]  # text sorts as text
    assert default_direction("score") and default_direction("keyword") and not default_direction("cost")


def test_run_view_shows_prompt_response_and_scores():
    view = run_view({"id": "r" * 32, "sample_index": 2, "status": "completed", "score": 0.25, "stages": [
        {"stage_name": "answer", "kind": "prompt", "model_used": "m", "prompt_sent": [{"role": "user", "content": "<b>hi</b>"}],
         "response_raw": "yo", "parameters": {"temperature": 0.5}, "cached": 1},
        {"stage_name": "clean", "kind": "function", "prompt_sent": {"answer": "yo"}, "response_raw": "YO"}],
        "scores": [{"scorer": "length", "value": 1.0, "source": "auto"}, {"scorer": "human_stars", "value": 0.75, "source": "human"}]})
    assert view["short"] == "rrrrrrrr" and view["score"] == "0.250"
    answer, clean = view["stages"]
    assert answer["messages"] == [{"role": "user", "content": "<b>hi</b>"}]  # raw text: the browser uses textContent
    assert answer["params"] == "temperature=0.5" and answer["cached"] is True
    assert clean["messages"] == [{"role": "input", "content": '{"answer": "yo"}'}] and clean["response"] == "YO"
    assert view["scores"][1] == {"scorer": "human_stars", "value": "0.750", "source": "human"}


def test_widget_sorts_expands_and_selects_via_messages(done):
    wb, exp = done
    board = Leaderboard(wb, exp, live=False, readonly=False)
    assert len(board.rows) == 4 and board.sort == {"key": "score", "desc": True}
    scores = [r["values"]["score"] for r in board.rows]
    assert scores == sorted(scores, reverse=True)

    assert board.handle_message({"action": "sort", "key": "latency_ms"})
    assert board.sort == {"key": "latency_ms", "desc": False}
    lat = [r["values"]["latency_ms"] for r in board.rows]
    assert lat == sorted(lat)
    assert board.handle_message({"action": "sort", "key": "latency_ms"}) and board.sort["desc"] is True
    assert not board.handle_message({"action": "sort", "key": "nope"}) and "cannot sort" in board.error
    assert not board.handle_message({"action": "sort"}) and board.error.startswith("bad message for sort")
    assert not board.handle_message({"action": "receive"}) and board.error == "unknown action 'receive'"

    cid = board.rows[0]["id"]
    assert board.handle_message({"action": "expand", "config_id": cid})
    assert board.expanded == cid and len(board.runs) == 3
    assert board.runs[0]["stages"][0]["messages"][-1]["content"].startswith("Q: capital")
    assert {s["scorer"] for s in board.runs[0]["scores"]} == {"length", "keyword"}
    board.handle_message({"action": "expand", "config_id": cid})
    assert board.expanded == "" and board.runs == []
    assert not board.handle_message({"action": "expand", "config_id": "nope"})

    seen = []
    board.on_select(seen.append)
    ids = [r["id"] for r in board.rows]
    for i in ids[:3]:
        board.handle_message({"action": "select", "config_id": i})
    assert board.selected == ids[1:3] and seen[-1] == ids[1:3]  # at most two, the latest kept
    board.handle_message({"action": "select", "config_id": ids[1]})
    assert board.selected == [ids[2]]


def test_pick_runs_keeps_two(done):
    wb, exp = done
    board = Leaderboard(wb, exp, live=False, readonly=False)
    picked = []
    board.on_pick_runs(picked.append)
    board.handle_message({"action": "expand", "config_id": board.rows[0]["id"]})
    run_ids = [r["id"] for r in board.runs]
    for r in run_ids:
        assert board.handle_message({"action": "pick_run", "run_id": r})
    assert board.picked_runs == run_ids[1:] and picked[-1] == run_ids[1:]
    assert not board.handle_message({"action": "pick_run", "run_id": "x"})


def test_approve_reject_undo_call_the_facade(done):
    wb, exp = done
    board = Leaderboard(wb, exp, live=False, readonly=False, by="ana")
    first, second = board.rows[0]["id"], board.rows[1]["id"]
    assert board.handle_message({"action": "approve", "config_id": first, "reason": "good"})
    assert board.handle_message({"action": "reject", "config_id": second})
    decisions = {r["id"]: r["decision"] for r in board.rows}
    assert decisions[first] == "approved" and decisions[second] == "rejected"  # rejected stays visible, marked
    assert second not in set(wb.leaderboard(exp.key)["full_config_id"])  # but leaves the facade's ranking
    assert [e["payload"]["by"] for e in wb.events(exp.key, types=["configuration.*"])] == ["ana", "ana"]
    assert board.handle_message({"action": "clear", "config_id": second})
    assert {r["id"]: r["decision"] for r in board.rows}[second] == ""


def test_readonly_ignores_decisions_and_browser_state(done):
    wb, exp = done
    board = Leaderboard(wb, exp, live=False, readonly=True)
    cid = board.rows[0]["id"]
    assert not board.handle_message({"action": "approve", "config_id": cid})
    assert "read-only" in board.error
    assert wb.events(exp.key, types=["configuration.*"]) == []
    assert board.handle_message({"action": "sort", "key": "cost"})  # looking around is fine
    board.set_state({"readonly": False, "rows": [], "sort": {"key": "x"}})  # a browser trying to write
    assert board.readonly is True and len(board.rows) == 4 and board.sort["key"] == "cost"
