"""`scoregate serve`: run the scoring listener, the admin listener and the managed instances.

Lifecycle, in order: lock the state directory → bind both listeners → open the store → apply
the YAML given (declaratively, saying what changed) → start the managed instances and publish
the first snapshot at once (every ready deployment serves now; the others join as their
instances become ready) → follow the deployment operations in progress (those the YAML
started, or a stop interrupted) → announce (URLs, server.json) → serve. With YAML given, the
announcement waits, as `create` does, until the operations it started ended (each bounded by its
deployment's probe budget); without, nothing waits: a restart serves at once and decides the
rest in the background.
SIGINT/SIGTERM: stop accepting, let requests in flight finish, stop the admin listener,
then stop every instance. SIGHUP: apply the YAML given at start again (declaratively, nothing
restarts that did not change). SIGUSR1: logged, no log file to reopen. The signal handlers only
record the signal; `_run` and `_reload_on_hangup` act on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from control_plane.admin.token import load_admin_token
from control_plane.autodeploy import STORE_EXTENSION as AUTODEPLOY_EXTENSION
from control_plane.autodeploy import AutoDeploy
from control_plane.autoscaling import STORE_EXTENSION as AUTOSCALING_EXTENSION
from control_plane.autoscaling import Autoscaler
from control_plane.compare_flags import add_compare_arguments, compare_from_args
from control_plane.environments import gc as environment_gc
from control_plane.environments import rows as environment_rows
from control_plane.environments.builder import Builder
from control_plane.environments.deployments import DeploymentEnvironments
from control_plane.environments.service import EnvironmentService
from control_plane.errors import ScoregateError
from control_plane.events import STORE_EXTENSION as EVENTS_EXTENSION
from control_plane.events import (
    DeliveryPolicy,
    Dispatcher,
    EventSubscriptions,
    Retention,
    parse_age,
)
from control_plane.home import StateDir, default_home
from control_plane.instances import limits
from control_plane.instances.supervisor import Supervisor
from control_plane.registry import STORE_EXTENSION as REGISTRY_EXTENSION
from control_plane.registry import ModelRegistry
from control_plane.rollouts import rows as rollout_rows
from control_plane.rollouts.engine import RolloutEngine
from control_plane.rollouts.events import RolloutEvents
from control_plane.rollouts.plan import check_request
from control_plane.runtime import STARTUP_SLACK_S, Runtime
from control_plane.specs import loader as yaml_loader
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.tasks import off_loop
from control_plane.workers import (
    MAX_WORKERS,
    FleetOptions,
    WorkerFleet,
    bind_port,
    default_workers,
)
from gateway import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SEND_TIMEOUT_S,
    RESERVED_FDS,
    CompareSettings,
    GatewayOptions,
    GatewaySettings,
    ListenerLimits,
    ScoringApp,
    SnapshotHolder,
    configure_logging,
    connection_cap,
    render_metrics,
    server_config,
)

_log = logging.getLogger("scoregate.serve")
DEFAULT_PORT = 8080
DEFAULT_ADMIN_PORT = 8081
ADMIN_MAX_CONNECTIONS = 32  # the operator's CLI and scrapers: few; inside RESERVED_FDS
GC_EVERY_S = 3600.0
_environments_log = logging.getLogger("scoregate.environments")
WORKERS_ENV = "SCOREGATE_WORKERS"  # the default of --workers, as uvicorn's WEB_CONCURRENCY


@dataclass(frozen=True)
class ServeOptions:
    sources: tuple[Path, ...] = ()
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    admin_host: str = "127.0.0.1"
    admin_port: int = DEFAULT_ADMIN_PORT
    home: Path = field(default_factory=default_home)
    log_format: str = "auto"
    metrics: bool = True
    metrics_on: str = "scoring"  # the listener that serves GET /metrics: scoring or admin
    access_log: bool = True
    settings: GatewaySettings = GatewaySettings()
    graceful_timeout_s: float = 30.0
    compare: CompareSettings = CompareSettings()
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S  # a request head must arrive within this
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S  # a body may not stall longer between bytes
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S  # an answer may not stall longer unread
    event_delivery: DeliveryPolicy = DeliveryPolicy()
    event_retention: Retention = Retention()
    environments: Path | None = None  # built environments (default <home>/environments)
    uv_cache: Path | None = None  # uv's package cache (default <home>/uv-cache)
    strict_python: bool = False  # refuse a nearest-newer interpreter instead of noting it
    environment_grace_s: float = environment_gc.DEFAULT_GRACE_S
    startup_slack_s: float = STARTUP_SLACK_S  # added to a deployment's probe budget
    workers: int = 1  # data-plane processes; 1: the scoring listener runs in this process


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="FOLDER",
                        help="folders whose endpoint and deployment YAML files are applied")
    parser.add_argument("-f", "--file", dest="files", action="append", type=Path, default=[],
                        help="an endpoint or deployment YAML file (repeatable)")
    parser.add_argument("--host", default="127.0.0.1", help="scoring listener address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="scoring listener port (0 picks a free one)")
    parser.add_argument("--admin-host", default="127.0.0.1", help="admin listener address")
    parser.add_argument("--admin-port", type=int, default=DEFAULT_ADMIN_PORT,
                        help="admin listener port (0 picks a free one)")
    parser.add_argument("--home", type=Path, default=None,
                        help="state directory (default $SCOREGATE_HOME or ~/.scoregate)")
    parser.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    parser.add_argument("--no-metrics", action="store_true", help="turn /metrics off")
    parser.add_argument("--metrics-on", choices=("scoring", "admin"), default="scoring",
                        help="the listener that serves GET /metrics (no credential on either: "
                             "admin keeps it off the network-facing port; docs/security.md)")
    parser.add_argument("--no-access-log", action="store_true", help="turn the access log off")
    parser.add_argument("--max-body-mb", type=float, default=100.0,
                        help="largest request body accepted (413 above)")
    parser.add_argument("--mirror-max-in-flight", type=int, default=64,
                        help="mirror copies in flight before new copies are dropped")
    parser.add_argument("--mirror-timeout-ms", type=int, default=10_000)
    add_compare_arguments(parser)
    parser.add_argument("--header-timeout-s", type=float, default=DEFAULT_HEADER_TIMEOUT_S,
                        help="close connections whose request head takes longer (slowloris)")
    parser.add_argument("--body-timeout-s", type=float, default=DEFAULT_BODY_TIMEOUT_S,
                        help="close connections whose request body sends no byte for this long "
                             "(408), like nginx's client_body_timeout")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="scoring connections open at once; past it the longest-idle one "
                             "is cut for a new one, or the new one closed when none is idle")
    parser.add_argument("--send-timeout-s", type=float, default=DEFAULT_SEND_TIMEOUT_S,
                        help="abort connections whose answer drains no byte for this long (a "
                             "client that stopped reading), like nginx's send_timeout")
    parser.add_argument("--workers", type=int, default=None,
                        help="data-plane processes sharing the scoring port (SO_REUSEPORT); "
                             f"1 serves in this process (default ${WORKERS_ENV}, else the "
                             f"number of cores, at most {MAX_WORKERS}; docs/workers.md)")
    parser.add_argument("--event-retention", default="7d",
                        help="keep events this long (90s, 30m, 2h, 7d; default 7d)")
    parser.add_argument("--event-retention-count", type=int, default=Retention.max_count,
                        help="keep at most this many events, the newest (default 100000)")
    parser.add_argument("--event-delivery-timeout-s", type=float,
                        default=DeliveryPolicy.timeout_s,
                        help="one delivery attempt to a subscriber may take this long")
    parser.add_argument("--event-first-retry-s", type=float,
                        default=DeliveryPolicy.first_retry_s,
                        help="wait after a failed delivery, doubled after each (up to 60 s)")
    parser.add_argument("--environments", type=Path, default=None,
                        help="where deployment environments are built (default "
                             "$SCOREGATE_ENVIRONMENTS or <home>/environments)")
    parser.add_argument("--uv-cache", type=Path, default=None,
                        help="uv's package cache (default $SCOREGATE_UV_CACHE or <home>/uv-cache; "
                             "on the same filesystem uv hard-links from it)")
    parser.add_argument("--strict-python", action="store_true",
                        help="refuse an environment whose Python minor version is not installed "
                             "(default: use the nearest newer one and say so in its status)")
    parser.add_argument("--environment-grace-hours", type=float,
                        default=environment_gc.DEFAULT_GRACE_S / 3600,
                        help="remove environments no deployment used for this long (default 168)")
    parser.add_argument("--startup-slack-s", type=float, default=STARTUP_SLACK_S,
                        help="seconds a create or update waits for readiness beyond what its "
                             "probes allow (start the interpreter, import, bind) before it "
                             f"fails (default {STARTUP_SLACK_S:g})")


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    if args.header_timeout_s <= 0 or args.body_timeout_s <= 0 or args.send_timeout_s <= 0 \
            or args.max_connections < 1:
        raise SystemExit("error: --header-timeout-s, --body-timeout-s and --send-timeout-s must "
                         "be above 0 and --max-connections at least 1")
    if not 0 <= args.startup_slack_s <= 86400:
        raise SystemExit(f"error: --startup-slack-s must be 0 to 86400, got "
                         f"{args.startup_slack_s:g}")
    try:
        retention_s = parse_age(args.event_retention)
    except ScoregateError as error:
        raise SystemExit(f"error: --event-retention: {error}") from None
    if (retention_s <= 0 or args.event_retention_count < 1
            or args.event_delivery_timeout_s <= 0 or args.event_first_retry_s <= 0):
        raise SystemExit("error: --event-retention, --event-delivery-timeout-s and "
                         "--event-first-retry-s must be above 0, --event-retention-count at "
                         "least 1")
    return ServeOptions(
        workers=_workers(args.workers),
        sources=tuple(args.paths) + tuple(args.files),
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        home=args.home or default_home(),
        log_format=args.log_format,
        metrics=not args.no_metrics,
        metrics_on=args.metrics_on,
        access_log=not args.no_access_log,
        compare=compare_from_args(args),
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        max_connections=args.max_connections,
        send_timeout_s=args.send_timeout_s,
        event_delivery=DeliveryPolicy(timeout_s=args.event_delivery_timeout_s,
                                      first_retry_s=args.event_first_retry_s),
        event_retention=Retention(max_age_s=retention_s,
                                  max_count=args.event_retention_count),
        environments=args.environments,
        uv_cache=args.uv_cache,
        strict_python=args.strict_python,
        environment_grace_s=args.environment_grace_hours * 3600,
        startup_slack_s=args.startup_slack_s,
        settings=GatewaySettings(
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            mirror_max_in_flight=args.mirror_max_in_flight,
            mirror_timeout_s=args.mirror_timeout_ms / 1000.0,
        ),
    )


def _workers(given: int | None) -> int:
    if given is None:
        text = os.environ.get(WORKERS_ENV, "").strip()
        if not text:
            return default_workers()
        try:
            given = int(text)
        except ValueError:
            raise SystemExit(f"error: ${WORKERS_ENV} must be a whole number, got {text!r}") \
                from None
    if not 1 <= given <= 64:
        raise SystemExit(f"error: --workers must be from 1 to 64, got {given}")
    return given


def main(args: argparse.Namespace) -> int:
    """Entry point of `scoregate serve`; returns the process exit code."""
    options = options_from_args(args)
    try:
        import uvloop
    except ImportError as exc:  # named explicitly: a missing uvloop must fail loudly
        raise SystemExit(f"scoregate serve needs uvloop: {exc}") from exc
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(options))


async def serve(options: ServeOptions) -> int:
    state_dir = StateDir(options.home)
    try:
        state_dir.ensure()
        lock = state_dir.lock()  # before anything in the state directory is written
    except OSError as exc:
        print(f"error: cannot use the state directory {state_dir.path} ({exc.strerror}); make "
              "it writable for this user or give another --home", file=sys.stderr)
        return 1
    try:
        return await _serve_locked(state_dir, options)
    finally:
        lock.close()


async def _serve_locked(state_dir: StateDir, options: ServeOptions) -> int:
    _configure_logging(options.log_format)
    warning = state_dir.lost_state_warning()
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
        _log.warning("%s", warning)
    try:  # ports first: a start that cannot listen must not have changed the store
        listeners = _Listeners.bind(options)
    except ScoregateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:  # a state database this scoregate cannot open is one line on stderr, not a traceback
        runtime = Runtime(state_dir=state_dir, settings=options.settings,
                          startup_slack_s=options.startup_slack_s,
                          admin_token=load_admin_token(state_dir.path),
                          extensions=(rollout_rows.STORE_EXTENSION, REGISTRY_EXTENSION,
                                      EVENTS_EXTENSION, AUTODEPLOY_EXTENSION,
                                      AUTOSCALING_EXTENSION, environment_rows.STORE_EXTENSION))
    except ScoregateError as error:
        listeners.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        _start_registry(runtime)
        runtime.environments = _environments(runtime, options)
        if options.sources:
            _apply_sources(runtime, options.sources)
        return await _run(runtime, options, listeners)
    except ScoregateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        listeners.close()
        runtime.close()


@dataclass(frozen=True)
class _Listeners:
    """Both listening sockets, bound before the store is opened or the YAML applied."""

    scoring: socket.socket
    admin: socket.socket

    @classmethod
    def bind(cls, options: ServeOptions) -> _Listeners:
        # With workers, this socket only holds the port (bound with SO_REUSEPORT, never
        # listening, so the kernel hands it no connection); each worker listens on its own.
        scoring = _bind(options.host, options.port, reuse_port=options.workers > 1)
        try:
            admin = _bind(options.admin_host, options.admin_port)
        except ScoregateError:
            scoring.close()
            raise
        return cls(scoring, admin)

    def close(self) -> None:
        self.scoring.close()
        self.admin.close()


def _start_registry(runtime: Runtime) -> None:
    """Before anything else touches the registry (this process alone writes the state folder
    now): drop what an interrupted create or delete left, then hand the registry over."""
    registry = ModelRegistry(runtime.store, runtime.state_dir.path)
    recovery = registry.recover()
    if recovery.temp_removed or recovery.orphans_removed:
        print(f"model registry: removed {recovery.temp_removed} interrupted copies and "
              f"{len(recovery.orphans_removed)} unregistered artifact folders", flush=True)
    for model in recovery.missing:
        print(f"model registry: the artifact of {model} is missing (deleted by hand?)",
              flush=True)
    runtime.attach_models(registry)


def _environments(runtime: Runtime, options: ServeOptions) -> DeploymentEnvironments:
    """The builder under the state folder (or where the options say), with builds a crash
    left behind removed first."""
    home = runtime.state_dir.path
    root = options.environments or _env_path("SCOREGATE_ENVIRONMENTS") or home / "environments"
    cache = options.uv_cache or _env_path("SCOREGATE_UV_CACHE") or home / "uv-cache"
    builder = Builder(root, cache)
    for folder in builder.recover():
        print(f"removed an unfinished environment build: {folder}", flush=True)
    return DeploymentEnvironments(builder, EnvironmentService(runtime.store),
                                  strict=options.strict_python,
                                  grace_s=options.environment_grace_s,
                                  conda_files=home / "conda-files")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


async def _collect_environments(environments: DeploymentEnvironments) -> None:
    """Every hour: remove the environments no deployment used for the grace period."""
    while True:
        try:
            removed = await off_loop(environment_gc.collect, environments.builder,
                                     environments.in_use, environments.grace_s)
        except OSError as error:
            _environments_log.warning("environment gc failed: %s", error)
        else:
            for key in removed:
                _environments_log.info("removed environment %s (unused for %.0f h)", key,
                                       environments.grace_s / 3600)
        await asyncio.sleep(GC_EVERY_S)


def _apply_sources(runtime: Runtime, sources: Sequence[Path]) -> None:
    endpoints: list[EndpointSpec] = []
    deployments: list[DeploymentSpec] = []
    for source in sources:
        if source.is_dir():
            found_endpoints, found_deployments = yaml_loader.load_folder(source)
            endpoints.extend(found_endpoints)
            deployments.extend(found_deployments)
        else:
            spec = yaml_loader.load_file(source)
            if isinstance(spec, DeploymentSpec):
                deployments.append(spec)
            else:
                endpoints.append(spec)
    if runtime.models is not None:  # references resolve, inline models register, as at create
        deployments = [runtime.models.bind(spec) for spec in deployments]
    if isinstance(runtime.environments, DeploymentEnvironments):  # conda files copied, as at create
        deployments = [runtime.environments.capture(spec) for spec in deployments]
    for line in runtime.store.apply(endpoints, deployments):
        print(line, flush=True)
    applied: list[EndpointSpec | DeploymentSpec] = [*endpoints, *deployments]
    for spec in applied:
        for line in yaml_loader.describe_not_applied(spec):
            print(line, flush=True)


async def _run(runtime: Runtime, options: ServeOptions, listeners: _Listeners) -> int:
    scoring_socket, admin_socket = listeners.scoring, listeners.admin
    scoring_url = _url(scoring_socket)
    admin_url = _url(admin_socket)
    holder = SnapshotHolder()
    scoring_app = ScoringApp(holder, GatewayOptions(metrics=options.metrics,
                                                    metrics_route=options.metrics_on == "scoring",
                                                    access_log=options.access_log,
                                                    compare=options.compare))
    limits = _limits(options)
    fleet = _fleet(options, scoring_socket, limits) if options.workers > 1 else None
    supervisor = Supervisor(
        log_root=runtime.state_dir.logs,
        on_change=runtime.publish,
        in_flight=scoring_app.in_flight if fleet is None else fleet.in_flight,
        memory_mb=_memory_limit_mb(),
    )
    runtime.attach(holder=holder, supervisor=supervisor, scoring_url=scoring_url,
                   scoring_app=scoring_app if fleet is None else fleet,
                   scoring_on_loopback=_is_loopback(scoring_socket))
    autoscaler = _autoscaler(runtime, scoring_app.demand if fleet is None else fleet.demand,
                             supervisor)

    from control_plane.admin.app import build_admin_app

    admin_metrics = _render_now if fleet is None else fleet.metrics
    admin_app = build_admin_app(runtime, admin_metrics if options.metrics_on == "admin" else None)
    scoring_server = _Server(server_config(scoring_app, limits, "scoring"))
    admin_server = _Server(server_config(
        admin_app, ListenerLimits(options.header_timeout_s, options.body_timeout_s,
                                  options.send_timeout_s, ADMIN_MAX_CONNECTIONS, 5.0), "admin"))

    stop = asyncio.Event()
    reload = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    loop.add_signal_handler(signal.SIGUSR1, _no_log_files_to_reopen)

    serving = [asyncio.create_task(admin_server.serve(sockets=[admin_socket]))]
    if fleet is None:
        serving.append(asyncio.create_task(scoring_server.serve(sockets=[scoring_socket])))
    else:
        runtime.attach_fleet(fleet)
        await fleet.start()
    reloader: asyncio.Task[None] | None = None
    collecting: asyncio.Task[None] | None = None
    dispatcher = Dispatcher(runtime.store, options.event_delivery, options.event_retention)
    try:
        await runtime.apply_change(build=False)  # never waits for an instance, nor a build
        await autoscaler.start()
        if isinstance(runtime.environments, DeploymentEnvironments):
            collecting = asyncio.create_task(_collect_environments(runtime.environments))
        await dispatcher.start()
        runtime.attach_events(EventSubscriptions(runtime.store,
                                                 dispatcher.subscriptions_changed))
        if not await _until_provisioned(runtime, wait=bool(options.sources), stop=stop):
            return 0  # stopped while the YAML's deployments were starting
        await _start_rollouts(runtime, scoring_app, options.metrics)
        await _start_autodeploy(runtime)
        runtime.state_dir.write_server_info(scoring_url=scoring_url, admin_url=admin_url)
        print(f"scoring listener: {scoring_url}"
              + (f" ({options.workers} workers)" if fleet is not None else ""), flush=True)
        print(f"admin listener:   {admin_url}", flush=True)
        print(f"state directory:  {runtime.state_dir.path}", flush=True)
        reloader = asyncio.create_task(_reload_on_hangup(runtime, options.sources, reload))
        done_early = asyncio.create_task(asyncio.wait(serving, return_when=asyncio.FIRST_COMPLETED))
        waiting_for_stop = asyncio.create_task(stop.wait())
        await asyncio.wait([done_early, waiting_for_stop], return_when=asyncio.FIRST_COMPLETED)
        done_early.cancel()
        waiting_for_stop.cancel()
    finally:
        print("stopping: finishing requests in flight", flush=True)
        if reloader is not None:
            reloader.cancel()
        scoring_server.should_exit = True
        admin_server.should_exit = True
        if fleet is not None:
            await fleet.close(options.graceful_timeout_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*serving, return_exceptions=True),
                                   options.graceful_timeout_s + 5)
        if runtime.autodeploy is not None:
            await runtime.autodeploy.close()  # runs stay stored at their stage; resumed at start
        if collecting is not None:
            collecting.cancel()
        if runtime.rollouts is not None:
            await runtime.rollouts.close()  # running rollouts stay stored; the next start resumes
        await runtime.stop_provisioning()  # before the instances stop: that is no verdict
        await autoscaler.close()  # decided counts stay stored; the next start runs them
        await dispatcher.close()  # undelivered events stay in the outbox; the next start sends
        await supervisor.close()
        runtime.state_dir.remove_server_info()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        print("stopped", flush=True)
    return 0


async def _render_now() -> tuple[bytes, str]:
    return render_metrics()


def _memory_limit_mb() -> int | None:
    return limits.parse_memory_mb(os.environ.get(limits.ENV_VAR))


def _limits(options: ServeOptions) -> ListenerLimits:
    return ListenerLimits(options.header_timeout_s, options.body_timeout_s,
                          options.send_timeout_s, _scoring_connection_cap(options.max_connections),
                          options.graceful_timeout_s)


def _fleet(options: ServeOptions, scoring_socket: socket.socket,
           limits: ListenerLimits) -> WorkerFleet:
    host, port = scoring_socket.getsockname()[:2]
    return WorkerFleet(FleetOptions(
        workers=options.workers, host=host, port=port, log_format=_log_format(options.log_format),
        metrics=options.metrics, metrics_route=options.metrics_on == "scoring",
        access_log=options.access_log, compare=options.compare, limits=limits))


async def _reload_on_hangup(runtime: Runtime, sources: Sequence[Path],
                            requested: asyncio.Event) -> None:
    """SIGHUP (recorded by its handler in `requested`): apply the YAML `serve` was started
    with again, declaratively, as at start; only what changed is touched, so requests in
    flight and unchanged instances carry on. A YAML error is printed and the server keeps
    what it has."""
    while True:
        await requested.wait()
        requested.clear()
        if not sources:
            print("SIGHUP: serve was started without YAML; nothing to reload", flush=True)
            continue
        print("SIGHUP: applying the YAML again", flush=True)
        try:
            await asyncio.to_thread(_apply_sources, runtime, sources)
            await runtime.apply_change()
            await runtime.resume_provisioning()  # follow what it created or changed
        except ScoregateError as error:
            print(f"SIGHUP: reload refused, nothing changed: {error}", file=sys.stderr,
                  flush=True)


def _no_log_files_to_reopen() -> None:
    """SIGUSR1 (logrotate's "reopen your logs"): serve logs to stderr and instance logs are
    rotated by scoregate itself, so there is no file to reopen; said, not fatal (SIGUSR1's
    default action would end the server)."""
    print("SIGUSR1: no log files to reopen (serve logs to stderr; instance logs rotate "
          "themselves)", flush=True)


async def _until_provisioned(runtime: Runtime, wait: bool, stop: asyncio.Event) -> bool:
    """Follow the operations in progress; with `wait`, until they ended (one line each) or a
    stop signal came (False): a slow `init()` in the YAML never makes serve deaf to SIGTERM."""
    resumed = asyncio.create_task(runtime.resume_provisioning(wait=wait))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([resumed, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not resumed.done():
        resumed.cancel()
        return False
    if wait:
        for key in resumed.result():
            print(runtime.provisioning_line(key), flush=True)
    return True


def _serving(scoring_app: ScoringApp, endpoint: str, deployment: str) -> bool:
    """Whether the published snapshot has a ready instance of this deployment (with workers,
    the control plane's holder has the snapshot every worker acknowledged or is applying)."""
    route = scoring_app.holder.current.endpoints.get(endpoint)
    found = route.deployments.get(deployment) if route is not None else None
    return found is not None and bool(found.instances)


async def _start_rollouts(runtime: Runtime, scoring_app: ScoringApp, metrics_enabled: bool) -> None:
    """Once the first snapshot is out: build the engine, hand it to the admin API (through the
    runtime) and carry on the rollouts a restart interrupted."""
    subscriptions = runtime.events  # a rollout's --webhook becomes one of its subscriptions
    subscriber = subscriptions.subscribe_in if subscriptions is not None else None
    comparing = runtime.scoring_app  # the scoring app, or the workers' summed comparisons
    engine = RolloutEngine(runtime.store, runtime.apply_change, RolloutEvents(subscriber),
                           comparisons=comparing.comparison_counts if comparing else None,
                           metrics_enabled=metrics_enabled,
                           serving=functools.partial(_serving, scoring_app))
    runtime.attach_rollouts(engine)
    await engine.resume_all()


async def _start_autodeploy(runtime: Runtime) -> None:
    """Once rollouts run: auto-deploy meets the rollout engine, the registry and the runtime
    here (it imports none of them), then carries on the runs a restart interrupted."""
    if runtime.rollouts is None or runtime.models is None:
        return
    autodeploy = AutoDeploy(runtime.store, runtime, runtime.rollouts, runtime.models,
                            check_rollout=check_request)
    runtime.attach_autodeploy(autodeploy)
    await autodeploy.start()


def _autoscaler(runtime: Runtime, demand: Callable[[str, str], int],
                supervisor: Supervisor) -> Autoscaler:
    """Built before the first snapshot, its stored counts read, so a restart runs each
    autoscaled deployment at the count last decided. It measures the data plane in memory and
    holds scale-ins while a rollout step bakes on the deployment."""
    store = runtime.store

    def ready(key: str) -> int:
        return len(supervisor.ready_instances().get(key, ()))

    def baking(endpoint: str, deployment: str) -> bool:
        return store.feature_read(functools.partial(rollout_rows.baking_on, endpoint=endpoint,
                                                    deployment=deployment))

    autoscaler = Autoscaler(store, demand, ready, runtime.scale_deployment, baking)
    autoscaler.recover()
    runtime.attach_autoscaler(autoscaler)
    return autoscaler


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve`, which runs two servers in one loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _scoring_connection_cap(requested: int) -> int:
    """--max-connections, lowered (and said so, once) when the descriptor limit is too low
    to hold that many client connections with their upstream ones."""
    cap, limit = connection_cap(requested)
    if cap < requested:
        print(f"warning: scoring connections capped at {cap}, not {requested}: RLIMIT_NOFILE "
              f"is {limit} (two per connection, {RESERVED_FDS} kept for the admin listener "
              "and instances); raise it with `ulimit -n`", flush=True)
    return cap


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    try:
        sock = bind_port(host, port, reuse_port)
    except OSError as exc:
        raise ScoregateError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    if not reuse_port:
        sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _is_loopback(sock: socket.socket) -> bool:
    """Whether the socket is bound to a loopback address (127.0.0.0/8, ::1) only."""
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _log_format(log_format: str) -> str:
    if log_format == "auto":
        return "console" if sys.stderr.isatty() else "json"
    return log_format


def _configure_logging(log_format: str) -> None:
    configure_logging(_log_format(log_format))

