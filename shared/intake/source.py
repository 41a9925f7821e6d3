"""What an upload's bytes may come as: `bytes` in memory, or a seekable binary file (the worker spools the
stored input to a temporary file, so its memory does not grow with the file)."""

from __future__ import annotations

import io
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
