"""A request body read by the rules, or refused before it is read.

The webhook runs on the standard library's HTTP server, which trusts ``Content-Length``
as given: ``-1`` read to the end of the stream (a 64 MiB body was buffered), ``abc``
raised inside the handler. Here the framing is checked from the headers alone, so every
refusal comes before a byte of the body is read: no length and no chunked coding is 411,
a length that is not a plain decimal number (negative, signed, several different ones)
or a length beside a transfer coding (request smuggling) is 400, more than the limit is
413. A chunked body is read chunk by chunk and refused with 413 at the first chunk
that would take it over the limit, before that chunk is read.
"""

from __future__ import annotations

from email.message import Message
from typing import Protocol

MAX_LINE = 4096
"""Longest chunk-size or trailer line accepted."""
MAX_TRAILERS = 32
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Stream(Protocol):
    """What the body is read from (the request's socket file)."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...


class BodyError(Exception):
    """A body refused with ``status``; ``message`` says why without echoing the input."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def declared_length(headers: Message, limit: int) -> int | None:
    """The body's length from the headers (``None``: chunked), or a :class:`BodyError`."""
    codings = [
        c.strip().lower() for v in headers.get_all("Transfer-Encoding") or [] for c in v.split(",")
    ]
    lengths = {v.strip() for h in headers.get_all("Content-Length") or [] for v in h.split(",")}
    if codings:
        if lengths:
            raise BodyError(400, "send either Content-Length or Transfer-Encoding, not both")
        if codings != ["chunked"]:
            raise BodyError(400, "the only transfer coding accepted is chunked")
        return None
    if not lengths:
        raise BodyError(411, "Content-Length is required (or Transfer-Encoding: chunked)")
    if len(lengths) > 1:
        raise BodyError(400, "conflicting Content-Length values")
    value = lengths.pop()
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise BodyError(400, "Content-Length must be a non-negative decimal integer")
    length = int(value)
    if length > limit:
        raise BodyError(413, f"body larger than {limit} bytes")
    return length


def read_body(headers: Message, stream: Stream, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, or a :class:`BodyError` (4xx)."""
    length = declared_length(headers, limit)
    if length is None:
        return read_chunked(stream, limit)
    data = stream.read(length)
    if len(data) < length:
        raise BodyError(400, "the body ended before its Content-Length")
    return data


def _line(stream: Stream) -> bytes:
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise BodyError(400, "malformed chunked body")
    return line.rstrip(b"\r\n")


def read_chunked(stream: Stream, limit: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body; 413 as soon as a chunk's declared size would
    pass ``limit`` (that chunk is never read), 400 for broken framing."""
    out = bytearray()
    while True:
        size_text = _line(stream).split(b";", 1)[0].strip()  # chunk extensions ignored
        if not size_text or len(size_text) > 16 or not set(size_text) <= _HEX:
            raise BodyError(400, "malformed chunk size in the chunked body")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(out) + size > limit:
            raise BodyError(413, f"body larger than {limit} bytes")
        chunk = stream.read(size)
        if len(chunk) < size or _line(stream):
            raise BodyError(400, "malformed chunked body")
        out += chunk
    for _ in range(MAX_TRAILERS):  # trailer fields, up to the empty line that ends them
        if not _line(stream):
            return bytes(out)
    raise BodyError(400, "too many trailer fields in the chunked body")
