"""Adaptive batching for single-row requests.

BentoML's ``@bentoml.api(batchable=True)`` merges *list* inputs (that is how
``/predict_batch`` is batched), but ``/predict`` takes one row, so it cannot be declared
batchable. The Coalescer gives it the same effect without a waiting window: the first
request of an idle service is scored at once (no added latency for a lone client);
requests that arrive while a batch is being scored queue up and go together in the next
one, so under load the batch size grows with the load, and one feature read, one model
call and one durable log commit (one fsync) serve many requests.

A batch is scored in a worker thread so that the event loop keeps reading requests while
it runs. For a lone client (``alone``, judged by the HTTP layer) there is nothing to read
meanwhile, and the two thread hand-offs (about 60 us) buy nothing: its request is scored
on the loop itself, about a tenth off a lone /predict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs ``fn(items) -> results-or-exceptions`` in a thread, one batch at a time."""

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Sequence[R | Exception]],
        max_batch: int,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.alone = alone
        """True when the caller is a lone client's request: scored on the event loop."""
        self.inline = 0
        """Batches scored on the event loop, without a thread (observability and tests)."""
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches scored so far (observability and tests)."""

    async def submit(self, item: T) -> R:
        """Score ``item`` in the next batch; raises what scoring raised for it."""
        if self._inline():
            result = self._score_here([item])[0]
            if isinstance(result, BaseException):
                raise result
            return result
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if not self._draining:
            self._draining = True
            self._task = asyncio.create_task(self._drain())  # keep a reference: no GC
        return await fut

    async def submit_all(self, items: Sequence[T]) -> list[R | BaseException]:
        """Score several items (they join the same batches); each result or its exception."""
        if self._inline():
            return self._score_here(items)
        if len(items) == 1:  # /predict: no gather task on the hot path
            try:
                return [await self.submit(items[0])]
            except Exception as exc:
                return [exc]
        return list(await asyncio.gather(*(self.submit(i) for i in items), return_exceptions=True))

    def _inline(self) -> bool:
        return self.alone is not None and not self._draining and self.alone()

    def _score_here(self, items: Sequence[T]) -> list[R | BaseException]:
        """Score ``items`` on the calling (event loop) thread, in batches of at most
        ``max_batch``; a batch whose scoring raised gets the exception for each item."""
        results: list[R | BaseException] = []
        for start in range(0, len(items), self.max_batch):
            batch = items[start : start + self.max_batch]
            self.batches += 1
            self.inline += 1
            try:
                results.extend(self.fn(batch))
            except Exception as exc:
                results.extend([exc] * len(batch))
        return results

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.batches += 1
                try:
                    results = await asyncio.to_thread(self.fn, [item for item, _ in batch])
                except Exception as exc:  # handed to each waiting request
                    results = [exc] * len(batch)
                for (_, fut), res in zip(batch, results, strict=True):
                    if fut.done():  # the client went away
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:
            self._draining = False
