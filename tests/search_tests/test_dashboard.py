"""A finished study served by optuna-dashboard on 127.0.0.1 and rendered in headless Chromium:
the study list shows both study names, each study's trial list shows its trial count and the
state of every trial, and the study page renders (screenshot)."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import optuna
import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = [
    # Four Chromium launches plus the server: about 10 s in all.
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
    ),
]

# One letter per trial, in trial order: C complete, P pruned (after two reported epochs), F fail.
PLANS = {
    "digits-resnet20-adamsrt": "CCPCFPC",  # 7 trials: 4 complete, 2 pruned, 1 fail
    "digits-resnet20-sgd": "CPCFC",  # 5 trials: 3 complete, 1 pruned, 1 fail
}
STATE_NAMES = {"C": "Complete", "P": "Pruned", "F": "Fail"}
EPOCHS = 4
SERVER_START_S = 30.0
CHROMIUM_TIMEOUT_S = 90
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # The React app fetches /api/... after load; virtual time lets those finish, bounded.
    "--virtual-time-budget=10000",
]


class _Failed(RuntimeError):
    pass


def _objective(plan: str):
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        kind = plan[trial.number]
        if kind == "F":
            raise _Failed(f"trial {trial.number} diverged")
        for epoch in range(EPOCHS):
            trial.report(0.5 + 0.1 * epoch + 0.01 * trial.number, epoch)
            if kind == "P" and epoch == 1:
                raise optuna.TrialPruned()
        return 0.8 + 0.01 * trial.number + 1e-3 * lr

    return objective


def _build_storage(db: Path) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{db}"
    storage = optuna.storages.RDBStorage(url)
    ids = {}
    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.ERROR)  # the planned FAIL trials would log tracebacks
    try:
        for name, plan in PLANS.items():
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                direction="maximize",
                sampler=optuna.samplers.RandomSampler(seed=0),
            )
            study.optimize(_objective(plan), n_trials=len(plan), catch=(_Failed,))
            ids[name] = storage.get_study_id_from_name(name)
    finally:
        optuna_logger.setLevel(level)
        storage.remove_session()
        storage.engine.dispose()
    return url, ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"optuna-dashboard exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"optuna-dashboard did not answer {url} within {deadline_s} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """(base URL, {study name: study id}) of an optuna-dashboard serving a finished SQLite file."""
    tmp = tmp_path_factory.mktemp("dashboard")
    url, ids = _build_storage(tmp / "search.db")
    exe = Path(sys.executable).with_name("optuna-dashboard")
    assert exe.exists(), f"no optuna-dashboard console script next to {sys.executable}"
    port = _free_port()
    log = tmp / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(exe), url, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/api/studies", proc, log, SERVER_START_S)
        yield base, ids
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=True,
        cwd=tmp_path,
    )


class _Text(HTMLParser):
    """The visible text nodes of a page, in document order (scripts and styles left out)."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def _rendered_text(url: str, tmp_path: Path) -> list[str]:
    dom = _chromium(url, tmp_path, "--dump-dom").stdout
    parser = _Text()
    parser.feed(dom)
    return parser.texts


def test_study_list_shows_both_studies(dashboard, tmp_path):
    base, ids = dashboard
    texts = _rendered_text(f"{base}/dashboard", tmp_path)
    page = " ".join(texts)
    # Each study is a card titled "<study id>. <study name>".
    for name, study_id in ids.items():
        assert f"{study_id}. {name}" in page, (
            f"{name!r} not rendered on the study list: {page[:2000]}"
        )
    assert page.count("Direction: MAXIMIZE") == len(PLANS), page[:2000]


@pytest.mark.parametrize("name", list(PLANS))
def test_trial_list_shows_trial_counts_and_states(dashboard, tmp_path, name):
    base, ids = dashboard
    plan = PLANS[name]
    texts = _rendered_text(f"{base}/dashboard/studies/{ids[name]}/trials", tmp_path)
    page = " ".join(texts)
    assert f"{name} (id={ids[name]})" in texts, page[:2000]
    # The list header counts the trials ...
    assert f"{len(plan)} Trials" in texts, page[:2000]
    # ... and each list row is "Trial <number>" followed by its state chip.
    states = {
        int(m.group(1)): nxt
        for cur, nxt in pairwise(texts)
        if (m := re.fullmatch(r"Trial (\d+)", cur))
    }
    assert states == {i: STATE_NAMES[k] for i, k in enumerate(plan)}, page[:2000]
    counts = {s: list(states.values()).count(s) for s in STATE_NAMES.values()}
    assert counts == {s: plan.count(k) for k, s in STATE_NAMES.items()}


def test_study_page_renders(dashboard, tmp_path):
    base, ids = dashboard
    name = "digits-resnet20-adamsrt"
    url = f"{base}/dashboard/studies/{ids[name]}"
    texts = _rendered_text(url, tmp_path)
    page = " ".join(texts)
    assert f"{name} (id={ids[name]})" in texts, page[:2000]
    best = max(i for i, k in enumerate(PLANS[name]) if k == "C")  # values grow with the number
    assert f"Best Trial (number={best})" in texts, page[:2000]
    # The timeline legend names the three states present in the study.
    for state in STATE_NAMES.values():
        assert state in texts, page[:2000]

    shot = tmp_path / "study.png"
    _chromium(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1280  # IHDR width
    assert int.from_bytes(data[20:24], "big") == 900  # IHDR height
    assert len(data) > 30_000, f"screenshot is only {len(data)} bytes: a blank page?"
