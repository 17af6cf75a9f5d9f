"""The batch histograms: what a batching instance's headers become, and what is ignored."""

from __future__ import annotations

from prometheus_client import REGISTRY

from gateway.telemetry.metrics import BATCH_SIZE_HEADER, BATCH_WAIT_HEADER, Recorder


def _sample(name: str, deployment: str, **extra: str) -> float:
    labels = {"endpoint": "batch-metrics", "deployment": deployment, **extra}
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_size_and_wait_are_observed_per_deployment() -> None:
    recorder = Recorder("batch-metrics", "recorded", "live")
    recorder.batched(((BATCH_SIZE_HEADER, b"12"), (BATCH_WAIT_HEADER, b"3.500")))
    recorder.batched(((BATCH_SIZE_HEADER, b"4"), (BATCH_WAIT_HEADER, b"10.000")))
    assert _sample("scoregate_batch_size_count", "recorded") == 2
    assert _sample("scoregate_batch_size_sum", "recorded") == 16
    assert _sample("scoregate_batch_size_bucket", "recorded", le="4.0") == 1
    assert _sample("scoregate_batch_size_bucket", "recorded", le="12.0") == 2
    assert _sample("scoregate_batch_wait_seconds_sum", "recorded") == 0.0135
    # The live and direct recorders of a deployment share its series.
    Recorder("batch-metrics", "recorded", "direct").batched(((BATCH_SIZE_HEADER, b"1"),))
    assert _sample("scoregate_batch_size_count", "recorded") == 3
    assert _sample("scoregate_batch_wait_seconds_count", "recorded") == 2


def test_values_that_are_not_numbers_are_ignored() -> None:
    recorder = Recorder("batch-metrics", "garbled", "live")
    recorder.batched(((BATCH_SIZE_HEADER, b"many"), (BATCH_WAIT_HEADER, b"1")))
    recorder.batched(((BATCH_SIZE_HEADER, b"2"), (BATCH_WAIT_HEADER, b"soon")))
    recorder.batched(((BATCH_SIZE_HEADER, b"-3"), (BATCH_WAIT_HEADER, b"-1")))
    assert _sample("scoregate_batch_size_count", "garbled") == 0
    assert _sample("scoregate_batch_wait_seconds_count", "garbled") == 0
