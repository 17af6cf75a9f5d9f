"""`scoregate`: the verbs of `az ml online-endpoint|online-deployment`, plus `serve`.

The CLI runs on the server's machine, so it reads YAML itself with `yaml_loader` (paths
resolve against each file's folder, `--name` / `--endpoint-name` override the file's) and
sends the resulting spec as JSON to the admin API. It finds the server through `--url`,
`SCOREGATE_URL` or `$SCOREGATE_HOME/server.json`, and the token through
`SCOREGATE_ADMIN_TOKEN` or `$SCOREGATE_HOME/admin_token`. User errors print one line on
stderr and exit 1 (argparse's usage errors exit 2); only this module turns errors into codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from control_plane.admin.token import ENV_VAR as TOKEN_ENV
from control_plane.admin.token import TOKEN_FILE
from control_plane.cli import output as cli_output
from control_plane.cli.rollouts import add_rollout_commands
from control_plane.errors import ScoregateError
from control_plane.home import StateDir, default_home
from control_plane.specs.resources import DeploymentSpec, EndpointSpec

URL_ENV = "SCOREGATE_URL"
ADMIN_TIMEOUT_S = 300.0  # a write waits until new instances are up and the snapshot published
INVOKE_TIMEOUT_S = 200.0  # above the largest request_timeout_ms (180 s)
_STRING_MAPS = ("environment_variables", "tags")  # --set values under these stay text
Command = Callable[["AdminClient", argparse.Namespace], Any]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        return _serve(args_list[1:])
    args = build_parser().parse_args(args_list)
    if args.command is None:
        build_parser().print_usage(sys.stderr)
        print("scoregate: error: choose online-endpoint, online-deployment or serve",
              file=sys.stderr)
        return 2
    try:
        with AdminClient.discover(args.url) as client:
            result = args.run(client, args)
        if isinstance(result, Raw):
            sys.stdout.write(result.text if result.text.endswith("\n") or not result.text
                             else result.text + "\n")
        elif result is not None:
            text = cli_output.render(cli_output.query(result, args.query), args.output)
            print(text)
        return 0
    except ScoregateError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(error: ScoregateError) -> str:
    text = " ".join(str(error).split())
    rule = getattr(error, "rule", None)
    return f"{text} [rule: {rule}]" if rule and f"rule: {rule}" not in text else text


@dataclass(frozen=True)
class Raw:
    """Text printed as it is (a model's answer, logs), whatever `-o` says."""

    text: str


# --- finding and calling the admin API ----------------------------------------------------

class AdminClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=ADMIN_TIMEOUT_S,
                                  headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def discover(cls, url: str | None) -> AdminClient:
        home = default_home()
        url = url or os.environ.get(URL_ENV)
        if not url:
            state_dir = StateDir(home)
            info = state_dir.read_server_info()
            url = info.get("admin_url") if info else None
            if not isinstance(url, str):
                raise ScoregateError(
                    f"no running scoregate server found ({state_dir.server_info} is missing); "
                    "start one with `scoregate serve`, or pass --url / set SCOREGATE_URL")
        return cls(url, _admin_token(home))

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.request(method, path, json=body, params=query)
        except httpx.TimeoutException:
            raise ScoregateError(f"the admin API at {self.url} did not answer within "
                                 f"{ADMIN_TIMEOUT_S:.0f} s") from None
        except httpx.HTTPError as error:
            raise ScoregateError(f"cannot reach the scoregate admin API at {self.url} ({error}); "
                                 "is `scoregate serve` running?") from None
        answer = _json_or_none(response)
        if response.is_success:
            return answer
        raise ScoregateError(_error_text(response, answer))


def _admin_token(home: Path) -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    try:
        token = (home / TOKEN_FILE).read_text().strip()
    except OSError:
        token = ""
    if not token:
        raise ScoregateError(f"no admin token: set {TOKEN_ENV} or start `scoregate serve` once "
                             f"with SCOREGATE_HOME={home} (it writes {home / TOKEN_FILE})")
    return token


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: httpx.Response, answer: Any) -> str:
    message = answer.get("message") if isinstance(answer, dict) else None
    text = message or f"HTTP {response.status_code}: {response.text.strip()[:200]}"
    if isinstance(answer, dict) and answer.get("rule"):
        text += f" [rule: {answer['rule']}]"
    if response.status_code == 401:
        text += f" (check {TOKEN_ENV} or $SCOREGATE_HOME/{TOKEN_FILE})"
    return text


# --- online-endpoint ------------------------------------------------------------------------

def _endpoint_path(args: argparse.Namespace, tail: str = "") -> str:
    return f"/v1/endpoints/{args.name}{tail}"


def endpoint_create(client: AdminClient, args: argparse.Namespace) -> Any:
    if args.file is not None:
        spec = _load(args.file, EndpointSpec, name=args.name).to_dict()
    elif args.name:
        spec = {"name": args.name}
    else:
        raise ScoregateError("give the endpoint's --name or a --file with its YAML")
    return client.call("POST", "/v1/endpoints", _with_sets(spec, args.set))


def endpoint_update(client: AdminClient, args: argparse.Namespace) -> Any:
    from control_plane.specs.validation import parse_traffic

    patch: dict[str, Any] = {}
    if args.file is not None:
        spec = _load(args.file, EndpointSpec, name=args.name)
        patch = {k: v for k, v in spec.to_dict().items() if k != "name" and v != {}}
    patch = _with_sets(patch, args.set)
    if args.traffic is not None:
        patch["traffic"] = parse_traffic(args.traffic)
    if args.mirror_traffic is not None:
        patch["mirror_traffic"] = parse_traffic(args.mirror_traffic)
    if not patch:
        raise ScoregateError("nothing to update: give --traffic, --mirror-traffic, --set or -f")
    return client.call("PATCH", _endpoint_path(args), patch)


def scoring_target(client: AdminClient, endpoint_name: str) -> tuple[dict[str, Any], str]:
    """The endpoint as `show` gives it, and a secret a client can score with (key or token)."""
    endpoint = client.call("GET", f"/v1/endpoints/{endpoint_name}")
    credentials = client.call("POST", f"/v1/endpoints/{endpoint_name}/get-credentials")
    return endpoint, str(credentials.get("primaryKey") or credentials.get("accessToken"))


def endpoint_invoke(client: AdminClient, args: argparse.Namespace) -> Raw:
    endpoint, secret = scoring_target(client, args.name)
    try:
        body = Path(args.request_file).read_bytes()
    except OSError as error:
        raise ScoregateError(f"cannot read --request-file {args.request_file}: "
                             f"{error.strerror or error}") from None
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if args.deployment_name:
        headers["azureml-model-deployment"] = args.deployment_name
    try:
        response = httpx.post(endpoint["scoring_uri"], content=body, headers=headers,
                              timeout=INVOKE_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise ScoregateError(f"cannot reach {endpoint['scoring_uri']}: {error}") from None
    if not response.is_success:
        raise ScoregateError(f"invoke failed with HTTP {response.status_code}: "
                             f"{response.text.strip()[:500]}")
    return Raw(response.text)


def endpoint_delete(client: AdminClient, args: argparse.Namespace) -> Any:
    _confirm(args, f"endpoint {args.name} and all its deployments")
    return client.call("DELETE", _endpoint_path(args))


# --- online-deployment ----------------------------------------------------------------------

def _deployment_path(args: argparse.Namespace, tail: str = "") -> str:
    return f"/v1/endpoints/{args.endpoint_name}/deployments/{args.name}{tail}"


def deployment_create(client: AdminClient, args: argparse.Namespace) -> Any:
    spec = _load(args.file, DeploymentSpec, name=args.name, endpoint_name=args.endpoint_name)
    body = _with_sets(spec.to_dict(), args.set)
    return client.call("POST", f"/v1/endpoints/{spec.endpoint_name}/deployments", body,
                       all_traffic="true" if args.all_traffic else None)


def deployment_update(client: AdminClient, args: argparse.Namespace) -> Any:
    patch: dict[str, Any] = {}
    if args.file is not None:
        spec = _load(args.file, DeploymentSpec, name=args.name, endpoint_name=args.endpoint_name)
        patch = {k: v for k, v in spec.to_dict().items() if k not in ("name", "endpoint_name")}
    patch = _with_sets(patch, args.set)
    if not patch:
        raise ScoregateError("nothing to update: give --set KEY=VALUE or -f")
    return client.call("PATCH", _deployment_path(args), patch)


def deployment_delete(client: AdminClient, args: argparse.Namespace) -> Any:
    _confirm(args, f"deployment {args.name} of endpoint {args.endpoint_name}")
    return client.call("DELETE", _deployment_path(args))


def deployment_logs(client: AdminClient, args: argparse.Namespace) -> Raw:
    return Raw(client.call("GET", _deployment_path(args, "/logs"), lines=args.lines)["logs"])


# --- shared steps ---------------------------------------------------------------------------

def _load(path: str, kind: type[Any], name: str | None,
          endpoint_name: str | None = None) -> Any:
    from control_plane.specs.loader import load_file

    spec = load_file(path, name=name, endpoint_name=endpoint_name)
    if not isinstance(spec, kind):
        found = "an endpoint" if isinstance(spec, EndpointSpec) else "a deployment"
        wanted = "an endpoint" if kind is EndpointSpec else "a deployment"
        raise ScoregateError(f"{path} describes {found}, but this command needs {wanted}")
    return spec


def parse_set(text: str) -> tuple[list[str], Any]:
    """`request_settings.request_timeout_ms=3000` → (["request_settings", ...], 3000)."""
    key, equals, raw = text.partition("=")
    path = key.strip().split(".")
    if not equals or not all(path):
        raise argparse.ArgumentTypeError(
            f"--set expects KEY=VALUE (e.g. instance_count=2), got {text!r}")
    if path[0] in _STRING_MAPS:
        return path, raw
    try:
        return path, json.loads(raw)
    except ValueError:
        return path, raw


def _with_sets(base: dict[str, Any], sets: list[tuple[list[str], Any]] | None) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy
    for path, value in sets or []:
        target = result
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    return result


def _confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise ScoregateError(f"refusing to delete {what} without --yes")
    answer = input(f"Delete {what}? (y/n): ").strip().lower()
    if answer not in ("y", "yes"):
        raise ScoregateError("not deleted")


def _get(path_of: Callable[[argparse.Namespace], str]) -> Command:
    return lambda client, args: client.call("GET", path_of(args))


def _post(path_of: Callable[[argparse.Namespace], str],
          body_of: Callable[[argparse.Namespace], Any] = lambda args: None) -> Command:
    return lambda client, args: client.call("POST", path_of(args), body_of(args))


# --- the parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"admin API URL (default ${URL_ENV}, else "
                                      "$SCOREGATE_HOME/server.json)")
    common.add_argument("-o", "--output", choices=cli_output.FORMATS, default="json")
    common.add_argument("--query", help="JMESPath query applied to the answer, as in az")
    parser = argparse.ArgumentParser(prog="scoregate", description="Online ML inference "
                                     "gateway with Azure ML online-endpoint semantics.")
    groups = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups.add_parser("serve", help="run the gateway (see `scoregate serve --help`)")
    _endpoint_commands(groups.add_parser("online-endpoint", help="manage endpoints"), common)
    _deployment_commands(groups.add_parser("online-deployment", help="manage deployments"),
                         common)
    return parser


@dataclass(frozen=True)
class _Verbs:
    """Adds the verbs of one command group, each with the flags that name its resource."""

    verbs: argparse._SubParsersAction[argparse.ArgumentParser]
    common: argparse.ArgumentParser
    kind: str  # "endpoint" or "deployment"

    def add(self, name: str, run: Command, help_text: str, *, named: bool = True,
            required: bool = True) -> argparse.ArgumentParser:
        sub = self.verbs.add_parser(name, parents=[self.common], help=help_text)
        if named:
            sub.add_argument("-n", "--name", required=required, help=f"{self.kind} name")
        if self.kind == "deployment":
            sub.add_argument("-e", "--endpoint-name", required=required,
                             help="endpoint name (--endpoint works too)")
        sub.set_defaults(run=run)
        return sub

    def add_delete(self, run: Command, help_text: str) -> None:
        delete = self.add("delete", run, help_text)
        delete.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")


def _endpoint_commands(parser: argparse.ArgumentParser,
                       common: argparse.ArgumentParser) -> None:
    verbs = _Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                   "endpoint")
    create = verbs.add("create", endpoint_create, "create an endpoint", required=False)
    create.add_argument("-f", "--file", help="endpoint YAML (its name yields to --name)")
    _add_set(create)
    verbs.add("show", _get(_endpoint_path), "show an endpoint")
    verbs.add("list", _get(lambda args: "/v1/endpoints"), "list endpoints", named=False)
    update = verbs.add("update", endpoint_update, "change traffic, mirror traffic or fields")
    update.add_argument("--traffic", help='live traffic, e.g. "blue=90 green=10"')
    update.add_argument("--mirror-traffic", help='mirror traffic, e.g. "green=10" ("green=0": off)')
    update.add_argument("-f", "--file", help="endpoint YAML with the new settings")
    _add_set(update)
    invoke = verbs.add("invoke", endpoint_invoke, "score a request and print the answer")
    invoke.add_argument("-r", "--request-file", required=True, help="the JSON body to send")
    invoke.add_argument("-d", "--deployment-name", help="send it to this deployment directly")
    from control_plane.cli.evaluate import (
        add_command as add_evaluate,  # evaluate imports this module
    )

    add_evaluate(verbs.verbs)
    verbs.add("get-credentials", _post(lambda args: _endpoint_path(args, "/get-credentials")),
              "keys (auth_mode key) or a token (aml_token)")
    keys = verbs.add("regenerate-keys",
                     _post(lambda args: _endpoint_path(args, "/regenerate-keys"),
                           lambda args: {"key_type": args.key_type}),
                     "replace the primary or the secondary key")
    keys.add_argument("--key-type", required=True, choices=("primary", "secondary"))
    verbs.add_delete(endpoint_delete, "delete an endpoint and its deployments")
    add_rollout_commands(verbs.verbs, common)


def _deployment_commands(parser: argparse.ArgumentParser,
                         common: argparse.ArgumentParser) -> None:
    verbs = _Verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True), common,
                   "deployment")
    create = verbs.add("create", deployment_create, "create a deployment", required=False)
    create.add_argument("-f", "--file", required=True, help="deployment YAML")
    create.add_argument("--all-traffic", action="store_true",
                        help="give it 100%% of live traffic and every other deployment 0%%")
    _add_set(create)
    update = verbs.add("update", deployment_update, "change instance_count, settings, variables")
    update.add_argument("-f", "--file", help="deployment YAML with the new settings")
    _add_set(update)
    verbs.add("show", _get(_deployment_path), "show a deployment and its instances")
    verbs.add("list", _get(lambda args: f"/v1/endpoints/{args.endpoint_name}/deployments"),
              "list the deployments of an endpoint", named=False)
    verbs.add_delete(deployment_delete, "delete a deployment (not one with traffic)")
    logs = verbs.add("get-logs", deployment_logs, "print the last lines of its instances' logs")
    logs.add_argument("-l", "--lines", type=int, default=5000, help="how many (default 5000)")
    verbs.add("compare", _get(lambda args: _deployment_path(args, "/compare")),
              "shadow comparison of its mirror copies with the live answers: counts, "
              "agreement rate, memory, last mismatching pairs")


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", type=parse_set, metavar="KEY=VALUE",
                        help="set a field, e.g. instance_count=2, "
                             "request_settings.request_timeout_ms=3000, environment_variables.X=1")


def _serve(argv: list[str]) -> int:
    from control_plane import serve
    parser = argparse.ArgumentParser(prog="scoregate serve",
                                     description="Run the gateway, its admin API and instances.")
    serve.add_arguments(parser)
    return serve.main(parser.parse_args(argv))
