"""The ramp: a few requests in flight at first, more while answers are healthy, fewer on trouble."""

import threading

from research_pipeline.tiktok.ramp import START, InFlightRamp
from research_pipeline_tests.helpers import find_usernames


def test_the_limit_grows_by_one_per_healthy_answer_halves_on_trouble_and_stays_in_bounds():
    ramp, cancelled = InFlightRamp(ceiling=10), threading.Event()
    assert all(ramp.enter(cancelled) for _ in range(START))
    cancelled.set()
    assert not ramp.enter(cancelled)  # full: a cancelled waiter gives up instead of sending
    cancelled.clear()
    for _ in range(START):
        ramp.leave(healthy=True)
    assert ramp.limit == 2 * START
    for _ in range(10):
        ramp.enter(cancelled)
        ramp.leave(healthy=True)
    assert ramp.limit == 10  # the ceiling: the `concurrency` setting
    ramp.enter(cancelled)
    ramp.leave(healthy=False)
    assert ramp.limit == 5
    ramp.enter(cancelled)
    ramp.leave(healthy=None)  # an expired token says nothing of the API's health
    assert ramp.limit == 5
    for _ in range(5):
        ramp.enter(cancelled)
        ramp.leave(healthy=False)
    assert ramp.limit == 1  # one at a time, never none
    assert InFlightRamp(ceiling=2).limit == 2  # a low setting is a low start too


def test_a_place_freed_by_an_answer_lets_a_waiting_request_go():
    ramp, cancelled = InFlightRamp(ceiling=1), threading.Event()
    assert ramp.enter(cancelled)
    went = threading.Event()
    waiter = threading.Thread(target=lambda: ramp.enter(cancelled) and went.set())
    waiter.start()
    assert not went.wait(0.2)  # held while the one place is taken
    ramp.leave(healthy=True)
    waiter.join(timeout=10)
    assert went.is_set()


def test_a_day_starts_with_a_few_requests_and_ramps_up_to_the_setting(emulator, make_client):
    emulator.config.latency_seconds = 0.05
    order: list[str] = []  # sends and answers, in the order the client saw them
    lock = threading.Lock()

    def seen(what):
        with lock:
            order.append(what)

    client = make_client(
        concurrency=16,
        client_options={
            "on_send": lambda _name: seen("send"),
            "on_request": lambda _record: seen("answer"),
        },
    )
    results = list(client.iter_user_info(find_usernames(emulator, "active", 200)))
    assert [r.status for r in results] == ["ok"] * 200
    in_flight, most = [], 0
    for what in order:
        most += 1 if what == "send" else -1
        in_flight.append(most)
    # Before the first answer only the ramp's start goes out (16 at once without the ramp)...
    assert order.index("answer") <= START
    # ...then healthy answers let more go, never past the setting.
    assert 2 * START < max(in_flight) <= 16
