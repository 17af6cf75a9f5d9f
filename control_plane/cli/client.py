"""The CLI's side of the admin API: finding the server and its token, and calling it.

The server is found through `--url`, `SCOREGATE_URL` or `$SCOREGATE_HOME/server.json`, the
token through `SCOREGATE_ADMIN_TOKEN` or `$SCOREGATE_HOME/admin_token`. A failed call becomes
one `ScoregateError` whose text is the server's message (and rule), never an HTTP dump.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from control_plane.errors import ScoregateError
from control_plane.home import ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE, StateDir, default_home

URL_ENV = "SCOREGATE_URL"
ADMIN_TIMEOUT_S = 300.0  # a write waits until new instances are up and the snapshot published
INVOKE_TIMEOUT_S = 200.0  # above the largest request_timeout_ms (180 s)


@dataclass(frozen=True)
class Raw:
    """Text printed as it is (a model's answer, logs), whatever `-o` says."""

    text: str


class AdminClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token
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

    def clone(self) -> AdminClient:
        """A second connection to the same server (for polling while a call waits)."""
        return AdminClient(self.url, self._token)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """`timeout_s=` (not a query parameter): longer than the default, for calls that build
        an environment."""
        timeout_s = params.pop("timeout_s", None)
        query = {k: v for k, v in params.items() if v is not None}
        timeout = timeout_s or ADMIN_TIMEOUT_S
        try:
            response = self._http.request(method, path, json=body, params=query, timeout=timeout)
        except httpx.TimeoutException:
            raise ScoregateError(f"the admin API at {self.url} did not answer within "
                                 f"{timeout:.0f} s") from None
        except httpx.HTTPError as error:
            raise ScoregateError(f"cannot reach the scoregate admin API at {self.url} ({error}); "
                                 "is `scoregate serve` running?") from None
        answer = _json_or_none(response)
        if response.is_success:
            return answer
        raise ScoregateError(_error_text(response, answer))


def scoring_target(client: AdminClient, endpoint_name: str) -> tuple[dict[str, Any], str]:
    """The endpoint as `show` gives it, and a secret a client can score with (key or token)."""
    endpoint = client.call("GET", f"/v1/endpoints/{endpoint_name}")
    credentials = client.call("POST", f"/v1/endpoints/{endpoint_name}/get-credentials")
    return endpoint, str(credentials.get("primaryKey") or credentials.get("accessToken"))


def _admin_token(home: Path) -> str:
    token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if token:
        return token
    try:
        token = (home / ADMIN_TOKEN_FILE).read_text().strip()
    except OSError:
        token = ""
    if not token:
        raise ScoregateError(f"no admin token: set {ADMIN_TOKEN_ENV} or start `scoregate serve` "
                             f"once with SCOREGATE_HOME={home} (it writes "
                             f"{home / ADMIN_TOKEN_FILE})")
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
        text += f" (check {ADMIN_TOKEN_ENV} or $SCOREGATE_HOME/{ADMIN_TOKEN_FILE})"
    return text
