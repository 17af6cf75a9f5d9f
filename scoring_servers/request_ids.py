"""Fresh `x-request-id` values: random version-4 UUIDs, as azmlinfsrv answers when the client
sent none (both scoring servers use them).

Why not `uuid.uuid4()`: it reads 16 bytes with a getrandom syscall and builds a `UUID` object,
~3 µs on the event-loop thread per request; these ids need uniqueness, not secrecy, so 128 bits
from a `random.Random` seeded from the OS (a fresh seed per process) do, in under 1 µs.
Python 3.8+, standard library only.
"""

from __future__ import annotations

import random

_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48)  # clears the version nibble and the variant bits
_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


class RequestIds:
    """One per server; used from the event-loop thread only."""

    __slots__ = ("_random",)

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)  # None: seeded from os.urandom

    def next(self) -> bytes:
        digits = "%032x" % (self._random.getrandbits(128) & _KEEP | _SET)
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}".encode()
