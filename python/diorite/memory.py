"""Giving back, after a spike, the memory Python's free lists hold on to.

CPython keeps some freed objects for reuse instead of freeing them: up to
2,000 tuples of each length below 21, and some dozens to hundreds of
dicts, lists, contexts and others; uvloop (Cython) keeps 250 of its
callback handles. pymalloc, which serves every object of 512 bytes or
less, gives one of its 1 MiB arenas back to the system only once its last
object is freed. After a spike, the objects these lists keep are the last
ones freed, made at the spike's height and scattered over its arenas, so a
few hundred of them hold megabytes: 10,000 websockets opened and closed
left one worker with 23 arenas against 11 at the start, the extra ones
held by nothing but objects in free lists.

So once a second the loop compares `sys.getallocatedblocks()` with the
highest count seen since the last trim, and when it has fallen by
`SPIKE_BLOCKS` and stopped falling (a spike has come and gone: emptied
while it is still going, the lists fill up again with what it frees
next), it empties the lists:

* CPython's are emptied by any collection of the oldest generation (the
  `gc` module's documentation says so). With the heap frozen first, that
  collection walks no object, so on any heap it costs only the freeing of
  what the lists held (under a millisecond after 10,000 websockets). The
  young generations are collected first: the thaw puts every object in
  the oldest one, and so moves there only what that collection would
  have. Where objects are frozen already (by the app, `gc.freeze()`
  before forking, or by Python 3.12 itself, which starts with a few
  hundred), thawing would undo that, so a full collection does it instead,
  walking the heap (10.8 ms after 10,000 websockets on a small app's),
  at most once every `FULL_COLLECTION_EVERY`: under bursts of load each
  burst's end is a spike's. Skipped when the app has turned the collector
  off.
* uvloop's has no call that empties it; handles are taken from it and
  given back to it. So the loop takes all 250 and a few thousand more,
  and gives back first the newest of them, made last, which pymalloc
  carved out of its fullest arenas (it always carves from the fullest):
  they fill the list again, and the old ones, returned to a full list,
  are freed.

Measured with `bench/idle.py --kind ws`: see bench/results/idle.md.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable

from .logs import logger

CHECK_EVERY = 1.0
# Blocks (objects, mostly) freed since the highest count that make a
# spike: a websocket or a request in flight holds some dozens, so this is
# some thousands of them; a loop's ordinary ups and downs stay below.
SPIKE_BLOCKS = 50_000
# Still falling: more freed in the last second than this.
FALLING_BLOCKS = SPIKE_BLOCKS // 10
FULL_COLLECTION_EVERY = 60.0
# uvloop's DEFAULT_FREELIST_SIZE.
UVLOOP_FREE_LIST = 250
# Enough handles to fill the part-used pools of their size first, so that
# the newest come from fresh pools of the fullest arenas.
UVLOOP_FRESH = 4_096


def start_trimming(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Starts the once-a-second check. Returns how to stop it."""
    trimmer = _Trimmer(loop)
    trimmer.check()
    return trimmer.stop


class _Trimmer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.uvloop = type(loop).__module__.startswith("uvloop")
        self.peak = self.last = sys.getallocatedblocks()
        self.handle: asyncio.TimerHandle | None = None
        self.next_full = 0.0

    def check(self) -> None:
        blocks = sys.getallocatedblocks()
        falling = self.last - blocks > FALLING_BLOCKS
        self.last = blocks
        if blocks > self.peak:
            self.peak = blocks
        elif self.peak - blocks >= SPIKE_BLOCKS and not falling:
            full = bool(gc.get_freeze_count())
            # A full collection waits for its turn, tried again each second.
            if not full or time.monotonic() >= self.next_full:
                self.trim(blocks, full)
        self.handle = self.loop.call_later(CHECK_EVERY, self.check)

    def trim(self, blocks: int, full: bool) -> None:
        started = time.monotonic()
        emptied = empty_python_free_lists(full)
        took = time.monotonic() - started
        if full:
            self.next_full = started + FULL_COLLECTION_EVERY
        self.last = sys.getallocatedblocks()
        if self.uvloop:
            renew_uvloop_handles(self.loop)
        logger.debug(
            "a spike has passed (peak %d allocated blocks, now %d): free lists %s",
            self.peak,
            blocks,
            f"emptied in {took * 1000:.1f} ms, {blocks - self.last} blocks freed"
            if emptied
            else "left to the app",
        )
        self.peak = self.last

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


def empty_python_free_lists(full: bool) -> bool:
    """Empties CPython's free lists, with a full collection or without
    walking the heap; false when the app has turned the collector off."""
    if not gc.isenabled():
        return False
    if full:
        gc.collect()
        return True
    gc.collect(1)
    gc.freeze()
    try:
        gc.collect(2)
    finally:
        gc.unfreeze()
    return True


def renew_uvloop_handles(loop: asyncio.AbstractEventLoop) -> None:
    made = [loop.call_soon(_nothing) for _ in range(UVLOOP_FREE_LIST + UVLOOP_FRESH)]

    def give_back() -> None:
        # Runs after the loop has run and let go of every one of them.
        newest = made[-UVLOOP_FREE_LIST:]
        del made[-UVLOOP_FREE_LIST:]
        newest.clear()
        made.clear()

    loop.call_soon(give_back)


def _nothing() -> None:
    pass
