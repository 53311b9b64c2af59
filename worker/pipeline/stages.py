"""Pipeline stages in threads: decoding ahead of the model, writing behind it.

The model holds the GIL little (torch releases it in its kernels), so on a GPU the CPU stages
(decode and resize before, upsampling, RLE and overlay encoding after) can overlap with it.

- ``prefetched(items, depth)``: a context manager giving an iterator over ``items``, which a
  background thread advances at most ``depth`` items ahead (a bounded queue). An exception
  raised by ``items`` is raised to the consumer where it occurred, after the items before it;
  leaving the ``with`` block early stops the producer (``interrupt`` cuts a blocked read
  short) and waits for it.
- ``OrderedWriter(depth)``: runs submitted calls one after another in one background thread,
  in submission order, with at most ``depth`` waiting (``submit`` blocks: back-pressure). The
  first failure is raised from the next ``submit``, ``flush`` or from leaving the ``with``
  block, and no later call runs; leaving the block waits for every accepted call. ``flush()``
  waits until every call submitted so far has run (e.g. before a crash-resume checkpoint,
  which must see the spool up to the frame it snapshots).
- ``InlineWriter``: ``OrderedWriter``'s interface with every call run at once in the calling
  thread (the stages switched off: the same calls in the same order, one thread).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"
_POLL_S = 0.1  # how often a blocked producer checks whether the consumer has gone


@contextmanager
def prefetched(
    items: Iterable[T], depth: int = 2, interrupt: Callable[[], None] | None = None
) -> Iterator[Iterator[T]]:
    """``with prefetched(video) as frames: for frame in frames: ...`` (see the module).

    ``interrupt``: called (from the consumer's thread) when the block is left early, to make
    a producer blocked inside ``items`` (a read of a stalled pipe) give up before the join.
    """
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((_ITEM, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put((_ERROR, error))
            return
        put((_END, None))

    def consume() -> Iterator[T]:
        while True:
            kind, value = slots.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value

    thread = threading.Thread(target=produce, name="streamseg-prefetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        if interrupt is not None and thread.is_alive():
            interrupt()
        thread.join()


class OrderedWriter:
    """Calls run in order in one background thread (see the module docstring)."""

    def __init__(self, depth: int = 4) -> None:
        self._tasks: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="streamseg-writer", daemon=True)

    def __enter__(self) -> OrderedWriter:
        self._thread.start()
        return self

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        self._raise_if_failed()
        self._tasks.put((function, args))

    def flush(self) -> None:
        """Wait for every call submitted so far; raise the first failure, if any."""
        self._tasks.join()
        self._raise_if_failed()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._tasks.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise_if_failed()

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                if self._error is None:  # after a failure nothing else runs; keep draining
                    function, args = task
                    function(*args)
            except BaseException as error:  # raised in the submitting thread
                self._error = error
            finally:
                self._tasks.task_done()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


class InlineWriter:
    """``OrderedWriter``'s interface, each call run at once in the calling thread."""

    def __enter__(self) -> InlineWriter:
        return self

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        function(*args)

    def flush(self) -> None:
        """Nothing waits: every call has run."""

    def __exit__(self, *exc_info: object) -> None:
        return None
