"""Load the next item of a sequence in a background thread while the current one is processed."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Hashable, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Prefetcher(Generic[K, V]):
    """``get(key)`` returns ``load(key)`` and starts loading the key after it in ``keys``.

    One background thread, at most one load ahead, so at most two loaded items are alive. A
    load that raises re-raises from ``get`` of *its own* key, so a failure is reported for the
    right item. Keys may be asked for out of order or skipped (a load ahead that is never asked
    for is discarded on ``close``). With ``enabled=False`` every load runs in the caller.
    """

    def __init__(self, keys: Sequence[K], load: Callable[[K], V], enabled: bool = True):
        self._keys = list(keys)
        self._next = {key: self._keys[i + 1] for i, key in enumerate(self._keys[:-1])}
        self._load = load
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if enabled and len(self._keys) > 1 else None
        self._pending: dict[K, Future[V]] = {}

    def get(self, key: K) -> V:
        future = self._pending.pop(key, None)
        for stale in list(self._pending):  # a load ahead that was skipped over: drop it
            self._pending.pop(stale).cancel()
        self._start(self._next.get(key))
        return self._load(key) if future is None else future.result()

    def _start(self, key: K | None) -> None:
        if self._pool is not None and key is not None:
            self._pending[key] = self._pool.submit(self._load, key)

    def close(self) -> None:
        """Drop loads not yet asked for and wait for a running one (no thread outlives this)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "Prefetcher[K, V]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
