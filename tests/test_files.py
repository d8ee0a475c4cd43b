"""Files written whole (`reconcile.files`): the old file or the new one, never a part."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.files import NotADocument, create_atomically, read_json_text, write_atomically


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_new_file_gets_the_mode_open_gives_and_a_replaced_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plan.json"
    write_atomically(path, "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    path.chmod(0o600)
    write_atomically(path, b"[]")
    assert (path.read_bytes(), path.stat().st_mode & 0o777) == (b"[]", 0o600)
    write_atomically(path, "[1]", mode=0o644)
    assert path.stat().st_mode & 0o777 == 0o644


def test_pieces_are_written_in_turn_and_a_failure_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    write_atomically(path, iter(["# drift\n", "ünïcode\n"]))
    assert path.read_text(encoding="utf-8") == "# drift\nünïcode\n"

    def failing() -> Iterator[str]:
        yield "# half"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, failing())
    assert path.read_text(encoding="utf-8") == "# drift\nünïcode\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_file_created_whole_never_replaces_one(tmp_path: Path) -> None:
    """`reconcile import` without --force: a file that is there (or appeared meanwhile) is
    kept as it was; a write cut short leaves no file at all, and nothing beside."""
    path = tmp_path / "imported.toml"
    create_atomically(path, "[providers.a]\n")
    with pytest.raises(FileExistsError):
        create_atomically(path, "[providers.b]\n")
    assert path.read_text(encoding="utf-8") == "[providers.a]\n"

    def failing() -> Iterator[str]:
        yield "[providers"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        create_atomically(tmp_path / "other.toml", failing())
    assert [p.name for p in tmp_path.iterdir()] == ["imported.toml"]


def test_an_error_names_the_file_asked_for_not_the_temporary(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "plan.json"
    for write in (write_atomically, create_atomically):
        with pytest.raises(FileNotFoundError) as caught:
            write(missing, "{}")
        assert caught.value.filename == str(missing)


def test_a_json_document_is_read_with_a_bound(tmp_path: Path) -> None:
    """What plainly is not a JSON document (a binary, a device) is refused at its first bytes,
    what passes the limit before it is held whole; a document is read as it is."""
    document = tmp_path / "plan.json"
    document.write_bytes(b'\n  {"a": "\xc3\xa9"}')
    assert read_json_text(document) == '\n  {"a": "\u00e9"}'
    with pytest.raises(NotADocument, match="larger than 0 MiB"):
        read_json_text(document, limit=4)
    for content, said in (
        (b"\x00\x01binary", "does not start as JSON"),
        (b'{"a": "\xff"}', "not UTF-8 text: byte 7 is 0xff"),
        (b"", "does not start as JSON"),
    ):
        document.write_bytes(content)
        with pytest.raises(NotADocument, match=said):
            read_json_text(document)
    # A character split between two pieces of a MiB: the byte after it is counted from the
    # file's start, not from the bytes the decoder still held.
    document.write_bytes(b"{" + b" " * ((1 << 20) - 2) + "\u00e9".encode() + b"\xff")
    with pytest.raises(NotADocument, match=f"byte {(1 << 20) + 1} is 0xff"):
        read_json_text(document)
    with pytest.raises(NotADocument, match="does not start as JSON"):
        read_json_text(Path("/dev/zero"))
    with pytest.raises(NotADocument):  # not UTF-8, or not JSON, at its first bytes
        read_json_text(Path("/dev/urandom"))


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    """`plan -o plan.json` where plan.json links to a shared file wrote that file before it
    was written whole; it still does, and the link stays a link."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "plan.json").write_text("old", encoding="utf-8")
    link = tmp_path / "plan.json"
    link.symlink_to(shared / "plan.json")
    write_atomically(link, "new")
    assert link.is_symlink()
    assert (shared / "plan.json").read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in shared.iterdir()) == ["plan.json"]


def test_what_is_not_a_regular_file_is_written_in_place(tmp_path: Path) -> None:
    """`drift --output /dev/stdout`, a FIFO: a rename would replace the device or the FIFO
    itself (a metrics file given as /dev/full, as root, became a regular file). Written as
    `open` writes them; the FIFO is still one, and its reader got the text."""
    import stat
    import threading

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomically(fifo, iter(["# drift", "\n"]))
    reader.join(timeout=10)
    assert got == [b"# drift\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.fifo"]
