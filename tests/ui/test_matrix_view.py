"""The output matrix view's Python side: filters, search, paging, picks, ratings and exports on a
real finished sweep (fake server), without a browser."""

from __future__ import annotations

import json

import pytest

from promptlooper.ui.matrix_export import export_text
from promptlooper.ui.matrix_view import MatrixView, check_filters, tone


def cells(view: MatrixView) -> list[dict]:
    return [c for r in view.rows for c in r["cells"] if not c.get("empty")]


def test_tone_bands():
    assert [tone(None, False), tone(0.9, False), tone(0.6, False), tone(0.1, False), tone(0.9, True)] == \
        ["none", "good", "mid", "bad", "failed"]


def test_check_filters_takes_the_browsers_text_and_refuses_nonsense():
    params = {"answer.temperature": [0.0, 0.5], "persona": ["terse", "verbose"]}
    got = check_filters({"where": {"answer.temperature": "0.5", "persona": ""}, "search": "  paris ", "differ": False,
                         "score": ["0.2", 1]}, params)
    assert got == {"where": {"answer.temperature": [0.5]}, "search": "paris", "score": [0.2, 1.0]}
    with pytest.raises(ValueError, match="not a varied parameter"):
        check_filters({"where": {"nope": 1}}, params)
    with pytest.raises(ValueError, match="low must not be above high"):
        check_filters({"score": [0.9, 0.1]}, params)
    with pytest.raises(ValueError, match="unknown filter"):
        check_filters({"colour": "red"}, params)


def test_matrix_shows_every_run_with_score_badges_and_columns(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=False)
    assert view.page == {"row": 0, "rows": 3, "col": 0, "cols": 4, "page_rows": 20, "page_cols": 8}
    assert len(view.columns) == 4 and len(view.rows) == 3 and len(cells(view)) == 12
    frame = wb.runs(exp.key, as_frame=True)
    one = cells(view)[0]
    run = frame.set_index("run_id").loc[one["run_id"]]
    assert one["score"] == f"{run['score']:.3f}"
    assert [b["scorer"] for b in one["badges"]] == ["length", "keyword"]
    assert one["badges"][1]["passed"] == bool(run["keyword"] >= 0.5)
    assert view.choices == ["config", "answer.temperature", "persona"]
    assert [p["name"] for p in view.params] == ["answer.temperature", "persona"]


def test_filters_and_search_are_applied_in_python(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=False)
    assert view.handle_message({"action": "filter", "where": {"persona": "terse"}})
    assert view.filters == {"where": {"persona": ["terse"]}}
    assert len(view.columns) == 2 and len(cells(view)) == 6
    assert view.handle_message({"action": "filter", "search": "capital of japan"})  # text of a prompt
    assert [r["label"] for r in view.rows] == ["#1"] and len(cells(view)) == 2
    assert view.handle_message({"action": "clear"})
    assert len(cells(view)) == 12
    assert view.handle_message({"action": "by", "by": "persona"})
    assert sorted(c["label"] for c in view.columns) == ["terse", "verbose"]
    assert all(c["repeats"] == 2 for c in cells(view))  # two temperatures in each cell
    assert not view.handle_message({"action": "by", "by": "colour"}) and "cannot put" in view.error
    high = max(float(c["score"]) for c in cells(view))
    assert view.handle_message({"action": "filter", "score": [high - 0.001, 1]})  # shown rounded
    assert cells(view) and all(float(c["score"]) >= high - 0.001 for c in cells(view))


def test_pages_keep_the_state_sent_bounded(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=False, page_rows=2, page_cols=3)
    assert len(view.rows) == 2 and len(view.columns) == 3
    assert view.handle_message({"action": "page", "row": 2, "col": 3})
    # the last page is full: the offset stops where a whole page still fits
    assert (view.page["row"], view.page["col"]) == (1, 1)
    assert len(view.rows) == 2 and len(view.columns) == 3
    assert view.handle_message({"action": "page", "row": -5})
    assert view.page["row"] == 0


def test_open_pick_two_for_the_diff_and_rate_inline(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=False, rater="ana")
    a, b = cells(view)[0]["run_id"], cells(view)[1]["run_id"]
    assert view.handle_message({"action": "open", "run_id": a})
    assert view.detail["id"] == a and "Q: capital of France" in view.detail["prompt"] and view.detail["ratable"]
    assert view.handle_message({"action": "pick", "run_id": a}) and view.diff == {}
    assert view.handle_message({"action": "pick", "run_id": b})
    assert view.picked == [a, b] and [c["picked"] for c in cells(view)[:2]] == [True, True]
    assert any(s["title"] == "answer · parameters" and not s["same"] for s in view.diff["sections"])
    assert view.handle_message({"action": "rate", "run_id": a, "thumbs": "up"})
    assert view.handle_message({"action": "rate", "run_id": a, "stars": 4})
    got = wb.ratings(a)
    assert (got["thumbs"], got["stars"], got["by"]) == ("up", 4, "ana")
    shown = next(c for c in cells(view) if c["run_id"] == a)
    assert (shown["thumbs"], shown["stars"]) == ("up", 4)
    assert (view.detail["thumbs"], view.detail["stars"]) == ("up", 4)  # the open run view follows
    assert [s["scorer"] for s in view.detail["scores"]] == ["keyword", "length"]  # not human_thumbs 1.000
    # human scores are shown as thumbs and stars, not as scorer badges
    assert [b["scorer"] for b in shown["badges"]] == ["length", "keyword"]


def test_read_only_refuses_ratings(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=True)
    run = cells(view)[0]["run_id"]
    assert not view.handle_message({"action": "rate", "run_id": run, "thumbs": "up"})
    assert wb.ratings(run)["thumbs"] is None
    assert view.handle_message({"action": "open", "run_id": run})  # looking is allowed


def test_exports_hold_the_filtered_runs(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=True)
    assert view.handle_message({"action": "filter", "where": {"persona": "verbose"}})
    assert view.handle_message({"action": "export", "fmt": "csv"})
    assert view.download["name"] == "tests-fake-exp-matrix.csv" and view.download["n"] == 1
    assert len(view.download["text"].strip().splitlines()) == 1 + 6
    assert view.handle_message({"action": "export", "fmt": "json"})
    assert len(json.loads(view.download["text"])) == 6 and view.download["n"] == 2
    name, mime, text = export_text(view._matrix, exp.key, "report", view.filters)
    assert mime == "text/markdown" and text.count("\n| ") == 1 + 2  # header + two configurations
    assert not view.handle_message({"action": "export", "fmt": "xlsx"})


def test_follow_fills_cells_in_as_a_real_sweep_runs_and_keeps_the_filters(wb, server, make_exp):
    import asyncio

    server.latency = 0.1  # 24 calls, 2 at a time: over a second, a dozen reads of the matrix
    exp = make_exp(space={"answer.temperature": [i / 10 for i in range(8)]}, concurrency=2)

    async def scenario() -> None:
        handle = wb.start(exp)
        view = MatrixView(wb, exp, readonly=True)
        view.filter(search="capital")  # every prompt: the filter stays on while the cells fill in
        seen = [len(cells(view))]
        view.follow(handle, interval=0.1)
        while not handle.done():
            await asyncio.sleep(0.1)
            seen.append(len(cells(view)))
        await handle
        for _ in range(50):  # the loop's last read, after the sweep ended
            if len(cells(view)) == 24:
                break
            await asyncio.sleep(0.1)
        assert len(cells(view)) == 24 and view.filters == {"search": "capital"}
        assert seen[0] < 24 and len(set(seen)) > 2  # it grew in steps while the sweep ran
        assert view._loop_task is None or view._loop_task.done()
        view.close()

    asyncio.run(scenario())


def test_sort_samples_and_columns_by_mean_score(done):
    wb, exp = done
    view = MatrixView(wb, exp, readonly=True, page_cols=2)
    scores = wb.matrix(exp.key).scores  # samples x columns of mean scores
    assert view.handle_message({"action": "sort", "rows": "-score", "cols": "score"})
    assert [r["key"] for r in view.rows] == scores.mean(axis=1).sort_values(ascending=False, kind="stable").index.tolist()
    assert [c["key"] for c in view.columns] == scores.mean(axis=0).sort_values(kind="stable").index.tolist()[:2]
    assert view.handle_message({"action": "sort", "rows": ""})
    assert [r["key"] for r in view.rows] == scores.index.tolist() and view.sort == {"rows": "", "cols": "score"}
    assert not view.handle_message({"action": "sort", "rows": "colour"})
