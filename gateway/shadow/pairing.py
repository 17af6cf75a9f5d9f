"""Shadow comparisons in flight and their results: sampling, pairing, counts, kept mismatches.

A `Pairing` waits for two answers: the live one (handed over by the proxy once the client has
it, before the copy is sent) and the shadow's (handed over by the mirror task, whatever happens
to the copy, within the mirror timeout). Whichever comes second queues the pairing for
judgement; the queue is judged in one `call_soon` callback per loop turn (a batch of copies
answers together), so neither the live response nor the handler that sent it waits for the
comparison. Only a pairing that got its shadow answer first can miss its other answer: it
alone arms a timer, and is judged after `LIVE_WAIT_S` at the latest.

Memory is bounded and reported as body bytes held: at most `max_pending` pairings wait at
once (more copies are not compared, and counted as skipped), each holding at most two bodies
of `max_body_bytes` (larger ones are not kept); each deployment keeps its last
`keep_mismatches` mismatching pairs with bodies cut to `stored_body_bytes`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from gateway.shadow.rules import (
    MATCH,
    MISMATCH,
    OUTCOMES,
    SHADOW_ERROR,
    CompareSettings,
    Side,
    compare_answers,
)
from gateway.telemetry import metrics

LIVE_WAIT_S = 200.0  # above the longest request_timeout_ms (180 s) and the mirror timeout
Key = tuple[str, str]  # (endpoint, deployment)


@dataclass(frozen=True, slots=True)
class MismatchPair:
    request_id: str
    at: str  # ISO 8601 UTC, when it was judged
    live_status: int | None
    live_body: str  # cut to `stored_body_bytes`; empty when the status was not 2xx
    shadow_status: int | None
    shadow_body: str
    reason: str
    relative_difference: float | None
    size: int  # body bytes held


@dataclass(frozen=True, slots=True)
class ComparisonReport:
    endpoint: str
    deployment: str
    counts: dict[str, int]  # outcome → comparisons
    skipped: int  # copies not compared because `max_pending` comparisons were waiting
    agreement_rate: float | None  # match / (match + mismatch + shadow_error); None before any
    memory_bytes: int  # body bytes held for this deployment (waiting + kept)
    memory_limit_bytes: int
    settings: CompareSettings
    last_mismatches: tuple[MismatchPair, ...]  # newest first


def agreement_rate(counts: dict[str, int]) -> float | None:
    judged = counts.get(MATCH, 0) + counts.get(MISMATCH, 0) + counts.get(SHADOW_ERROR, 0)
    return counts.get(MATCH, 0) / judged if judged else None


class MismatchLog:
    """The last mismatching pairs of one deployment, and the body bytes they hold."""

    def __init__(self, keep: int) -> None:
        self._pairs: deque[MismatchPair] = deque(maxlen=keep)
        self.bytes = 0

    def add(self, pair: MismatchPair) -> None:
        if self._pairs.maxlen == 0:
            return
        if len(self._pairs) == self._pairs.maxlen:
            self.bytes -= self._pairs[0].size
        self._pairs.append(pair)
        self.bytes += pair.size

    def newest_first(self) -> tuple[MismatchPair, ...]:
        return tuple(reversed(self._pairs))


class Pairing:
    """One sampled mirror copy waiting for its live and its shadow answer."""

    __slots__ = ("_owner", "key", "request_id", "live_side", "shadow_side", "held", "_timer",
                 "_done")

    def __init__(self, owner: Comparisons, key: Key, request_id: str) -> None:
        self._owner = owner
        self.key = key
        self.request_id = request_id
        self.live_side: Side | None = None
        self.shadow_side: Side | None = None
        self.held = 0
        self._done = False
        self._timer: asyncio.TimerHandle | None = None

    def live(self, status: int | None, body: bytes, whole: bool = True) -> None:
        """The live answer: the model's status (None when it gave none) and the body sent
        (`whole` False: only its first bytes, the answer was streamed: too large to hold)."""
        if not self._done and self.live_side is None:
            self.live_side = self._keep(status, body) if whole else Side(status, oversize=True)
            self._maybe_judge()

    def shadow(self, status: int | None, body: bytes) -> None:
        if not self._done and self.shadow_side is None:
            self.shadow_side = self._keep(status, body)
            if self.live_side is None:  # the live answer may never come: bound the wait
                self._timer = asyncio.get_running_loop().call_later(LIVE_WAIT_S, self.expire)
            self._maybe_judge()

    def expire(self) -> None:
        """The other answer did not come in time: judge with what there is."""
        if not self._done:
            self._done = True
            self._owner.judge(self)

    def _keep(self, status: int | None, body: bytes) -> Side:
        if status is None or not 200 <= status < 300:
            return Side(status)  # error bodies are never compared, so never held
        if len(body) > self._owner.settings.max_body_bytes:
            return Side(status, oversize=True)
        self.held += len(body)
        self._owner.hold(self.key, len(body))
        return Side(status, body)

    def _maybe_judge(self) -> None:
        if self.live_side is not None and self.shadow_side is not None:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()
            self._owner.queue(self)


class Comparisons:
    """Samples mirror copies for comparison, judges them, and keeps counts and mismatches."""

    def __init__(self, settings: CompareSettings = CompareSettings(),
                 metrics_enabled: bool = True) -> None:
        self.settings = settings
        self._metrics = metrics_enabled
        self._counts: dict[Key, dict[str, int]] = {}
        self._skipped: dict[Key, int] = {}
        self._mismatches: dict[Key, MismatchLog] = {}
        self._pending = 0
        self._pending_bytes: dict[Key, int] = {}
        self._watched: set[str] = set()
        self._ready: list[Pairing] = []  # both answers in, judged at the next loop turn
        self._outcome_counters: dict[tuple[Key, str], Counter] = {}  # metric children, by labels
        self._difference_histograms: dict[Key, Histogram] = {}

    def start(self, endpoint: str, deployment: str, request_id: str,
              draw: float) -> Pairing | None:
        """A pairing for this copy when it is sampled (`draw` uniform in [0, 1)), else None."""
        if draw * 100.0 >= self.settings.sample_percent:
            return None
        key = (endpoint, deployment)
        self._counts_of(key)
        if self._pending >= self.settings.max_pending:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        self._pending += 1
        return Pairing(self, key, request_id)

    def counts(self, endpoint: str, deployment: str) -> dict[str, int]:
        """Comparisons so far by outcome (a copy: callers diff two reads over a window)."""
        return dict(self._counts.get((endpoint, deployment)) or dict.fromkeys(OUTCOMES, 0))

    def keys(self) -> list[Key]:
        """The deployments compared so far."""
        return list(self._counts)

    def report(self, endpoint: str, deployment: str) -> ComparisonReport:
        key = (endpoint, deployment)
        counts = self.counts(endpoint, deployment)
        log = self._mismatches.get(key)
        settings = self.settings
        return ComparisonReport(
            endpoint, deployment, counts, self._skipped.get(key, 0), agreement_rate(counts),
            self._pending_bytes.get(key, 0) + (log.bytes if log else 0),
            settings.pending_memory_limit + settings.memory_limit_per_deployment, settings,
            log.newest_first() if log else ())

    def memory_bytes(self, endpoint: str) -> int:
        """Body bytes held for `endpoint`: answers waiting for their pair, and kept pairs."""
        held = sum(n for (e, _), n in self._pending_bytes.items() if e == endpoint)
        return held + sum(log.bytes for (e, _), log in self._mismatches.items() if e == endpoint)

    def hold(self, key: Key, size: int) -> None:
        self._pending_bytes[key] = self._pending_bytes.get(key, 0) + size

    def queue(self, pairing: Pairing) -> None:
        """Judge `pairing` at the next loop turn, with the others that are ready by then."""
        if not self._ready:
            asyncio.get_running_loop().call_soon(self._judge_ready)
        self._ready.append(pairing)

    def _judge_ready(self) -> None:
        ready, self._ready = self._ready, []
        for pairing in ready:
            self.judge(pairing)

    def judge(self, pairing: Pairing) -> None:
        key = pairing.key
        self._pending -= 1
        if pairing.held:
            self._pending_bytes[key] -= pairing.held
        live = pairing.live_side or Side(None)
        shadow = pairing.shadow_side or Side(None)
        verdict = compare_answers(live, shadow, self.settings)
        self._counts_of(key)[verdict.outcome] += 1
        if self._metrics:
            self._count_metric(key, verdict.outcome, verdict.relative_difference)
        if verdict.outcome == MISMATCH:
            self._log_of(key).add(self._pair(pairing.request_id, live, shadow, verdict.reason,
                                             verdict.relative_difference))

    def _count_metric(self, key: Key, outcome: str, difference: float | None) -> None:
        counter = self._outcome_counters.get((key, outcome))
        if counter is None:
            counter = self._outcome_counters[(key, outcome)] = \
                metrics.MIRROR_COMPARISONS.labels(*key, outcome)
        counter.inc()
        if difference is not None:
            histogram = self._difference_histograms.get(key)
            if histogram is None:
                histogram = self._difference_histograms[key] = \
                    metrics.MIRROR_DIFFERENCE.labels(*key)
            histogram.observe(difference)

    def _pair(self, request_id: str, live: Side, shadow: Side, reason: str,
              difference: float | None) -> MismatchPair:
        limit = self.settings.stored_body_bytes
        live_cut, shadow_cut = live.body[:limit], shadow.body[:limit]
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        return MismatchPair(request_id, at.replace("+00:00", "Z"), live.status,
                            live_cut.decode("utf-8", "replace"), shadow.status,
                            shadow_cut.decode("utf-8", "replace"), reason[:300], difference,
                            len(live_cut) + len(shadow_cut))

    def _counts_of(self, key: Key) -> dict[str, int]:
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = dict.fromkeys(OUTCOMES, 0)
            self._watch(key[0])
        return counts

    def _log_of(self, key: Key) -> MismatchLog:
        log = self._mismatches.get(key)
        if log is None:
            log = self._mismatches[key] = MismatchLog(self.settings.keep_mismatches)
        return log

    def _watch(self, endpoint: str) -> None:
        if self._metrics and endpoint not in self._watched:
            self._watched.add(endpoint)
            metrics.MIRROR_COMPARE_BYTES.labels(endpoint).set_function(
                lambda: float(self.memory_bytes(endpoint)))
