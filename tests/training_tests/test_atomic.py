"""``training.atomic_write``: the file holds the old or the new content, never anything else;
no temporary file survives an error or a SIGTERM; leftovers of killed writers are swept.

Faults are injected by making ``os.fsync``/``os.replace`` fail with a given errno, or by a
path under a regular file: no sleeps, no permissions (the tests may run as root)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import training._atomic
from training import atomic_write

ROOT = Path(__file__).resolve().parents[2]
HOST = training._atomic._HOST


def _dot_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bytes_text_and_a_writer_function(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    atomic_write(target, "é\n")
    assert target.read_bytes() == "é\n".encode()
    atomic_write(target, lambda f: f.write(b"written by a function"))
    assert target.read_bytes() == b"written by a function"
    assert _dot_files(tmp_path) == []


def test_a_new_file_gets_the_umask_mode_and_a_replaced_file_keeps_its_own(tmp_path: Path) -> None:
    new = tmp_path / "new.txt"
    atomic_write(new, "x")
    assert new.stat().st_mode & 0o7777 == 0o666 & ~_umask()
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write(kept, "new")
    assert kept.read_text() == "new" and kept.stat().st_mode & 0o7777 == 0o640


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_an_error_in_the_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")

    def half_then_fail(f) -> None:
        f.write(b"half")
        raise ValueError("the writer failed")

    with pytest.raises(ValueError, match="the writer failed"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and _dot_files(tmp_path) == []


@pytest.mark.parametrize("function", ["fsync", "replace"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO])
def test_an_os_error_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str, code: int
) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")

    def fail(*args: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, function, fail)
    with pytest.raises(OSError) as info:
        atomic_write(target, "new")
    monkeypatch.undo()
    assert info.value.errno == code
    assert target.read_text() == "old" and _dot_files(tmp_path) == []


def test_a_file_where_a_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        atomic_write(tmp_path / "file" / "out.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_long_name_fits_its_temporary_and_a_too_long_one_is_refused(tmp_path: Path) -> None:
    long = tmp_path / ("a" * 250)  # within the 255 bytes of a name; its temporary is shortened
    atomic_write(long, "x")
    assert long.read_text() == "x"
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / ("b" * 300), "x")
    assert info.value.errno == errno.ENAMETOOLONG
    assert sorted(p.name for p in tmp_path.iterdir()) == [long.name]


def test_leftovers_of_dead_writers_on_this_host_are_swept(tmp_path: Path) -> None:
    target = tmp_path / "best.py"
    dead, alive = 999_999_999, os.getppid()  # no such process; pytest's parent
    swept = [
        f".best.py.{dead}.tmp",  # the export's former name
        f".best.py.{dead}.0.{HOST}.tmp",
        f".best.py.{os.getpid()}.99.{HOST}.tmp",  # a former process with our pid
    ]
    kept = [
        f".best.py.{alive}.0.{HOST}.tmp",  # a live writer
        f".best.py.{dead}.0.another-host.tmp",  # its pid means nothing here
        ".best.py.tmp",
        ".best.py.x.tmp",
        f".other.py.{dead}.tmp",
    ]
    for name in swept + kept:
        (tmp_path / name).write_text("half")
    atomic_write(target, "new")
    assert target.read_text() == "new"
    assert _dot_files(tmp_path) == sorted(kept)


def test_threads_writing_one_file_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "shared.txt"
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(20):
                atomic_write(target, f"{k}-{i}")
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in {f"{k}-19" for k in range(6)}
    assert _dot_files(tmp_path) == []


def test_a_handler_of_the_program_is_left_in_place(tmp_path: Path) -> None:
    """With a SIGTERM handler installed (Ray's, the search's), the writer changes nothing: a
    handler that returns lets the write finish, one that raises unwinds it cleanly."""
    received: list[int] = []

    class Stop(Exception):
        pass

    def record(signum: int, frame: object) -> None:
        received.append(signum)

    def stop(signum: int, frame: object) -> None:
        raise Stop

    def signalled(f) -> None:
        f.write(b"new")
        os.kill(os.getpid(), signal.SIGTERM)  # handled before the next bytecode

    target = tmp_path / "t.txt"
    target.write_text("old")
    previous = signal.signal(signal.SIGTERM, record)
    try:
        atomic_write(target, signalled)
        assert received == [signal.SIGTERM] and target.read_text() == "new"
        signal.signal(signal.SIGTERM, stop)
        with pytest.raises(Stop):
            atomic_write(target, signalled)
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert target.read_text() == "new" and _dot_files(tmp_path) == []


def test_sigterm_under_the_default_action_exits_143_without_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")
    code = f"""
import os, signal
from training import atomic_write
def signalled(f):
    f.write(b"half")
    os.kill(os.getpid(), signal.SIGTERM)
    f.write(b" and more")
atomic_write({str(target)!r}, signalled)
print("not reached")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 143, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert target.read_text() == "old" and _dot_files(tmp_path) == []
