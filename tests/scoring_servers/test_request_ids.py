"""Fresh request ids are RFC 4122 version-4 UUIDs and do not repeat."""

from __future__ import annotations

import uuid

from scoring_servers.request_ids import RequestIds


def test_ids_are_version_4_uuids_in_canonical_form() -> None:
    ids = RequestIds()
    for _ in range(2000):
        text = ids.next().decode()
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


def test_ids_do_not_repeat_within_or_across_servers() -> None:
    first, second = RequestIds(), RequestIds()
    seen = {first.next() for _ in range(20_000)} | {second.next() for _ in range(20_000)}
    assert len(seen) == 40_000


def test_a_seed_reproduces_the_sequence() -> None:
    assert [RequestIds(7).next() for _ in range(2)] == [RequestIds(7).next()] * 2
    assert RequestIds(7).next() != RequestIds(8).next()
