"""Faults injected through the search's own seam, the trial function: deterministic, no sleeps
and no lucky timing.

A plan file (JSON) beside the checkpoints names the trial, the epoch and the fault (or a list
of such faults); each fires once (a marker file made with O_EXCL), after that epoch's
checkpoint and before its report:

- ``kill``: the process running the trial dies (a lost Ray worker, or with ``--no-ray`` the
  driver itself),
- ``sigint`` / ``sigterm``: the driver receives Ctrl-C / SIGTERM (``pid``: the driver's),
- ``hang``: the trial stops making progress,
- ``outage``: the PostgreSQL database ``database`` refuses connections (and drops the open
  ones) for ``seconds``, or until :func:`end_outage` with ``seconds`` null,
- ``outage-after``: the same, but starting as the trial returns its outcome, so the driver
  meets it when it tells the result,
- ``terminate``: every connection to ``database`` is killed every ``every`` seconds for
  ``seconds`` (a flaky network), from a thread of the trial's process,
- ``restart``: the PostgreSQL server restarts (``pg_ctlcluster``),
- ``disk-full``: every later ``fsync`` of the trial's process fails with ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from search import TrialJob, TrialOutcome, run_trial

PLAN = "faults.json"
TERMINATED = "terminated.txt"  # a terminate fault's kills, one line per round


def write_plan(checkpoint_root: Path, *faults: dict, **plan: object) -> None:
    """One fault (``plan``), or several (``faults``)."""
    checkpoint_root.mkdir(parents=True, exist_ok=True)
    (checkpoint_root / PLAN).write_text(json.dumps(list(faults) or [plan]))


def admin_connect() -> Any:
    """A connection to the local PostgreSQL server's ``postgres`` database, as its superuser."""
    import psycopg

    return psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    )


def _admin(sql: str) -> None:
    with admin_connect() as conn:
        conn.execute(sql)


def start_outage(database: str) -> None:
    _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    _admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


def end_outage(database: str) -> None:
    _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def terminate_connections(database: str) -> int:
    """Kill every connection to ``database``; how many there were."""
    with admin_connect() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (killed,) in rows if killed)


def terminated_count(root: Path) -> int:
    """How many connections a ``terminate`` fault under ``root`` has killed so far."""
    path = root / TERMINATED
    return sum(map(int, path.read_text().split())) if path.is_file() else 0


def _terminate_for(root: Path, database: str, seconds: float, every: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(root / TERMINATED, "a") as log:
            log.write(f"{terminate_connections(database)}\n")
        time.sleep(every)


def restart_server() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )


def _disk_full(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _start_outage(plan: dict) -> None:
    start_outage(plan["database"])
    if plan["seconds"] is not None:
        threading.Timer(plan["seconds"], end_outage, (plan["database"],)).start()


def fired_marker(root: Path, plan: dict) -> Path:
    study = f"{plan['study']}-" if "study" in plan else ""
    return root / f"fired-{study}{plan['trial']}-{plan['epoch']}"


def _fire_once(root: Path, plan: dict) -> bool:
    try:
        os.close(os.open(fired_marker(root, plan), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def trial_with_faults(job: TrialJob) -> TrialOutcome:
    root = Path(job.checkpoint_dir).parents[1]
    plan_file = root / PLAN
    faults = json.loads(plan_file.read_text()) if plan_file.is_file() else []

    def hook(job: TrialJob, epoch: int) -> None:
        for plan in faults:
            here = (job.study_name, job.number, epoch)
            if here == (plan.get("study", job.study_name), plan["trial"], plan["epoch"]) and (
                _fire_once(root, plan)
            ):
                strike(plan)

    def strike(plan: dict) -> None:
        kind = plan["kind"]
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind in ("sigint", "sigterm"):
            signum = signal.SIGINT if kind == "sigint" else signal.SIGTERM
            os.kill(plan.get("pid") or os.getpid(), signum)
        elif kind == "hang":
            time.sleep(3600)
        elif kind == "outage":
            _start_outage(plan)
        elif kind == "outage-after":
            fired.append(plan)
        elif kind == "terminate":
            args = (root, plan["database"], plan["seconds"], plan["every"])
            threading.Thread(target=_terminate_for, args=args, daemon=True).start()
        elif kind == "restart":
            restart_server()
        elif kind == "disk-full":
            os.fsync = _disk_full

    fired: list[dict] = []
    outcome = run_trial(job, on_epoch_hook=hook)
    for plan in fired:
        _start_outage(plan)
    return outcome
