"""A database written by the search (``search.run``) served by optuna-dashboard on 127.0.0.1 and
rendered in headless Chromium: the study list, each study's trial list (count and the state of
every trial), a trial's details with the search's attributes, and each study page (best trial,
the states in its legend, a screenshot) show what the storage holds."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from search import StudySpec, create_studies, load_spec, open_storage, run

from .conftest import TINY

CHROMIUM = shutil.which("chromium")
pytestmark = [
    # A small search in-process (20-40 s on 2 busy cores), then the server and seven Chromium
    # launches (3-6 s each); the search is a module fixture, run once on one worker.
    pytest.mark.slow,
    pytest.mark.xdist_group("dashboard"),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
    ),
]

OPTIMIZERS = ("adamsrt", "sgd")
# The study that gets the diverging trial: SGD's loss overflows at once with this lr.
DIVERGING = ("sgd", {"lr": 1e12, "weight_decay": 1e-2, "momentum": 0.99})
STATE_NAMES = {
    TrialState.COMPLETE: "Complete",
    TrialState.PRUNED: "Pruned",
    TrialState.FAIL: "Fail",
}
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


def _search(tmp: Path) -> tuple[str, StudySpec]:
    """Run a small, seeded search in-process: some trials complete, some are pruned (median
    pruner from epoch 2) and the enqueued diverging trial fails."""
    spec_path = tmp / "dash.toml"
    text = TINY.format(
        name="dash",
        optimizers=list(OPTIMIZERS),
        epochs=3,
        n_trials=5,
        train_subset=128,
        pruner="median",
        workers=1,
        cpus=1,
        extra="",
        model="resnet20",  # its trials spread enough for the median pruner to prune some
    )
    spec_path.write_text(text.replace("'", '"'))
    spec = load_spec(spec_path)
    url = f"sqlite:///{tmp / 'search.db'}"
    create_studies(spec, open_storage(url))
    optimizer, params = DIVERGING
    study = optuna.load_study(study_name=spec.study_name(optimizer), storage=url)
    study.enqueue_trial(params, skip_if_exists=False)
    with pytest.warns(UserWarning, match="is out of range for distribution"):
        run(
            spec,
            storage_url=url,
            executor="local",
            checkpoint_dir=tmp / "checkpoints",
            heartbeat_interval=2,
            say=lambda _: None,
        )
    return url, spec


@dataclass(frozen=True)
class Stored:
    """What the storage holds for one study, read with optuna alone."""

    name: str
    study_id: int
    trials: list[FrozenTrial]
    best: int


def _stored(url: str, spec: StudySpec) -> dict[str, Stored]:
    """Each optimizer's study as the storage holds it."""
    storage = optuna.storages.RDBStorage(url)
    try:
        out = {}
        for opt in OPTIMIZERS:
            name = spec.study_name(opt)
            study = optuna.load_study(study_name=name, storage=storage)
            study_id = storage.get_study_id_from_name(name)
            out[opt] = Stored(name, study_id, study.trials, study.best_trial.number)
        return out
    finally:
        storage.remove_session()
        storage.engine.dispose()


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
    """(base URL, {optimizer: what the storage holds of its study}) of an optuna-dashboard
    serving the SQLite file of a finished search."""
    tmp = tmp_path_factory.mktemp("dashboard")
    url, spec = _search(tmp)
    stored = _stored(url, spec)
    states = {t.state for s in stored.values() for t in s.trials}
    # Without these the checks below could not tell a state chip or a legend entry apart.
    assert states == set(STATE_NAMES), f"the search left the states {states}"
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
        yield base, stored
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


def _names(trials: list[FrozenTrial]) -> dict[int, str]:
    return {t.number: STATE_NAMES[t.state] for t in trials}


def test_study_list_shows_every_study(dashboard, tmp_path):
    base, stored = dashboard
    texts = _rendered_text(f"{base}/dashboard", tmp_path)
    page = " ".join(texts)
    # Each study is a card titled "<study id>. <study name>".
    for study in stored.values():
        assert f"{study.study_id}. {study.name}" in page, (
            f"{study.name!r} not on the study list: {page[:2000]}"
        )
    assert page.count("Direction: MAXIMIZE") == len(stored), page[:2000]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_trial_list_shows_trial_counts_and_states(dashboard, tmp_path, optimizer):
    base, stored = dashboard
    study = stored[optimizer]
    texts = _rendered_text(f"{base}/dashboard/studies/{study.study_id}/trials", tmp_path)
    page = " ".join(texts)
    assert f"{study.name} (id={study.study_id})" in texts, page[:2000]
    # The list header counts the trials ...
    assert f"{len(study.trials)} Trials" in texts, page[:2000]
    # ... and each list row is "Trial <number>" followed by its state chip.
    states = {
        int(m.group(1)): nxt
        for cur, nxt in pairwise(texts)
        if (m := re.fullmatch(r"Trial (\d+)", cur))
    }
    assert states == _names(study.trials), page[:2000]


def test_trial_details_show_the_search_attributes(dashboard, tmp_path):
    """The diverging trial's details: its reason and the attributes the driver and the trial's
    task recorded (shown as "<key> <value>", non-strings as JSON)."""
    base, stored = dashboard
    study = stored[DIVERGING[0]]
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    texts = _rendered_text(
        f"{base}/dashboard/studies/{study.study_id}/trials?numbers={failed.number}", tmp_path
    )
    page = " ".join(texts)
    assert failed.user_attrs["fail_reason"].startswith("diverged"), failed.user_attrs
    for key in ("fail_reason", "hparams", "budget", "seed", "worker"):
        value = failed.user_attrs[key]
        shown = value if isinstance(value, str) else json.dumps(value)
        assert f"{key} {shown}" in texts, f"{key} not shown: {page[:3000]}"


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_study_page_shows_the_best_trial_and_the_states(dashboard, tmp_path, optimizer):
    base, stored = dashboard
    study = stored[optimizer]
    texts = _rendered_text(f"{base}/dashboard/studies/{study.study_id}", tmp_path)
    page = " ".join(texts)
    assert f"{study.name} (id={study.study_id})" in texts, page[:2000]
    assert f"Best Trial (number={study.best})" in texts, page[:2000]
    # The timeline legend names each state present in the study.
    for state in set(_names(study.trials).values()):
        assert state in texts, page[:2000]
    # The per-epoch curves of the complete and the pruned trials (the dashboard leaves failed
    # ones out) are drawn: one legend entry each.
    assert "Intermediate values" in texts, page[:2000]
    curves = {
        t.number
        for t in study.trials
        if t.intermediate_values and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    pruned = [t.number for t in study.trials if t.state == TrialState.PRUNED]
    assert set(pruned) & curves, f"no pruned curve to look for in {study.name}"
    drawn = {int(m.group(1)) for text in texts if (m := re.fullmatch(r"trial #(\d+)", text))}
    assert drawn == curves, page[:2000]


def test_study_page_screenshot(dashboard, tmp_path):
    base, stored = dashboard
    study = stored[DIVERGING[0]]
    shot = tmp_path / "study.png"
    _chromium(
        f"{base}/dashboard/studies/{study.study_id}",
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1280,900",
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1280  # IHDR width
    assert int.from_bytes(data[20:24], "big") == 900  # IHDR height
    assert len(data) > 30_000, f"screenshot is only {len(data)} bytes: a blank page?"
