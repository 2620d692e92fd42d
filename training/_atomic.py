"""``atomic_write``: replace a file so that it always holds either its old or its new content.

The one writer of the project's files that must never be seen half-written: the trainer's
checkpoints, ``best_hyper_parameters.py`` (export_best.py) and training_example.py's results.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import signal
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]

#: What ``atomic_write`` accepts: the bytes, text (written as UTF-8), or a function that
#: writes the content into the binary file it is given (e.g. ``lambda f: torch.save(s, f)``).
Content = bytes | str | Callable[[BinaryIO], object]

# Temporaries are ".{name}.{pid}.{n}.{host}.tmp" beside the target: the pid lets a later
# write tell a dead writer's leftovers from a live one's, ``n`` keeps two writes of one
# process apart (threads), and the host keeps a directory shared by several machines (a
# cluster's checkpoint directory) safe: another host's temporaries are never swept, since
# its pids mean nothing here. ".{name}.{pid}.tmp" (the export's former name) is swept too.
# A long target name is shortened in its temporaries' names (see _prefix), so that a name the
# file system takes for the target also fits its temporary.
_REST = re.compile(r"(?P<pid>\d+)(?:\.(?P<n>\d+)\.(?P<host>[A-Za-z0-9-]+))?")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_counter = itertools.count()
_lock = threading.Lock()
_writing: set[str] = set()  # names of the temporaries this process is writing now


def atomic_write(path: str | os.PathLike[str], content: Content) -> None:
    """Write ``content`` to ``path`` atomically: a reader (or a crash, a kill, a full disk)
    sees the old file or the new one, never a mix or a truncated file.

    The content goes to a temporary file in the same directory, created exclusively
    (``O_EXCL``) with the process id in its name, then flushed and ``fsync``\\ ed, given the
    target's mode (a new file gets ``0o666`` less the umask), and renamed over the target with
    ``os.replace``; the directory is then synced (best effort). A symbolic link is written
    through: its target is replaced, the link stays. On any error, or a SIGTERM while the
    default action is in force (it then exits with status 143, as the signal would have), the
    temporary file is removed and ``path`` is untouched. Temporaries left by writers killed
    outright (SIGKILL) on this host are removed by the next write of the same target.

    Raises:
        OSError: the file cannot be written (no space, read-only file system, permission,
            name too long, a file where a directory should be, ...), with its ``errno``.
    """
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    _sweep(target)
    with _lock:
        tmp = target.with_name(f"{_prefix(target.name)}{os.getpid()}.{next(_counter)}.{_HOST}.tmp")
        _writing.add(tmp.name)
    try:
        with _sigterm_as_exit():
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                with os.fdopen(fd, "wb") as f:
                    if callable(content):
                        content(f)
                    else:
                        f.write(content.encode("utf-8") if isinstance(content, str) else content)
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    finally:
        with _lock:
            _writing.discard(tmp.name)
    _sync_directory(target.parent)


def _prefix(name: str) -> str:
    """The start of the names of ``name``'s temporaries: ``".{name}."``, or for a name of
    over 180 bytes its first 100 bytes and a hash of the whole."""
    raw = os.fsencode(name)
    if len(raw) <= 180:
        return f".{name}."
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return f".{raw[:100].decode('utf-8', 'ignore')}~{digest}."


def _sync_directory(directory: Path) -> None:
    """fsync ``directory`` so the rename survives a power cut; not every file system can."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sweep(target: Path) -> None:
    """Remove the temporaries of ``target`` that writers killed outright left behind."""
    prefix, suffix = _prefix(target.name), ".tmp"
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return  # the write itself will say what is wrong with the directory
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        match = _REST.fullmatch(name[len(prefix) : -len(suffix)])
        if match is None or (match["host"] is not None and match["host"] != _HOST):
            continue
        pid = int(match["pid"])
        if pid == os.getpid():
            with _lock:
                stale = name not in _writing  # a former process that had our pid
        else:
            stale = not _alive(pid)
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Under SIGTERM's default action (die at once, leaving the temporary behind), make it
    unwind like ``sys.exit(143)`` so the temporary is removed. A handler installed by the
    program (Ray's, the search's) is left in place: whatever it raises unwinds the same way."""
    previous = None
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
