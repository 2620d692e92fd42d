"""run_search.py as a user meets it: bad input is one line and exit 2 with nothing written,
an unreachable or too small Ray cluster is one line within seconds, smoke runs stay apart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import export_best
import run_search


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """The default storages under tmp_path, so no test writes into studies/."""
    default = f"sqlite:///{tmp_path / 'studies.db'}"
    monkeypatch.setattr(run_search, "DEFAULT_STORAGE", default)
    monkeypatch.setattr(run_search, "SMOKE_STORAGE", f"sqlite:///{tmp_path / 'smoke.db'}")
    monkeypatch.setattr(export_best, "DEFAULT_STORAGE", default)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "--timeout must be a positive number of seconds, but got 0.0"),
        (["--timeout", "-5"], "--timeout must be a positive number of seconds, but got -5.0"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds, but got nan"),
        (["--trial-timeout", "0"], "trial_timeout must be a positive number of seconds"),
        (["--cpus-per-trial", "nan"], "cpus_per_trial must be a finite number ≥ 0"),
        (["--gpus-per-trial", "inf"], "gpus_per_trial must be a finite number ≥ 0"),
        (["--confirm-top", "2", "--confirm-seeds", "0"], "confirm must be top and seeds both"),
        (["--study", "nowhere"], "no such study spec (shipped: "),
        (["--study", "."], "must be a TOML file, but got a directory"),
        (["--heartbeat", "0"], "--heartbeat must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(isolated, capsys, args, message):
    assert run_search.main([*args, "--no-ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert list(isolated.iterdir()) == []


def test_an_unreachable_ray_cluster_is_one_line_within_seconds(isolated, capsys):
    started = time.monotonic()
    assert run_search.main(["--smoke-test", "--ray-address", "127.0.0.1:1"]) == 2
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at 127.0.0.1:1 within 10 s" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_resources_no_node_can_give_are_one_line(isolated, capsys):
    import os

    too_many = str(os.cpu_count() + 1)
    assert run_search.main(["--smoke-test", "--cpus-per-trial", too_many]) == 2
    err = capsys.readouterr().err
    assert f"cpus_per_trial must be at most {os.cpu_count()}" in err and err.count("\n") == 1


def test_a_smoke_test_never_feeds_the_default_export(isolated, capsys, write_smoke_spec):
    assert run_search.main(["--smoke-test", "--no-ray", "--study", str(write_smoke_spec)]) == 0
    assert (isolated / "smoke.db").is_file() and not (isolated / "studies.db").exists()
    output = isolated / "best.py"
    output.write_text((Path(run_search.ROOT) / "best_hyper_parameters.py").read_text())
    assert export_best.main(["--output", str(output)]) == 1
    assert "no such SQLite file" in capsys.readouterr().err


@pytest.fixture
def write_smoke_spec(tmp_path):
    path = tmp_path / "specs" / "s.toml"
    path.parent.mkdir()
    path.write_text(
        'name = "s"\ndataset = "digits"\nmodel = "resnet20"\noptimizers = ["sgd"]\n'
        "epochs = 4\nbatch_size = 64\n"
    )
    return path
