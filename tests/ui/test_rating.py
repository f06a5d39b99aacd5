from __future__ import annotations

import pytest

from promptlooper.ui.rating import Rating, check_rating, rate_function, rated_run

needs_ratings = pytest.mark.skipif(rate_function() is None, reason="promptlooper.ratings not in this build")


def test_check_rating_normalises_and_explains():
    assert check_rating("up", "4", " nice ") == ("up", 4, "nice")
    assert check_rating(None, 5, "") == (None, 5, "")
    for bad, match in (((None, None, "text only"), "thumbs up / down or 1–5 stars"), (("sideways", None, ""), "thumbs"),
                       ((None, 6, ""), "1 to 5"), ((None, "x", ""), "whole number")):
        with pytest.raises(ValueError, match=match):
            check_rating(*bad)


def test_rated_run_lists_human_scores_with_comments():
    view = rated_run({"id": "r" * 32, "config_id": "c" * 64, "sample_index": 1, "status": "completed", "output": "Paris", "score": 0.5,
                      "scores": [{"scorer": "length", "value": 1.0, "source": "auto"},
                                 {"scorer": "human_stars", "value": 0.75, "source": "human", "metadata": {"comment": "ok", "raw": 4}}]})
    assert view["output"] == "Paris" and view["config"] == "c" * 12
    assert view["human"] == [{"scorer": "human_stars", "value": "★★★★☆ 4/5", "comment": "ok"}]  # as given, not 0.750


@needs_ratings
def test_rate_a_run_through_the_widget(done):
    wb, exp = done
    view = Rating(wb, exp, readonly=False, by="ana")
    assert view.available and len(view.choices) == 12 and view.run["id"] == view.choices[0]["id"]
    target = view.choices[3]["id"]
    assert view.handle_message({"action": "select", "run_id": target}) and view.run["id"] == target
    assert view.handle_message({"action": "rate", "thumbs": "up", "stars": 5, "comment": "spot on"}), view.error
    assert view.notice == f"rated run {target[:8]}"
    human = {h["scorer"]: h for h in view.run["human"]}
    assert human["human_thumbs"]["value"] == "thumbs up" and human["human_stars"]["comment"] == "spot on"
    assert human["human_stars"]["value"] == "★★★★★ 5/5"
    scores = {s["scorer"]: s for s in wb.run_detail(target)["scores"] if s["source"] == "human"}
    assert scores["human_stars"]["value"] == 1.0
    assert not view.handle_message({"action": "rate", "stars": 9}) and "1 to 5" in view.error


@needs_ratings
def test_readonly_rating_is_refused(done):
    wb, exp = done
    view = Rating(wb, exp, readonly=True)
    assert not view.handle_message({"action": "rate", "thumbs": "down"}) and "read-only" in view.error
    assert all(s["source"] != "human" for r in wb.runs(exp.key) for s in wb.run_detail(r["id"])["scores"])
