"""`AMLRequest` and `@rawhttp`: the request object a `@rawhttp` run() receives.

azmlinfsrv passes a Flask (werkzeug) `Request`. This class offers the part of that interface
scoring scripts use (method, path, full_path, url, args, headers, data, get_data, get_json,
is_json, content_type, mimetype, form and files (url-encoded and multipart bodies), cookies,
environ) without Flask, built lazily so a script that reads only the body pays for nothing else.

`get_json()` and `args[...]` raise `RequestInputError` where werkzeug raises its 400/415
exceptions; when one escapes run(), the server answers with its status and message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

T = TypeVar("T")

# azmlinfsrv's own flag, kept under its name: tools that inspect it keep working.
_rawHttpRequested = False  # noqa: N816


def rawhttp(func: Callable[..., T]) -> Callable[..., T]:
    """Marks run() as taking the request object instead of the body (as azmlinfsrv does, the
    mark is module-wide: the entry script has one run())."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


class RequestInputError(ValueError):
    """A client mistake found while the script reads the request (werkzeug's BadRequest and
    UnsupportedMediaType); carries the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = status  # werkzeug's attribute name
        self.description = message


class RequestKeyError(RequestInputError, KeyError):
    """`args["missing"]`: a KeyError to the script, a 400 to the client (werkzeug's
    BadRequestKeyError)."""

    def __init__(self, key: str) -> None:
        super().__init__(400, f"The browser (or proxy) sent a request that this server could "
                              f"not understand. KeyError: {key!r}")

    def __str__(self) -> str:
        return self.message


def _first(values: list[str] | None, default: Any, convert: Callable[[str], Any] | None) -> Any:
    """werkzeug's `get(key, default, type)`: the first value, converted by `type`; `default`
    when there is none or the conversion fails."""
    if not values:
        return default
    if convert is None:
        return values[0]
    try:
        return convert(values[0])
    except (ValueError, TypeError):
        return default


def _mimetype(content_type: str | None) -> str:
    """The media type alone, lowercased: `Text/CSV; charset=utf-8` → `text/csv`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class MultiDict:
    """werkzeug's MultiDict as scripts read it: `d[k]`/`get` give the first value, `getlist`
    all of them."""

    __slots__ = ("_lists",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._lists: dict[str, list[str]] = {}
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> str:
        values = self._lists.get(key)
        if not values:
            raise RequestKeyError(key)
        return values[0]

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        return _first(self._lists.get(key), default, type)

    def getlist(self, key: str, type: Callable[[str], Any] | None = None) -> list[Any]:  # noqa: A002
        values = self._lists.get(key, [])
        if type is None:
            return list(values)
        result = []
        for value in values:
            try:
                result.append(type(value))
            except (ValueError, TypeError):
                pass
        return result

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        if flat:
            return {key: values[0] for key, values in self._lists.items()}
        return {key: list(values) for key, values in self._lists.items()}

    def items(self, multi: bool = False) -> list[tuple[str, str]]:
        if multi:
            return [(key, value) for key, values in self._lists.items() for value in values]
        return [(key, values[0]) for key, values in self._lists.items()]

    def lists(self) -> list[tuple[str, list[str]]]:
        return [(key, list(values)) for key, values in self._lists.items()]

    def keys(self) -> list[str]:
        return list(self._lists)

    def values(self) -> list[str]:
        return [values[0] for values in self._lists.values()]

    def __contains__(self, key: object) -> bool:
        return key in self._lists

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def __repr__(self) -> str:
        return f"MultiDict({self.items(multi=True)!r})"


class Headers:
    """werkzeug's request Headers: case-insensitive `get`/`[]`/`in`; iterating yields
    `(name, value)` pairs, so `dict(request.headers)` is what azmlinfsrv's scripts see."""

    __slots__ = ("_pairs", "_lower")

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        self._lower: dict[str, list[str]] = {}
        for name, value in self._pairs:
            self._lower.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        values = self._lower.get(name.lower())
        if not values:
            raise RequestKeyError(name)
        return values[0]

    def get(self, name: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        return _first(self._lower.get(name.lower()), default, type)

    def getlist(self, name: str) -> list[str]:
        return list(self._lower.get(name.lower(), []))

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def keys(self) -> list[str]:
        return [name for name, _ in self._pairs]

    def values(self) -> list[str]:
        return [value for _, value in self._pairs]

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


class AMLRequest:
    """One HTTP request, as a `@rawhttp` run() reads it (see the module docstring)."""

    def __init__(self, method: str, path: str, query_string: bytes,
                 headers: Sequence[tuple[str, str]], body: bytes, scheme: str = "http",
                 server: tuple[str, int] | None = None, client: tuple[str, int] | None = None,
                 root_path: str = "") -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = Headers(headers)
        self.scheme = scheme
        self.root_path = root_path
        self.remote_addr = client[0] if client else None
        self._server = server
        self._body = body
        self._args: MultiDict | None = None
        self._form: MultiDict | None = None
        self._files: MultiDict | None = None

    # -- what the request is -------------------------------------------------------------
    @property
    def args(self) -> MultiDict:
        if self._args is None:
            self._args = MultiDict(parse_qsl(self.query_string.decode("latin-1"),
                                             keep_blank_values=True))
        return self._args

    @property
    def full_path(self) -> str:
        return f"{self.path}?{self.query_string.decode('latin-1')}"

    @property
    def host(self) -> str:
        host = self.headers.get("Host")
        if host:
            return str(host)
        if self._server is None:
            return ""
        return f"{self._server[0]}:{self._server[1]}"

    @property
    def host_url(self) -> str:
        return f"{self.scheme}://{self.host}/"

    @property
    def url_root(self) -> str:
        return f"{self.scheme}://{self.host}{self.root_path}/"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}{self.root_path}{self.path}"

    @property
    def url(self) -> str:
        query = self.query_string.decode("latin-1")
        return self.base_url + (f"?{query}" if query else "")

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else str(value)

    @property
    def mimetype(self) -> str:
        return _mimetype(self.content_type)

    @property
    def mimetype_params(self) -> dict[str, str]:
        params = {}
        for part in (self.content_type or "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip():
                params[key.strip().lower()] = value.strip().strip('"')
        return params

    @property
    def content_length(self) -> int | None:
        length: int | None = self.headers.get("Content-Length", type=int)
        return length

    @property
    def is_json(self) -> bool:
        return is_json_mimetype(self.mimetype)

    @property
    def environ(self) -> Mapping[str, Any]:
        """A WSGI-style environ, for scripts that read it directly."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.method, "PATH_INFO": self.path, "SCRIPT_NAME": self.root_path,
            "QUERY_STRING": self.query_string.decode("latin-1"), "wsgi.url_scheme": self.scheme,
            "REMOTE_ADDR": self.remote_addr or "",
        }
        if self._server is not None:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = self._server[0], str(self._server[1])
        for name, value in self.headers:
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = value
        return environ

    # -- the body ------------------------------------------------------------------------
    @property
    def data(self) -> bytes:
        return self._body

    def get_data(self, cache: bool = True, as_text: bool = False,
                 parse_form_data: bool = False) -> Any:
        if as_text:
            return self._body.decode(self.mimetype_params.get("charset", "utf-8"), "replace")
        return self._body

    @property
    def stream(self) -> Any:
        import io

        return io.BytesIO(self._body)

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """werkzeug's rules: only for a JSON Content-Type unless `force`; `silent` gives None
        instead of an error."""
        if not (force or self.is_json):
            if silent:
                return None
            raise RequestInputError(415, "Did not attempt to load JSON data because the request "
                                         "Content-Type was not 'application/json'.")
        try:
            return json.loads(self._body)
        except ValueError as exc:
            if silent:
                return None
            raise RequestInputError(400, f"Failed to decode JSON object: {exc}") from None

    @property
    def json(self) -> Any:
        return self.get_json()

    @property
    def form(self) -> MultiDict:
        """Form fields of a url-encoded or multipart/form-data body."""
        if self._form is None:
            self._parse_form()
        assert self._form is not None
        return self._form

    @property
    def files(self) -> MultiDict:
        """Uploaded files of a multipart/form-data body, as `FileStorage`s."""
        if self._files is None:
            self._parse_form()
        assert self._files is not None
        return self._files

    def _parse_form(self) -> None:
        fields: list[tuple[str, Any]] = []
        files: list[tuple[str, Any]] = []
        if self.mimetype == "application/x-www-form-urlencoded":
            fields = parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True)
        elif self.mimetype == "multipart/form-data":
            fields, files = _multipart(self.content_type or "", self._body)
        self._form, self._files = MultiDict(fields), MultiDict(files)

    @property
    def values(self) -> MultiDict:
        return MultiDict([*self.args.items(multi=True), *self.form.items(multi=True)])

    @property
    def cookies(self) -> dict[str, str]:
        from http.cookies import SimpleCookie

        jar: SimpleCookie = SimpleCookie()
        for value in self.headers.getlist("Cookie"):
            jar.load(value)
        return {name: morsel.value for name, morsel in jar.items()}

    def __repr__(self) -> str:
        return f"<AMLRequest {self.url!r} [{self.method}]>"


class FileStorage:
    """An uploaded file, as werkzeug's FileStorage is read: `filename`, `name`,
    `content_type`, `mimetype`, `headers`, `stream`, `read()`, `save()`."""

    def __init__(self, data: bytes, filename: str, name: str, content_type: str | None,
                 headers: Sequence[tuple[str, str]]) -> None:
        import io

        self.stream = io.BytesIO(data)
        self.filename = filename
        self.name = name
        self.content_type = content_type
        self.headers = Headers(headers)

    @property
    def mimetype(self) -> str:
        return _mimetype(self.content_type)

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def save(self, destination: Any, buffer_size: int = 16384) -> None:
        """To a path or a binary file object."""
        import shutil

        if isinstance(destination, (str, bytes)) or hasattr(destination, "__fspath__"):
            with open(destination, "wb") as file:
                shutil.copyfileobj(self.stream, file, buffer_size)
        else:
            shutil.copyfileobj(self.stream, destination, buffer_size)

    def __bool__(self) -> bool:
        return bool(self.filename)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


def _multipart(content_type: str, body: bytes) -> tuple[list[tuple[str, Any]],
                                                        list[tuple[str, Any]]]:
    """(fields, files) of a multipart/form-data body, with the stdlib's MIME parser."""
    import email.parser
    import email.policy

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: list[tuple[str, Any]] = []
    files: list[tuple[str, Any]] = []
    if not message.is_multipart():
        raise RequestInputError(400, "The multipart body could not be parsed.")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            charset = part.get_content_charset() or "utf-8"
            fields.append((name, data.decode(charset, "replace")))
        else:
            headers = [(key, str(value)) for key, value in part.items()]
            part_type = part.get("Content-Type")
            files.append((name, FileStorage(data, filename, name,
                                            None if part_type is None else str(part_type),
                                            headers)))
    return fields, files


def is_json_mimetype(mimetype: str) -> bool:
    """Flask's `is_json`: application/json or application/*+json."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))
