"""Files written whole (a plan file, a report, a ledger, a metrics file), and JSON documents
read with a bound (`read_json_text`).

A file written in place is empty, then partial, for as long as the writing takes: a run cut
short there (Ctrl-C, a full disk, a killed job) left a partial plan file where the previous
one was, and a reader meanwhile (a pipeline step, node_exporter's textfile collector) read
half of one. `write_atomically` writes beside the file under a dot-name, makes the data
durable, and renames it over the file: readers see the old file or the new one.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO


def write_atomically(
    path: Path, data: bytes | str | Iterable[str], *, mode: int | None = None
) -> None:
    """Replace `path` with `data` (bytes, text, or pieces of text written in turn, UTF-8) in
    one rename; nothing is left behind on failure. The file gets `mode` if given; otherwise a
    file replaced keeps its mode, and a new one gets what a plain `open` gives (0o666 less the
    umask). A symbolic link is written through, as `open` would: its target is replaced, not
    the link. What is not a regular file (`--output /dev/stdout`, a FIFO) is written as `open`
    writes it: a rename would replace the device itself."""
    try:
        regular = stat.S_ISREG(path.stat().st_mode)  # through a link, to what it names
    except FileNotFoundError:
        regular = True  # a new file
    if not regular:
        _write_in_place(path, data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    kept = None
    if mode is None:
        try:
            kept = path.stat().st_mode & 0o777
        except OSError:
            kept = None
    temporary = _written_beside(path, data, kept if kept is not None else mode)
    try:
        temporary.replace(path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        raise _about(error, temporary, path) from None


def create_atomically(path: Path, data: bytes | str | Iterable[str]) -> None:
    """Create `path` whole with `data`, never replacing a file: `FileExistsError` if one is
    there (one that appeared meanwhile too), and then nothing is written."""
    temporary = _written_beside(path, data, None)
    try:
        os.link(temporary, path)  # fails if `path` exists, where a rename would replace it
    except BaseException as error:
        raise _about(error, temporary, path) from None
    finally:
        temporary.unlink(missing_ok=True)


def _write_in_place(path: Path, data: bytes | str | Iterable[str]) -> None:
    with path.open("wb") as handle:
        _write(handle, data)


def _write(handle: BinaryIO, data: bytes | str | Iterable[str]) -> None:
    if isinstance(data, bytes):
        handle.write(data)
    elif isinstance(data, str):
        handle.write(data.encode("utf-8"))
    else:
        for piece in data:
            handle.write(piece.encode("utf-8"))


def _written_beside(path: Path, data: bytes | str | Iterable[str], mode: int | None) -> Path:
    """`data` in a new file beside `path` under a dot-name, durable, with `mode` if given."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise _about(error, temporary, path) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            _write(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            temporary.chmod(mode)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        raise _about(error, temporary, path) from None
    return temporary


def _about(error: BaseException, temporary: Path, path: Path) -> BaseException:
    """`error` as the user's file's: an error of the temporary (a missing folder, a full
    disk) names the file the user asked for, not the dot-name beside it."""
    if isinstance(error, OSError) and error.filename in (str(temporary), temporary):
        return type(error)(error.errno, error.strerror, str(path))
    return error


#: Far beyond any document reconcile writes (a plan of 100,000 live versions is about 100 MB):
#: what is bigger is something else, and is not read whole.
MAX_DOCUMENT_BYTES = 1 << 30
#: The characters a JSON text may start with (after whitespace).
_JSON_STARTS = frozenset('{["-0123456789tfn')


class NotADocument(ValueError):
    """A file given as a JSON document (a plan file, a drift report) that plainly is not one."""


def read_json_text(path: Path, *, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """The text of `path`, a JSON document, read and decoded (UTF-8) by pieces: `NotADocument`
    as soon as a piece is not UTF-8 or the text does not start as JSON (a binary, a log, a
    device such as /dev/urandom or /dev/zero, which a plain read never finished), or once it
    passes `limit` bytes, before it is held whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces: list[str] = []
    size = 0
    with path.open("rb") as file:
        while True:
            piece = file.read(1 << 20)
            pending = len(decoder.getstate()[0])  # the end of the last piece, not yet decoded
            try:
                text = decoder.decode(piece, final=not piece)
            except UnicodeDecodeError as error:
                at = size - pending + error.start
                raise NotADocument(
                    f"not UTF-8 text: byte {at} is {error.object[error.start]:#04x}"
                ) from None
            if not pieces and text.lstrip(" \t\r\n")[:1] not in _JSON_STARTS:
                raise NotADocument("it does not start as JSON")
            pieces.append(text)
            size += len(piece)
            if size > limit:
                raise NotADocument(f"larger than {limit >> 20} MiB")
            if not piece:
                return "".join(pieces)
