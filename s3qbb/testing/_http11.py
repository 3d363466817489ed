"""Minimal HTTP/1.1 message handling for the fault proxy: reading heads, framing and relaying bodies.

Only what `s3qbb.testing.proxy.FaultProxy` needs to relay S3 requests
unchanged: request and status lines with headers, ``Content-Length``,
chunked and close-delimited bodies, keep-alive.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

_BLOCK: Final = 256 * 1024
_MAX_LINE: Final = 64 * 1024
_CLOSE: Final = -1
_CHUNKED: Final = -2


class _ProtocolError(Exception):
    """A peer sent something that is not HTTP/1.1 or closed the connection mid-message."""


class _Stream:
    """A socket with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_BLOCK)
        self.buf += data
        return bool(data)

    def readline(self) -> bytes:
        """Return one line with its terminator (a partial line at EOF, ``b""`` at EOF)."""
        start = 0
        while (end := self.buf.find(b"\n", start)) < 0:
            if len(self.buf) > _MAX_LINE:
                raise _ProtocolError("line too long")
            start = len(self.buf)
            if not self._fill():
                end = len(self.buf) - 1
                break
        line = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return line

    def read(self, limit: int) -> bytes:
        """Return up to ``limit`` bytes (``b""`` only at EOF)."""
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data

    def readable(self, timeout: float) -> bool:
        """Tell whether a read would not block (data buffered, arriving, or EOF) within ``timeout``."""
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


@dataclass
class _Head:
    """Start line and header lines of an HTTP message, kept as received."""

    start: bytes
    lines: list[bytes]

    @property
    def headers(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for line in self.lines:
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            result[key] = f"{result[key]}, {value.strip()}" if key in result else value.strip()
        return result

    @property
    def status(self) -> int:
        fields = self.start.split(None, 2)
        if len(fields) < 2 or not fields[1].isdigit():
            raise _ProtocolError(f"bad status line {self.start[:80]!r}")
        return int(fields[1])

    def with_header(self, name: str, value: str, *, drop: Iterable[str] = ()) -> _Head:
        gone = {name.lower(), *(d.lower() for d in drop)}
        kept = [ln for ln in self.lines if ln.split(b":", 1)[0].strip().lower().decode("latin-1") not in gone]
        return _Head(self.start, [*kept, f"{name}: {value}".encode("latin-1")])

    def raw(self) -> bytes:
        return b"\r\n".join([self.start, *self.lines, b"", b""])


def _read_head(stream: _Stream) -> _Head | None:
    """Read a message head; `None` at a clean EOF before it."""
    line = stream.readline()
    while line in (b"\r\n", b"\n"):
        line = stream.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise _ProtocolError("connection closed inside a message head")
    lines: list[bytes] = []
    while (header := stream.readline()) not in (b"\r\n", b"\n"):
        if not header.endswith(b"\n") or len(lines) > 200:
            raise _ProtocolError("bad or unterminated header block")
        lines.append(header.rstrip(b"\r\n"))
    return _Head(line.rstrip(b"\r\n"), lines)


def _request_framing(headers: Mapping[str, str]) -> int:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _CHUNKED
    length = headers.get("content-length", "0").split(",")[0].strip()
    if not length.isdigit():
        raise _ProtocolError(f"bad Content-Length {length!r}")
    return int(length)


def _response_framing(head: _Head, method: str) -> int:
    status = head.status
    if method == "HEAD" or status < 200 or status in (204, 304):
        return 0
    headers = head.headers
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _CHUNKED
    if "content-length" in headers:
        return _request_framing(headers)
    return _CLOSE


def _copy_body(src: _Stream, framing: int, sink: Callable[[bytes], None], *, decode: bool = False) -> None:
    """Pass a message body from ``src`` to ``sink``, raw or (``decode``) without chunk framing."""
    if framing == _CLOSE:
        while data := src.read(_BLOCK):
            sink(data)
        return
    if framing != _CHUNKED:
        remaining = framing
        while remaining:
            data = src.read(min(remaining, _BLOCK))
            if not data:
                raise _ProtocolError("connection closed inside a body")
            sink(data)
            remaining -= len(data)
        return
    while True:
        line = src.readline()
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not size_text:
            raise _ProtocolError("bad chunk size line")
        if not decode:
            sink(line)
        size = int(size_text, 16)
        if size == 0:
            while (trailer := src.readline()) not in (b"\r\n", b"\n"):
                if not trailer:
                    raise _ProtocolError("connection closed inside chunk trailers")
                if not decode:
                    sink(trailer)
            if not decode:
                sink(b"\r\n")
            return
        _copy_body(src, size, sink)
        end = src.readline()
        if end not in (b"\r\n", b"\n"):
            raise _ProtocolError("chunk not followed by CRLF")
        if not decode:
            sink(end)


def _discard(data: bytes) -> None:
    """Drop what a body copy hands over."""


def _close(sock: socket.socket, *, reset: bool = False) -> None:
    """Close a socket: with a FIN after shutdown, or abruptly with a TCP RST (``reset``)."""
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _keep_alive(version: bytes, headers: Mapping[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version.strip().upper() == b"HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection
