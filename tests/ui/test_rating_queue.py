"""The rating queue's Python side on a real finished sweep: next unrated, previous, ratings
through the facade, ratings shown as thumbs and stars, read-only refusal, live reload."""

from __future__ import annotations

from promptlooper.ui.rating_queue import RatingQueue, queue_order


def test_order_is_samples_then_configurations_and_knows_the_unrated(done):
    wb, exp = done
    frame = wb.runs(exp.key, as_frame=True)
    ids, unrated = queue_order(frame)
    assert len(ids) == 12 and unrated == set(ids)
    indexes = frame.set_index("run_id").loc[ids, "sample_index"].tolist()
    assert indexes == sorted(indexes)
    wb.rate(ids[3], stars=2)
    ids2, unrated2 = queue_order(wb.runs(exp.key, as_frame=True))
    assert ids2 == ids and unrated2 == set(ids) - {ids[3]}


def test_next_unrated_skips_what_is_rated_and_prev_goes_back(done):
    wb, exp = done
    ids, _ = queue_order(wb.runs(exp.key, as_frame=True))
    wb.rate(ids[1], thumbs="up")  # rated elsewhere before the queue opens
    q = RatingQueue(wb, exp, readonly=False, rater="ana")
    assert q.run["id"] == ids[0] and q.position == {"index": 1, "total": 12, "unrated": 11}
    assert "Q: capital of France" in q.run["prompt"] and q.run["thumbs"] is None
    assert q.handle_message({"action": "next"})
    assert q.run["id"] == ids[2]  # ids[1] is rated already
    assert q.handle_message({"action": "rate", "stars": 4}) and q.handle_message({"action": "rate", "thumbs": "down"})
    got = wb.ratings(ids[2])
    assert (got["stars"], got["thumbs"], got["by"]) == (4, "down", "ana")
    assert (q.run["stars"], q.run["thumbs"]) == (4, "down") and q.position["unrated"] == 10
    assert q.handle_message({"action": "prev"}) and q.run["id"] == ids[1] and q.run["thumbs"] == "up"
    assert q.handle_message({"action": "toggle"}) and not q.only_unrated
    assert q.handle_message({"action": "next"}) and q.run["id"] == ids[2]  # every run now, rated or not


def test_all_rated_says_so(done):
    wb, exp = done
    ids, _ = queue_order(wb.runs(exp.key, as_frame=True))
    for r in ids[1:]:
        wb.rate(r, thumbs="up")
    q = RatingQueue(wb, exp, readonly=False)
    assert q.run["id"] == ids[0]
    assert q.handle_message({"action": "rate", "thumbs": "up"})
    q.handle_message({"action": "next"})
    assert q.notice == "Every finished run is rated." and q.position["unrated"] == 0


def test_read_only_queue_moves_but_cannot_rate(done):
    wb, exp = done
    q = RatingQueue(wb, exp, readonly=True)
    first = q.run["id"]
    assert not q.handle_message({"action": "rate", "stars": 5})
    assert wb.ratings(first)["stars"] is None
    assert q.handle_message({"action": "next"}) and q.run["id"] != first


def test_reload_takes_in_ratings_made_elsewhere_and_keeps_the_run_on_screen(done):
    wb, exp = done
    q = RatingQueue(wb, exp, readonly=False)
    ids, _ = queue_order(wb.runs(exp.key, as_frame=True))
    q.handle_message({"action": "next"})
    here = q.run["id"]
    for r in ids[5:]:
        wb.rate(r, stars=3)
    assert q.handle_message({"action": "refresh"})
    assert q.run["id"] == here and q.position["unrated"] == 5


def test_follow_takes_in_the_runs_of_a_running_sweep(wb, server, make_exp):
    import asyncio

    server.latency = 0.1
    exp = make_exp(space={"answer.temperature": [i / 10 for i in range(8)]}, concurrency=2)

    async def scenario() -> None:
        handle = wb.start(exp)
        q = RatingQueue(wb, exp, readonly=False)
        first_total = q.position["total"]
        q.follow(handle, interval=0.1)
        await handle
        for _ in range(50):
            if q.position["total"] == 24:
                break
            await asyncio.sleep(0.1)
        assert first_total < 24 and q.position == {"index": q.position["index"], "total": 24, "unrated": 24}
        assert q.run and q.position["index"] >= 1  # a queue that opened empty shows a run once there is one
        q.close()

    asyncio.run(scenario())
