from __future__ import annotations

import asyncio

from promptlooper.ui.steering import Steering, available_actions, fork_changes, status_view


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_status_view_says_which_verbs_apply():
    running = status_view({"sweep": {"status": "running", "done": 3, "total": 10, "requested": "pause:lunch"}})
    assert running["can"] == {"pause": True, "resume": False, "stop": True}
    assert running["text"] == "running · 3 / 10 runs · pause requested"
    paused = status_view({"sweep": {"status": "paused", "done": 3, "total": 10, "stop_reason": "budget"}})
    assert paused["can"] == {"pause": False, "resume": True, "stop": True} and paused["text"].endswith("budget")
    assert status_view({"sweep": None})["state"] == "no sweep"


def test_fork_changes_keeps_only_edits():
    varied = {"t": 0.0, "persona": "terse"}
    assert fork_changes({"t": 0.0, "persona": "terse"}, varied) == {}
    assert fork_changes({"t": [0.1, 0.2], "persona": "terse", "new": 1}, varied) == {"t": [0.1, 0.2], "new": 1}


def test_available_actions_follow_the_facade(wb):
    assert available_actions(wb) == {a: True for a in ("pause", "resume", "stop", "fork", "redirect", "approve", "reject")}
    assert available_actions(object()) == {a: False for a in ("pause", "resume", "stop", "fork", "redirect", "approve", "reject")}


def test_pause_resume_stop_a_running_sweep(wb, server, make_exp):
    server.latency = 0.05
    exp = make_exp(space={"answer.temperature": [i / 100 for i in range(40)]}, concurrency=2)

    async def scenario() -> None:
        handle = wb.start(exp)
        view = Steering(wb, exp, poll=0.2, readonly=False)
        await wait_for(lambda: (wb.status(exp.key)["sweep"] or {}).get("status") == "running")
        assert view.handle_message({"action": "pause", "reason": "look"}), view.error
        await wait_for(lambda: wb.status(exp.key)["sweep"]["status"] == "paused")
        await wait_for(lambda: view.status["state"] == "paused")  # the poll shows it
        assert view.status["can"]["resume"] and "look" in view.status["text"]
        assert [e["type"] for e in wb.events(exp.key, types=["experiment.paused"])] == ["experiment.paused"]
        assert view.handle_message({"action": "resume"}), view.error
        await wait_for(lambda: wb.status(exp.key)["sweep"]["status"] == "running")
        assert view.handle_message({"action": "stop"}), view.error
        final = await handle
        assert final.status == "stopped"
        await wait_for(lambda: view.status["state"] == "stopped")
        view.close()

    asyncio.run(scenario())


def test_reflects_steering_done_elsewhere_and_readonly_refuses(wb, server, make_exp):
    server.latency = 0.05
    exp = make_exp(space={"answer.temperature": [i / 100 for i in range(40)]}, concurrency=2)

    async def scenario() -> None:
        handle = wb.start(exp)
        guest = Steering(wb, exp, poll=0.2, readonly=True)
        await wait_for(lambda: guest.status.get("state") == "running")
        for msg in ({"action": "pause"}, {"action": "stop"}, {"action": "redirect", "space": "{}"},
                    {"action": "fork", "changes": "{}"}, {"action": "approve"}):
            assert not guest.handle_message(msg) and "read-only" in guest.error
        await asyncio.sleep(0.4)
        assert wb.status(exp.key)["sweep"]["status"] == "running"
        assert not any(e["name"].endswith("-fork1") for e in wb.experiments("tests"))
        wb.pause(exp.key)  # another process (CLI, MCP) pauses: the view follows within a poll
        await wait_for(lambda: guest.status.get("state") == "paused")
        wb.stop(exp.key)
        await handle
        guest.close()

    asyncio.run(scenario())


def test_select_fork_redirect_approve(done):
    wb, exp = done
    view = Steering(wb, exp, live=False, readonly=False, by="ana")
    assert '"answer.temperature"' in view.space_text
    assert not view.handle_message({"action": "approve"}) and "select a configuration" in view.error
    best = wb.leaderboard(exp.key).full_config_id[0]
    view.select(best[:10])
    assert view.selected["id"] == best and "answer.temperature = " in view.selected["params"]
    assert '"persona"' in view.fork_text
    assert view.handle_message({"action": "approve", "reason": "fine"}) and view.notice == f"approved {best[:12]}"
    assert wb.leaderboard(exp.key).set_index("full_config_id").loc[best, "decision"] == "approved"

    assert view.handle_message({"action": "fork", "changes": "answer.temperature: [0.2, 0.3]", "name": "tuned", "start": False})
    assert view.forks == ["tests/tuned"] and view.notice == "forked tests/tuned"
    child = wb.experiment("tests/tuned")
    assert child["spec"]["space"]["answer.temperature"] == [0.2, 0.3] and child["parent_id"]

    assert not view.handle_message({"action": "fork", "changes": "[1, 2]"}) and "expected a mapping" in view.error
    assert not view.handle_message({"action": "redirect", "space": '{"nope.temperature": [1]}'}) and view.error
    assert view.handle_message({"action": "redirect", "space": '{"answer.temperature": [0.0], "persona": ["terse"]}'}), view.error
    assert "no live sweep" in view.notice and '"terse"' in view.space_text and '"verbose"' not in view.space_text


def test_fork_and_start(done):
    wb, exp = done

    async def scenario() -> None:
        view = Steering(wb, exp, live=False, readonly=False)
        assert view.handle_message({"action": "fork", "changes": "", "name": "", "start": True}), view.error
        key = view.forks[0]
        assert key == "tests/fake-exp-fork1" and view.notice.endswith("and started a grid sweep")
        final = await view.fork_handles[key]
        assert final.status == "completed" and final.done == 3  # the best configuration x 3 samples
        # The start control offers the guided strategy too (the fork sweeps the changed values).
        assert view.handle_message({"action": "fork", "changes": '{"answer.temperature": [0.0, 0.25, 0.5, 0.75, 1.0]}',
                                    "name": "guided-fork", "start": True, "strategy": "guided"}), view.error
        assert view.notice.endswith("and started a guided sweep")
        guided = await view.fork_handles["tests/guided-fork"]
        assert guided.status == "completed" and guided.stop_reason
        assert not view.handle_message({"action": "fork", "changes": "", "name": "x", "start": True, "strategy": "nope"})

    asyncio.run(scenario())
