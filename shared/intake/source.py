"""What an upload's bytes may come as: `bytes` in memory, or a seekable binary file (the worker spools the
stored input to a temporary file, so its memory does not grow with the file); and, in the web, the body of an
upload as it arrives (`Incoming`), read once and in order.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO

Content = bytes | IO[bytes]
HEAD = 1 << 20  # enough for the magic numbers and any real header line


def head(content: Content, n: int = HEAD) -> bytes:
    if isinstance(content, bytes):
        return content[:n]
    content.seek(0)
    data = content.read(n)
    content.seek(0)
    return data


def size(content: Content) -> int:
    if isinstance(content, bytes):
        return len(content)
    end = content.seek(0, io.SEEK_END)
    content.seek(0)
    return end


def stream(content: Content) -> IO[bytes]:
    """A binary stream positioned at the start (bytes are wrapped, not copied into a new buffer twice)."""
    if isinstance(content, bytes):
        return io.BytesIO(content)
    content.seek(0)
    return content


def whole(content: Content) -> bytes:
    """All the bytes: only for error paths that must locate a problem in the file."""
    return content if isinstance(content, bytes) else stream(content).read()


class Incoming(io.RawIOBase):
    """Bytes as they arrive (the chunks of a request's body), read once and in order; `read(n)` gives `n` bytes
    unless they end first, and `peek(n)` the first `n` still to be read, without taking them."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._ahead = b""

    def readable(self) -> bool:
        return True

    def peek(self, n: int = HEAD) -> bytes:
        self._ahead = self._gather(n)
        return self._ahead[:n]

    def read(self, n: int | None = -1) -> bytes:
        data = self._gather(-1 if n is None else n)
        data, self._ahead = (data[:n], data[n:]) if n is not None and 0 <= n < len(data) else (data, b"")
        return data

    def _gather(self, n: int) -> bytes:
        pieces, have = [self._ahead], len(self._ahead)
        while n < 0 or have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            pieces.append(chunk)
            have += len(chunk)
        return b"".join(pieces)
