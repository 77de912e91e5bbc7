"""The handlers' worker: what is scheduled again after a reconcile."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import kopf

from modelrollout import handlers
from modelrollout.controller.peering import Leadership
from modelrollout.controller.workqueue import WorkQueue


class Models:
    def __init__(self, present: set[tuple[str, str]]) -> None:
        self.present = present

    def model(self, namespace: str, name: str) -> dict | None:
        return {"metadata": {"name": name}} if (namespace, name) in self.present else None


class Reconciles:
    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []

    def reconcile(self, namespace: str, name: str) -> float | None:
        self.done.append((namespace, name))
        return None


def test_a_reconciled_modeldeployment_is_resynced_later_and_a_deleted_one_is_not():
    async def scenario() -> None:
        memo = kopf.Memo()
        memo.queue, memo.leadership = WorkQueue(), Leadership(True, "test")
        memo.cache, memo.reconciler = Models({("ns", "kept")}), Reconciles()
        memo.executor = ThreadPoolExecutor(max_workers=1)
        worker = asyncio.create_task(handlers._worker(memo))
        memo.queue.add(("ns", "kept"))
        memo.queue.add(("ns", "deleted"))
        async with asyncio.timeout(5):
            while len(memo.reconciler.done) < 2 or len(memo.queue._processing) > 0:
                await asyncio.sleep(0.01)
        worker.cancel()
        memo.executor.shutdown()
        assert memo.queue.scheduled(("ns", "kept"))
        assert not memo.queue.scheduled(("ns", "deleted"))
        memo.queue.close()

    asyncio.run(scenario())
