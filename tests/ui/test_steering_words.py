"""Steering editors explain a typo in words and say which configuration they act on."""

from __future__ import annotations

import promptlooper.ui as plui


def test_a_typo_is_explained_in_words_not_a_parser_dump(done):
    wb, exp = done
    view = plui.workbench(wb, exp, readonly=False, live=False)
    steering = view.steering
    assert not steering.handle_message({"action": "redirect", "space": '{"answer.temperature": [0.0, 0.5}'})
    assert steering.error.startswith("space: line 1, column ")
    assert "not valid JSON or YAML" in steering.error and "Write JSON such as" in steering.error
    assert "ValueError" not in steering.error and "<unicode string>" not in steering.error
    view.close()


def test_fork_box_shows_the_best_and_two_ticks_say_which_one_acts(done):
    wb, exp = done
    view = plui.workbench(wb, exp, readonly=False, live=False)
    best = view.leaderboard.best_id()
    assert best and view.steering.best["id"] == best
    assert "answer.temperature" in view.steering.fork_text  # not empty under "fork uses the best"
    first, second = (r["id"] for r in view.leaderboard.rows[:2])
    view.leaderboard.handle_message({"action": "select", "config_id": first})
    assert view.steering.selected["id"] == first and view.steering.selected["ticked"] == 1
    view.leaderboard.handle_message({"action": "select", "config_id": second})
    assert view.steering.selected["id"] == second and view.steering.selected["ticked"] == 2
    view.leaderboard.handle_message({"action": "select", "config_id": second})
    view.leaderboard.handle_message({"action": "select", "config_id": first})
    assert view.steering.selected == {} and "answer.temperature" in view.steering.fork_text
    view.close()
