"""Where trials run: warm runners on Ray (a local Ray, or a cluster), or this process.

An executor runs one :class:`TrialJob` per ``submit`` and hands back its :class:`TrialOutcome`
from ``wait``. It keeps no bookkeeping of trials: the driver owns that.

On Ray each slot is a runner actor with the trial's CPU/GPU share that lives across trials, so
its process keeps its imports, its storage connection and the datasets it loaded
(``_trial.py`` caches them per process). A runner is made when a trial needs one and let go as
soon as nothing is left to launch, so a GPU share is held only while trials run. A runner that
dies takes its trial with it: ``wait`` reports it ``lost`` and the driver decides what follows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from data._import_path import first_line

from ._spec import StudySpec
from ._storage import StorageError
from ._trial import TrialJob, TrialOutcome

TrialFn = Callable[[TrialJob], TrialOutcome]

# How long joining a Ray cluster may take before the search stops with one line.
RAY_CONNECT_TIMEOUT_S = 10.0


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached, or cannot fit one trial (one clear line)."""


class InProcess:
    """Trials in this process, one at a time (``--no-ray``): debugging, tests, a quick look."""

    name = "in-process"
    device = "cpu"

    def __init__(self, trial_fn: TrialFn) -> None:
        self.trial_fn = trial_fn
        self.pending: list[tuple[object, TrialJob]] = []
        self.training = False  # a signal raises only while a trial trains

    def slots(self, workers: int) -> int:
        return 1

    def submit(self, job: TrialJob) -> object:
        handle = object()
        self.pending.append((handle, job))
        return handle

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TrialOutcome]]:
        if not self.pending:
            time.sleep(timeout)
            return []
        handle, job = self.pending.pop(0)
        self.training = True
        try:
            outcome = self.trial_fn(job)
        except StorageError:
            raise  # the driver shares the database: it stops too
        except Exception as exc:
            outcome = TrialOutcome("fail", reason=f"{type(exc).__name__}: {exc}")
        finally:
            self.training = False
        return [(handle, outcome)]

    def cancel(self, handle: object) -> None:
        self.pending = [(h, j) for h, j in self.pending if h is not handle]

    def release_idle(self) -> None:
        pass

    def close(self) -> None:
        self.pending.clear()


def probe(address: str) -> None:
    """Fail within RAY_CONNECT_TIMEOUT_S when nothing listens at a ``host:port`` address
    (Ray's own connect waits minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} within {RAY_CONNECT_TIMEOUT_S:g} s "
            f"({reason or type(exc).__name__}): is `ray start --head` running there?"
        ) from None


def start_ray(address: str | None, log_path: Path, py_modules: list[str]) -> bool:
    """Start a private local Ray (``address`` None) or join a cluster; Ray's own messages go
    to ``log_path``. Returns whether this process started it (a Ray it already joined, in a
    notebook or a benchmark, is used as it is). Call it from the main thread: a Ray started
    from another thread loses its connection to its own control store later."""
    import ray

    _log_ray_to(log_path)
    if ray.is_initialized():
        return False
    if address is not None:
        probe(address)
    env = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}  # CPU trials must not see the GPUs
    runtime_env: dict[str, Any] = {"env_vars": env}
    system_config: dict[str, Any] = {}  # a cluster keeps its own
    if address is None:
        # Runners import what the driver imports: its working directory and PYTHONPATH.
        path = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(path)
        # Ray would start one idle worker per CPU that no runner can use (their runtime
        # environments differ) and stop them when the runners start: 0.3-0.6 s of a 2-core
        # machine's start (benchmarks/search_start.py), and a process per CPU on a big one.
        system_config = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}
    elif py_modules:
        runtime_env["py_modules"] = py_modules  # the user's model/dataset modules, shipped
    try:
        ray.init(
            address=address or "local",  # "local": a private Ray, even when `ray start` runs here
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            _system_config=system_config,
        )
    except ConnectionError as exc:  # "auto" with no cluster on this machine, say
        if address is None:
            raise
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {first_line(exc)}; "
            "is `ray start --head` running there?"
        ) from None
    return True


class _FileOnFirstRecord(logging.FileHandler):
    """A log file (and its directory) made when the first record comes, so a run refused
    before anything happens leaves no file behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _log_ray_to(path: Path) -> None:
    """Ray's loggers, and the messages its driver prints from the cluster (a dead worker's,
    with colour codes, straight to stdout; Ray has no switch for them), go to ``path``."""
    import ray._private.worker as ray_worker

    handler = _FileOnFirstRecord(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers, ray_logger.propagate = [handler], False

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        for line in data.get("lines", ()):
            ray_logger.warning("(%s) %s", data.get("pid", "ray"), line)

    ray_worker.print_to_stdstream = to_log


def shipped_modules(spec: StudySpec) -> list[str]:
    """Where the user's ``module:function`` model and dataset live, when not installed: what a
    Ray cluster must be sent (a package's directory, or a module's file)."""
    shipped = []
    for path in (spec.model, spec.dataset):
        if ":" not in path:
            continue
        top = path.split(":", 1)[0].split(".", 1)[0]
        found = importlib.util.find_spec(top)
        origin = Path(found.origin) if found is not None and found.origin else None
        if origin is None or any(str(origin).startswith(p) for p in _installed_prefixes()):
            continue
        shipped.append(str(origin.parent if origin.name == "__init__.py" else origin))
    return sorted(set(shipped))


def _installed_prefixes() -> list[str]:
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]


class RayRunners:
    """Trials on warm runner actors, at most one trial per runner (see the module)."""

    def __init__(
        self,
        address: str | None,
        cpus: float,
        gpus: float,
        trial_fn: TrialFn,
        say: Callable[[str], None],
        *,
        owned: bool,
        workers: int,
        warm_up: Callable[[], object] | None = None,
    ) -> None:
        import ray

        self.ray, self.owned = ray, owned
        self.idle: list[Any] = []
        self.busy: dict[Any, Any] = {}  # the ref of a trial's outcome → its runner
        resources = ray.cluster_resources()
        self.name = "local Ray" if address is None else f"Ray at {address}"
        say(
            f"ray: {'local' if address is None else address} — "
            f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
            f"{len(ray.nodes())} node(s)"
        )
        if gpus > 0 and resources.get("GPU", 0) == 0:
            say("no GPU in the Ray cluster: running the trials on CPUs")
            gpus = 0.0
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            self.close()
            most = max((n.get("CPU", 0) for n in nodes), default=0)
            raise ClusterError(
                f"no node of the Ray cluster can run a trial: cpus_per_trial must be at most "
                f"{most:g} (the most CPUs on one node) and gpus_per_trial at most the GPUs of "
                f"one node, but got {cpus:g} CPUs and {gpus:g} GPUs"
            )
        self.device = "cuda" if gpus > 0 else "cpu"
        self.runner_class = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(Runner)
        self.trial_fn, self.warm_up = trial_fn, warm_up
        # Started now, they import and load the data while the driver makes its studies.
        self.idle = [self._runner() for _ in range(workers)]

    def _runner(self) -> Any:
        return self.runner_class.remote(self.trial_fn, self.warm_up)

    def slots(self, workers: int) -> int:
        return workers

    def submit(self, job: TrialJob) -> Any:
        runner = self.idle.pop() if self.idle else self._runner()
        ref = runner.run.remote(job)
        self.busy[ref] = runner
        return ref

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, TrialOutcome]]:
        if not handles:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        ready, _ = self.ray.wait(handles, num_returns=len(ready) or 1, timeout=0)
        done = []
        for ref in ready:
            runner = self.busy.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as exc:  # the trial function raised
                cause = exc.as_instanceof_cause()
                outcome = TrialOutcome("fail", reason=f"{type(cause).__name__}: {cause}")
                self.idle.append(runner)
            except self.ray.exceptions.RayError as exc:  # the runner's process is gone
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcome = TrialOutcome("lost", reason=first or type(exc).__name__)
                self.ray.kill(runner)
            else:
                self.idle.append(runner)
            done.append((ref, outcome))
        return done

    def cancel(self, handle: Any) -> None:
        runner = self.busy.pop(handle, None)
        if runner is not None:
            self.ray.kill(runner)  # a hung trial: its process goes with it

    def release_idle(self) -> None:
        """Let idle runners go, so their CPU/GPU shares return to the cluster."""
        for runner in self.idle:
            self.ray.kill(runner)
        self.idle.clear()

    def close(self) -> None:
        for runner in [*self.idle, *self.busy.values()]:
            self.ray.kill(runner)
        self.idle.clear()
        self.busy.clear()
        if self.owned:
            self.ray.shutdown()


class Runner:
    """A Ray actor that runs trials one after another in one warm process; ``warm_up`` (the
    setting's check: imports, dataset into the process's cache, a model) runs first."""

    def __init__(self, trial_fn: TrialFn, warm_up: Callable[[], object] | None) -> None:
        self.trial_fn = trial_fn
        if warm_up is not None:
            with contextlib.suppress(Exception):  # the driver checked it: a trial says what fails
                warm_up()

    def run(self, job: TrialJob) -> TrialOutcome:
        return self.trial_fn(job)
