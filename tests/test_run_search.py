"""run_search.py as a user meets it: bad input is one line and exit 2 with nothing written,
an unreachable or too small Ray cluster is one line within seconds (nothing written either),
smoke runs stay apart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import export_best
import run_search

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A working directory of its own: the default storage, checkpoints and studies/ are
    relative to it, so no test writes into the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPHERICAL_BN_STORAGE", raising=False)
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
        (["--heartbeat", "0"], "--heartbeat must be a positive number of seconds"),
        (["--confirm-seeds", "2147483647"], "confirm.seeds must be at most 1000, but got"),
        (["--n-trials", "100001"], "n_trials must be at most 100000"),
        (["--seed", "-1"], "seed must be an integer from 0 to 2147483647, but got -1"),
        (["--batch-size", "0"], "batch_size must be a positive integer, but got 0"),
        (["--pruner", "asha"], "pruner.kind must be one of"),
        (["--optimizers", "sgd", "lamb"], "optimizers must be names from"),
        (["--sampler", "grid"], "sampler must be 'grid' exactly when the space is a grid"),
        (["--model", "no_such_module:net"], "no_such_module"),
        (["--set", "pruner.min_resource"], "--set must be KEY=VALUE"),
        (["--set", "space.lr={low=1}"], "space.lr must be a table with both low and high"),
        (["--set", "space.lr={low="], "must be a TOML value"),
        (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(isolated, capsys, args, message):
    try:
        code = run_search.main([*args, "--no-ray"])
    except SystemExit as exc:  # argparse's own usage errors leave from parse_args
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert list(isolated.iterdir()) == []


def test_an_unreachable_ray_cluster_is_one_line_within_seconds(isolated, capsys, no_shared_ray):
    started = time.monotonic()
    assert run_search.main(["--smoke-test", "--ray-address", "127.0.0.1:1"]) == 2
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at 127.0.0.1:1 within 10 s" in err
    assert err.count("\n") == 1
    assert list(isolated.iterdir()) == []  # no storage, no checkpoint directory, no Ray log


def test_a_bad_model_on_ray_writes_nothing(isolated, capsys, shared_ray):
    """The setting is checked while Ray starts; the storage is written only once it passed."""
    assert run_search.main(["--smoke-test", "--model", "no_such_module:net"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_module" in err and err.count("\n") == 1
    assert list(isolated.iterdir()) == []


@pytest.mark.slow
def test_resources_no_node_can_give_are_one_line(isolated, capsys, no_shared_ray):
    import os

    too_many = str(os.cpu_count() + 1)
    assert run_search.main(["--smoke-test", "--cpus-per-trial", too_many]) == 2
    err = capsys.readouterr().err
    assert f"cpus_per_trial must be at most {os.cpu_count()}" in err and err.count("\n") == 1
    assert list(isolated.iterdir()) == []


def test_a_smoke_test_never_feeds_the_default_export(isolated, capsys, write_smoke_spec):
    assert run_search.main(["--smoke-test", "--no-ray", "--study", str(write_smoke_spec)]) == 0
    assert (isolated / "studies" / "smoke.db").is_file()
    assert not (isolated / "studies" / "studies.db").exists()
    output = isolated / "best.py"
    output.write_text((ROOT / "best_hyper_parameters.py").read_text())
    assert export_best.main(["--output", str(output)]) == 2
    assert "no such SQLite file" in capsys.readouterr().err


def test_every_flag_reaches_the_studies(isolated, write_smoke_spec):
    from search import load_spec, open_storage

    args = [
        "--smoke-test",
        "--no-ray",
        "--study",
        str(write_smoke_spec),
        "--optimizers",
        "adam",
        "--seed",
        "3",
        "--batch-size",
        "32",
        "--pruner",
        "none",
        "--sampler",
        "random",
        "--set",
        "space.lr={low=1e-3, high=2e-3, log=true}",
        "--no-augment",
        "--download",  # digits ships with scikit-learn: nothing to fetch, the flag is accepted
    ]
    assert run_search.main(args) == 0
    spec = load_spec(write_smoke_spec)
    studies = open_storage("sqlite:///studies/smoke.db").get_all_studies()
    assert [s.study_name for s in studies] == ["s-smoke-digits-resnet20-adam-custom"]
    attrs = studies[0].user_attrs
    assert attrs["budget"] == {
        "epochs": 2,
        "batch_size": 32,
        "train_subset": 256,
        "augment": False,
    }
    assert attrs["search_space"]["lr"] == {"low": 1e-3, "high": 2e-3, "log": True}
    assert spec.seed == 0  # the file is unchanged
    import optuna

    trials = optuna.load_study(
        study_name=studies[0].study_name, storage="sqlite:///studies/smoke.db"
    ).get_trials()
    assert len(trials) == 2 and all(t.user_attrs["seed"] == 3 for t in trials)
    assert all(1e-3 <= t.user_attrs["hparams"]["lr"] <= 2e-3 for t in trials)


@pytest.fixture
def write_smoke_spec(tmp_path):
    path = tmp_path / "specs" / "s.toml"
    path.parent.mkdir()
    path.write_text(
        'name = "s"\ndataset = "digits"\nmodel = "resnet20"\noptimizers = ["sgd"]\n'
        "epochs = 4\nbatch_size = 64\n"
    )
    return path


@pytest.mark.parametrize(
    ("script", "missing"),
    [("run_search", "optuna"), ("run_search", "ray"), ("export_best", "sqlalchemy")],
)
def test_without_the_search_extra_each_script_says_what_to_install(tmp_path, script, missing):
    # A core install (`pip install .`) lacks the service's packages: hide one as if absent.
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"import {script}; sys.exit({script}.main([]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: the search service needs the [search] extra")
    assert f"no module {missing!r}" in proc.stderr and "pip install" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
