"""Raw sockets for requests no HTTP client would send, and a tolerant reader of the answers."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class RawAnswer:
    data: bytes
    closed: bool  # the server closed the connection (rather than the read timing out)

    @property
    def status(self) -> int | None:
        parts = self.data.split(b"\r\n", 1)[0].split(b" ")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def statuses(self) -> list[int]:
        """The status of each whole answer in the bytes (pipelined answers), framed by
        their Content-Length."""
        found, rest = [], self.data
        while b"\r\n\r\n" in rest:
            head, rest = rest.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith(b"content-length:")), 0)
            found.append(int(lines[0].split(b" ")[1]))
            rest = rest[length:]
        return found

    def json(self) -> object:
        return json.loads(self.data.split(b"\r\n\r\n", 1)[1])


def exchange(port: int, data: bytes, timeout_s: float = 5.0) -> RawAnswer:
    """Send `data`, then read until the server closes or `timeout_s` passes without a byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            return RawAnswer(out, False)
        except ConnectionResetError:
            pass
        return RawAnswer(out, True)


def request(path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"",
            method: bytes = b"POST", length: bool = True) -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers]
    if length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
