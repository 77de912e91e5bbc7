import asyncio

from modelrollout.controller.workqueue import MAX_BACKOFF_SECONDS, WorkQueue


def run(coroutine):
    return asyncio.run(coroutine)


def test_duplicate_adds_coalesce():
    async def scenario():
        queue = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        return len(queue), [await queue.get(), await queue.get()]

    assert run(scenario()) == (2, ["a", "b"])


def test_add_while_processing_runs_once_more_after_done():
    async def scenario():
        queue = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")
        queue.add("a")
        waiting_while_processing = len(queue)
        queue.done(key)
        return waiting_while_processing, len(queue), await queue.get()

    assert run(scenario()) == (0, 1, "a")


def test_add_after_fires_once_and_earliest_wins():
    async def scenario():
        queue = WorkQueue()
        queue.add_after("a", 30)
        queue.add_after("a", 0.01)
        queue.add_after("a", 60)
        key = await asyncio.wait_for(queue.get(), timeout=5)
        queue.done(key)
        queue.close()
        return key, len(queue)

    assert run(scenario()) == ("a", 0)


def test_backoff_doubles_caps_and_resets():
    queue = WorkQueue()
    delays = [queue.retry_delay("a") for _ in range(12)]
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert delays[-1] == MAX_BACKOFF_SECONDS
    queue.forget("a")
    assert queue.retry_delay("a") == 0.5


def test_urgent_keys_go_before_every_routine_one_and_a_waiting_key_is_promoted():
    async def scenario():
        queue = WorkQueue()
        for key in ("a", "b", "c"):
            queue.add(key)
        queue.add("x", urgent=True)
        queue.add("c", urgent=True)  # waiting as routine: promoted, and taken once only
        taken = [await queue.get() for _ in range(4)]
        return taken, len(queue)

    assert run(scenario()) == (["x", "c", "a", "b"], 0)


def test_the_urgent_only_worker_never_takes_routine_work():
    async def scenario():
        queue = WorkQueue()
        queue.add("routine")
        urgent = asyncio.create_task(queue.get(urgent_only=True))
        await asyncio.sleep(0)  # one turn of the loop: the urgent worker looks, finds only routine work, waits
        waited = not urgent.done()
        queue.add("alarm", urgent=True)
        return waited, await asyncio.wait_for(urgent, timeout=5), await queue.get()

    assert run(scenario()) == (True, "alarm", "routine")


def test_an_urgent_add_while_processing_reruns_it_in_the_urgent_lane():
    async def scenario():
        queue = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a", urgent=True)
        queue.add("b")
        queue.done(key)
        return queue.urgent_waiting(), await queue.get(urgent_only=True), await queue.get()

    assert run(scenario()) == (1, "a", "b")


def test_the_urgent_count_follows_promotions_repeats_and_takes():
    async def scenario():
        queue = WorkQueue()
        queue.add("routine")
        queue.add("promoted")
        queue.add("promoted", urgent=True)
        queue.add("alarm", urgent=True)
        queue.add("alarm", urgent=True)
        counts = [queue.urgent_waiting()]
        for _ in range(3):
            queue.done(await queue.get())
            counts.append(queue.urgent_waiting())
        return counts

    assert run(scenario()) == [2, 1, 0, 0]
