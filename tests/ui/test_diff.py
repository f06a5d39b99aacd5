from __future__ import annotations

from promptlooper.ui.diff import DiffView, pair_runs, run_sections, tokens, word_diff


def joined(segments, side):
    keep = {"left": ("equal", "del"), "right": ("equal", "ins")}[side]
    return "".join(s["text"] for s in segments if s["op"] in keep)


def test_tokens_round_trip():
    text = "Hello,  world!\n  It's 3.5 degrees."
    assert "".join(tokens(text)) == text


def test_word_diff_marks_words_and_rebuilds_both_texts():
    a, b = "The capital of France is Paris.", "The capital of France is, I think, Paris!"
    left, right = word_diff(a, b)
    assert joined(left, "left") == a and joined(right, "right") == b
    assert all(s["op"] in ("equal", "del") for s in left) and all(s["op"] in ("equal", "ins") for s in right)
    assert [s["text"] for s in right if s["op"] == "ins"] == [", I think,", "!"]
    assert [s["text"] for s in left if s["op"] == "del"] == ["."]
    # adjacent segments of one kind are merged
    assert all(x["op"] != y["op"] for x, y in zip(left, left[1:], strict=False))


def test_word_diff_of_equal_and_empty_texts():
    assert word_diff("same words", "same words") == ([{"op": "equal", "text": "same words"}],) * 2
    assert word_diff("", "new") == ([], [{"op": "ins", "text": "new"}])


def test_run_sections_cover_prompt_parameters_response():
    a = {"stages": [{"stage_name": "answer", "prompt_sent": [{"role": "user", "content": "Q1"}], "parameters": {"temperature": 0.0},
                     "model_used": "m", "response_raw": "Paris"}]}
    b = {"stages": [{"stage_name": "answer", "prompt_sent": [{"role": "user", "content": "Q1"}], "parameters": {"temperature": 0.7},
                     "model_used": "m", "response_raw": "Lyon"}], "error": "boom"}
    secs = run_sections(a, b)
    assert [s["title"] for s in secs] == ["answer · prompt", "answer · parameters", "answer · response", "error"]
    assert [s["same"] for s in secs] == [True, False, False, False]
    assert joined(secs[1]["right"], "right") == "model = m\ntemperature = 0.7"


def test_pair_runs_matches_sample_and_repeat():
    a = [{"id": "a1", "sample_id": "s1", "sample_index": 1, "repeat": 0}, {"id": "a0", "sample_id": "s0", "sample_index": 0, "repeat": 0},
         {"id": "a2", "sample_id": "s2", "sample_index": 2, "repeat": 0}]
    b = [{"id": "b0", "sample_id": "s0", "repeat": 0}, {"id": "b1", "sample_id": "s1", "repeat": 0}]
    assert [(x["id"], y["id"]) for x, y in pair_runs(a, b)] == [("a0", "b0"), ("a1", "b1")]


def test_compare_configs_and_runs(done):
    wb, exp = done
    board = wb.leaderboard(exp.key)
    c1, c2 = board.full_config_id[0], board.full_config_id[1]
    view = DiffView(wb, exp)
    assert view.sections == [] and view.hint
    view.compare_configs(c1[:8], c2[:8])
    assert [s["label"] for s in view.samples] == ["sample #0", "sample #1", "sample #2"]
    assert view.sections[0]["title"] == "configuration" and not view.sections[0]["same"]
    assert view.left["title"] == f"config {c1[:12]}" and "n=3" in view.left["subtitle"]
    assert {s["scorer"] for s in view.left["scores"]} == {"length", "keyword"}
    assert view.handle_message({"action": "sample", "index": 2}) and view.sample == 2
    assert "sample #2" in view.left["subtitle"]
    assert not view.handle_message({"action": "sample", "index": 9})
    assert view.handle_message({"action": "swap"}) and view.left["title"] == f"config {c2[:12]}"

    runs = wb.runs(exp.key, config=c1)
    view.compare_runs(runs[0]["id"], runs[1]["id"])
    assert view.samples == [] and view.left["title"] == f"run {runs[0]['id'][:8]}"
    prompt = view.sections[0]
    assert prompt["title"] == "answer · prompt" and not prompt["same"]  # two samples: different questions
    view.handle_message({"action": "swap"})
    assert view.left["title"] == f"run {runs[1]['id'][:8]}"
