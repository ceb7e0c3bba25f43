"""The event journal: append-only text files of checksummed JSON records.

One record per line: ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``, written with a single
``write()`` on a file opened with ``O_APPEND``: a kill -9 at any instant leaves every record
that was written whole (the kernel completes or refuses a write), and a power loss at worst a
torn last record, which fails its checksum. Readers stop at the first record that is
incomplete or fails its checksum, so they see a prefix of the events, never a mix.

``fsync`` is batched (:meth:`Journal.sync`); what a power loss can cost is the records written
since the last sync.
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Any, Dict, List, Optional, Tuple

MAX_RECORD = 64 * 1024 * 1024  # a longer line is damage, not a record


def encode_record(obj: Dict[str, Any]) -> bytes:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"%08x " % (zlib.crc32(body) & 0xFFFFFFFF) + body + b"\n"


class Journal:
    """Appends records to one journal file (created exclusively, never a symlink)."""

    def __init__(self, path: str):
        self.path = path
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        self.fd: Optional[int] = os.open(path, flags, 0o644)
        self.records = 0
        self.unsynced = 0
        self._dir_synced = False

    def append(self, obj: Dict[str, Any]) -> None:
        data = encode_record(obj)
        assert self.fd is not None
        n = os.write(self.fd, data)
        while n < len(data):  # regular files write whole buffers; be safe with short writes
            n += os.write(self.fd, data[n:])
        self.records += 1
        self.unsynced += 1

    def sync(self) -> None:
        if self.fd is not None and self.unsynced:
            os.fsync(self.fd)
            if not self._dir_synced:  # the file's own directory entry, once
                dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
                self._dir_synced = True
            self.unsynced = 0

    def close(self, sync: bool = True) -> None:
        if self.fd is not None:
            try:
                if sync:
                    self.sync()
            finally:
                os.close(self.fd)
                self.fd = None


def read_records(path: str) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """The good records of a journal file, and why reading stopped early (None: at the end).

    An incomplete last line (a record being written, or torn by a power loss) ends the file
    quietly; a bad record followed by more data is reported.
    """
    with open(path, "rb") as f:
        data = f.read()
    out: List[Dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            return out, None  # a record still being written (or torn at the very end)
        line = data[pos:end]
        problem = _bad(line)
        if problem is None:
            try:
                obj = json.loads(line[9:].decode("utf-8"))
                if not isinstance(obj, dict):
                    problem = "a record is not a JSON object"
            except (UnicodeDecodeError, ValueError) as e:
                problem = f"unreadable record ({e})"
        if problem is not None:
            rest = len(data) - end - 1
            after = f"; {rest} bytes after it ignored" if rest else ""
            return out, f"record {len(out) + 1} (byte {pos}): {problem}{after}"
        out.append(obj)
        pos = end + 1
    return out, None


def _bad(line: bytes) -> Optional[str]:
    if len(line) > MAX_RECORD:
        return "record too long"
    if len(line) < 10 or line[8:9] != b" ":
        return "not a journal record"
    try:
        want = int(line[:8], 16)
    except ValueError:
        return "not a journal record"
    if zlib.crc32(line[9:]) & 0xFFFFFFFF != want:
        return "checksum mismatch"
    return None
