"""`scoregate online-endpoint evaluate`: score labelled rows on each deployment and compare.

Every deployment gets the same rows (one request per `--batch-size` rows) through the
`azureml-model-deployment` header, on the endpoint's scoring URI with its key or token, so
the comparison covers the whole path a client uses. A deployment never gets more requests at
once than `max_concurrent_requests_per_instance × instance_count` (what it takes without
queueing or answering 429, so latencies are the model's), and all of them together no more
than `--concurrency`. The traffic suggestion follows SageMaker's 1:1 → 1:3 → 0:1 shift; the
rule is in docs/evaluate.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from control_plane.cli import output as cli_output
from control_plane.cli.client import INVOKE_TIMEOUT_S, URL_ENV, AdminClient, Raw, scoring_target
from control_plane.errors import ScoregateError
from control_plane.specs.labelled import LabelledData, read_csv, read_predictions, request_body
from control_plane.specs.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    Label,
    as_label,
    check_pos_label,
    compute,
    default_metric,
    percentile,
)

FORMATS = ("azure", "mlflow")
STEPS = (50, 75, 100)  # the winner's share after each suggestion: 1:1, then 1:3, then 0:1


# --- what to score where ----------------------------------------------------------------------

@dataclass(frozen=True)
class Deployment:
    name: str
    capacity: int  # requests it takes at once without queueing


@dataclass(frozen=True)
class Target:
    endpoint: str
    scoring_uri: str
    secret: str
    deployments: tuple[Deployment, ...]
    traffic: dict[str, int]
    mirror: dict[str, int]


def find_target(client: AdminClient, endpoint: str, wanted: Sequence[str]) -> Target:
    shown, secret = scoring_target(client, endpoint)
    listed = client.call("GET", f"/v1/endpoints/{endpoint}/deployments")
    known = {item["name"]: Deployment(item["name"], _capacity(item)) for item in listed}
    if not known:
        raise ScoregateError(f"endpoint {endpoint} has no deployments to evaluate")
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ScoregateError(f"unknown deployment {unknown[0]!r} of endpoint {endpoint} "
                             f"(its deployments: {', '.join(known)})")
    chosen = tuple(known[name] for name in wanted) or tuple(known.values())
    return Target(endpoint, shown["scoring_uri"], secret, chosen, dict(shown["traffic"]),
                  dict(shown.get("mirror_traffic") or {}))


def _capacity(deployment: dict[str, Any]) -> int:
    per_instance = (deployment.get("request_settings") or {}).get(
        "max_concurrent_requests_per_instance", 1)
    instances = max(int(deployment.get("instance_count") or 1), len(deployment.get("urls") or ()))
    return max(1, int(per_instance) * instances)


# --- scoring ----------------------------------------------------------------------------------

class Progress:
    """A `\\r` bar on a terminal; otherwise a line at each tenth, so logs stay readable."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.done, self.errors = total, stream, 0, 0
        self.tty = stream.isatty()
        self._shown_tenth = 0
        self._shown_at = 0.0

    def advance(self, failed: bool) -> None:
        self.done += 1
        self.errors += failed
        if self.tty:
            now = time.monotonic()
            if now - self._shown_at >= 0.1 or self.done == self.total:
                self._shown_at = now
                filled = 30 * self.done // self.total
                self.stream.write(f"\rscoring [{'#' * filled}{'.' * (30 - filled)}] "
                                  f"{self.done}/{self.total} requests, {self.errors} errors")
                self.stream.flush()
        elif 10 * self.done // self.total > self._shown_tenth:
            self._shown_tenth = 10 * self.done // self.total
            self.stream.write(f"scoring: {self.done}/{self.total} requests "
                              f"({100 * self.done // self.total}%), {self.errors} errors\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class _Tally:
    """One deployment's answers, filled in by its workers (one event loop, no locks needed)."""

    def __init__(self, rows: int) -> None:
        self.predictions: list[Label | None] = [None] * rows
        self.latencies_ms: list[float] = []
        self.errors = 0
        self.first_error: str | None = None


@dataclass(frozen=True)
class Plan:
    data: LabelledData
    batch_size: int
    fmt: str
    concurrency: int
    numeric: bool  # predictions must be numbers (rmse, mae)

    def batches(self) -> list[tuple[int, int]]:
        size = len(self.data.rows)
        return [(start, min(start + self.batch_size, size))
                for start in range(0, size, self.batch_size)]


async def score_all(target: Target, plan: Plan, progress: Progress) -> dict[str, _Tally]:
    tallies = {d.name: _Tally(len(plan.data.rows)) for d in target.deployments}
    limit = asyncio.Semaphore(plan.concurrency)
    limits = httpx.Limits(max_connections=plan.concurrency,
                          max_keepalive_connections=plan.concurrency)
    async with httpx.AsyncClient(timeout=INVOKE_TIMEOUT_S, limits=limits) as http:
        workers = []
        for deployment in target.deployments:
            batches = iter(plan.batches())  # shared by this deployment's workers
            workers += [_worker(http, target, deployment.name, plan, batches,
                                tallies[deployment.name], limit, progress)
                        for _ in range(min(deployment.capacity, plan.concurrency))]
        await asyncio.gather(*workers)
    return tallies


async def _worker(http: httpx.AsyncClient, target: Target, deployment: str, plan: Plan,
                  batches: Iterator[tuple[int, int]], tally: _Tally, limit: asyncio.Semaphore,
                  progress: Progress) -> None:
    headers = {"Authorization": f"Bearer {target.secret}", "Content-Type": "application/json",
               "azureml-model-deployment": deployment}
    for start, stop in batches:
        body = request_body(plan.data, start, stop, plan.fmt)
        async with limit:
            began = time.perf_counter()
            try:
                response = await http.post(target.scoring_uri, content=body, headers=headers)
                failure = None if response.is_success else \
                    f"HTTP {response.status_code}: {response.text.strip()[:200]}"
            except httpx.HTTPError as error:
                failure = f"{type(error).__name__}: {error}"
            elapsed_ms = (time.perf_counter() - began) * 1000
        if failure is None:
            try:
                tally.predictions[start:stop] = read_predictions(response.content, stop - start,
                                                                 plan.numeric)
                tally.latencies_ms.append(elapsed_ms)
            except ValueError as error:
                failure = str(error)
        if failure is not None:
            tally.errors += 1
            tally.first_error = tally.first_error or failure
        progress.advance(failure is not None)


# --- results and the traffic suggestion -------------------------------------------------------

@dataclass(frozen=True)
class Result:
    deployment: str
    value: float | None  # the metric over the rows it scored; None when it scored none
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    errors: int  # failed requests
    requests: int
    rows_scored: int
    first_error: str | None


def summarize(name: str, tally: _Tally, labels: Sequence[Label], metric: str,
              pos_label: Label | None, requests: int) -> Result:
    scored = [(t, p) for t, p in zip(labels, tally.predictions, strict=False) if p is not None]
    value = compute(metric, [t for t, _ in scored], [p for _, p in scored], pos_label) \
        if scored else None
    lat = tally.latencies_ms
    return Result(name, value, round(percentile(lat, 50), 2) if lat else None,
                  round(percentile(lat, 99), 2) if lat else None, tally.errors, requests,
                  len(scored), tally.first_error)


def rank(results: Sequence[Result], metric: str) -> list[Result]:
    """Best first: fewer rows failed first, then the better metric."""
    return sorted(results, key=lambda result: _rank_key(result, metric))


def _rank_key(result: Result, metric: str) -> tuple[int, float]:
    if result.value is None:
        return (0, float("inf"))
    return (-result.rows_scored, -result.value if HIGHER_IS_BETTER[metric] else result.value)


@dataclass(frozen=True)
class Suggestion:
    reason: str
    traffic: dict[str, int] | None = None
    command: str | None = None


def suggest_traffic(target: Target, ranked: Sequence[Result], metric: str) -> Suggestion:
    if len(ranked) < 2:
        return Suggestion("evaluate at least two deployments to get a traffic suggestion")
    best, second = ranked[0], ranked[1]
    if best.value is None:
        return Suggestion("no deployment answered; nothing to suggest")
    if _rank_key(best, metric) == _rank_key(second, metric):
        return Suggestion(f"{best.deployment} and {second.deployment} tie; "
                          "keep the current traffic")
    current = target.traffic.get(best.deployment, 0)
    step = next((share for share in STEPS if share > current), None)
    if step is None:
        return Suggestion(f"{best.deployment} is best and has all live traffic already")
    donors = {name: weight for name, weight in target.traffic.items()
              if name != best.deployment and weight > 0} or {second.deployment: 1}
    traffic = {name: 0 for name in target.traffic}
    traffic.update(_apportion(100 - step, donors))
    traffic[best.deployment] = step
    text = " ".join(f"{name}={share}" for name, share in traffic.items())
    command = f'scoregate online-endpoint update --name {target.endpoint} --traffic "{text}"'
    mirrored = [name for name, share in target.mirror.items() if share > 0 and traffic.get(name)]
    if mirrored:  # a deployment cannot take live and mirror traffic at once
        command += f' --mirror-traffic "{mirrored[0]}=0"'
    return Suggestion(f"{best.deployment} is best by {metric} with fewest errors: "
                      f"{current}% → {step}% of live traffic", traffic, command)


def _apportion(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Integer shares of `total` in proportion to `weights` (largest remainder, ties by order)."""
    whole = sum(weights.values())
    exact = {name: total * weight / whole for name, weight in weights.items()}
    shares = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: shares[name] - exact[name])
    for name in by_remainder[:total - sum(shares.values())]:
        shares[name] += 1
    return shares


# --- the command ------------------------------------------------------------------------------

def run(client: AdminClient, args: argparse.Namespace) -> Any:
    data = read_csv(args.data, args.label_column)
    metric = args.metric or default_metric(data.labels)
    numeric = metric in ("rmse", "mae")
    if numeric:
        text = next((label for label in data.labels if isinstance(label, str)), None)
        if text is not None:
            raise ScoregateError(f"{metric} needs numeric labels, but column "
                                 f"{args.label_column!r} holds {text!r}")
    pos_label = _pos_label(args.pos_label, metric, data.labels)
    wanted = list(dict.fromkeys(name.strip() for name in (args.deployments or "").split(",")
                                if name.strip()))
    target = find_target(client, args.name, wanted)
    plan = Plan(data, args.batch_size, args.format, args.concurrency, numeric)
    progress = Progress(len(plan.batches()) * len(target.deployments), sys.stderr)
    try:
        tallies = asyncio.run(score_all(target, plan, progress))
    finally:
        progress.close()
    results = [summarize(name, tally, data.labels, metric, pos_label, len(plan.batches()))
               for name, tally in tallies.items()]
    report = _report(target, plan, metric, results, args.suggest_traffic)
    if args.output == "table" and not args.query:
        return Raw(_table(report))
    return report


def _pos_label(text: str | None, metric: str, labels: Sequence[Label]) -> Label | None:
    if text is None:
        return None
    if metric != "f1":
        raise ScoregateError(f"--pos-label applies to --metric f1 only, not {metric}")
    label = as_label(text)
    check_pos_label(labels, label)
    return label


def _report(target: Target, plan: Plan, metric: str, results: list[Result],
            suggest: bool) -> dict[str, Any]:
    report: dict[str, Any] = {
        "endpoint": target.endpoint, "metric": metric,
        "higher_is_better": HIGHER_IS_BETTER[metric], "rows": len(plan.data.rows),
        "batch_size": plan.batch_size, "format": plan.fmt,
        "deployments": [{"deployment": r.deployment, metric: r.value,
                         "latency_p50_ms": r.latency_p50_ms, "latency_p99_ms": r.latency_p99_ms,
                         "errors": r.errors, "requests": r.requests,
                         "rows_scored": r.rows_scored, "first_error": r.first_error}
                        for r in results],
    }
    if suggest:
        ranked = rank(results, metric)
        suggestion = suggest_traffic(target, ranked, metric)
        report["suggestion"] = {"best": ranked[0].deployment if suggestion.traffic else None,
                                "reason": suggestion.reason, "traffic": suggestion.traffic,
                                "command": suggestion.command}
    return report


def _table(report: dict[str, Any]) -> str:
    metric = report["metric"]
    rows = [{"deployment": d["deployment"],
             metric: "-" if d[metric] is None else f"{d[metric]:.4f}",
             "p50 ms": d["latency_p50_ms"] or "-", "p99 ms": d["latency_p99_ms"] or "-",
             "errors": d["errors"], "rows scored": f"{d['rows_scored']}/{report['rows']}"}
            for d in report["deployments"]]
    better = "higher" if report["higher_is_better"] else "lower"
    lines = [f"endpoint {report['endpoint']}: {metric} ({better} is better), "
             f"{report['rows']} rows, {report['batch_size']} per request", "",
             cli_output.render(rows, "table")]
    lines += [f"{d['deployment']}: first error: {d['first_error']}"
              for d in report["deployments"] if d["first_error"]]
    suggestion = report.get("suggestion")
    if suggestion:
        lines += ["", f"suggestion: {suggestion['reason']}"]
        if suggestion["command"]:
            lines.append(suggestion["command"])
    return "\n".join(lines)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def add_command(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Its own `-o` (default `table`): the shared parent's default is json, and argparse
    would change a shared action's default for every command."""
    sub = verbs.add_parser("evaluate", help="score labelled data on each deployment and compare")
    sub.add_argument("-n", "--name", required=True, help="endpoint name")
    sub.add_argument("--data", required=True, help="CSV with a header line and a label column")
    sub.add_argument("--label-column", required=True, help="the column with the true labels")
    sub.add_argument("--deployments", help="comma-separated (default: all of the endpoint's)")
    sub.add_argument("--metric", choices=METRICS,
                     help="default: accuracy for categorical labels, else rmse")
    sub.add_argument("--pos-label", help="f1's positive class (default: the larger label)")
    sub.add_argument("--batch-size", type=_positive, default=1, help="rows per request")
    sub.add_argument("--format", choices=FORMATS, default="azure",
                     help='azure: {"data": rows}; mlflow: {"input_data": {"columns", "data"}}')
    sub.add_argument("--concurrency", type=_positive, default=4,
                     help="requests in flight at most, all deployments together (default 4)")
    sub.add_argument("--suggest-traffic", action="store_true",
                     help="propose the next traffic split (50 → 75 → 100 for the best)")
    sub.add_argument("--url", help=f"admin API URL (default ${URL_ENV}, else "
                                    "$SCOREGATE_HOME/server.json)")
    sub.add_argument("-o", "--output", choices=cli_output.FORMATS, default="table")
    sub.add_argument("--query", help="JMESPath query applied to the JSON result")
    sub.set_defaults(run=run)
