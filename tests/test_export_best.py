"""export_best.py: best COMPLETE trial per setting, merged, with provenance, written atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import export_best
from search import create_studies, load_spec, open_storage
from training import load_best_hyper_parameters

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name = "x"
dataset = "digits"
model = "resnet20"
optimizers = ["adamsrt", "sgd"]
epochs = 3
"""
DIST = {"lr": FloatDistribution(1e-4, 1.0, log=True)}


def _trial(state, value, lr, intermediate=None):
    hparams = {"lr": lr, "betas": [0.9, 0.99], "weight_decay": 1e-4, "eps": 1e-8}
    return optuna.create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={"lr": lr},
        distributions=DIST,
        user_attrs={"hparams": hparams},
        intermediate_values=intermediate or {},
    )


@pytest.fixture
def storage_with_studies(tmp_path):
    spec_path = tmp_path / "x.toml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = open_storage(url)
    create_studies(spec, storage)
    study = optuna.load_study(study_name=spec.study_name("adamsrt"), storage=storage)
    study.add_trial(_trial(TrialState.COMPLETE, 0.90, 1e-3, {1: 0.8, 2: 0.9}))
    study.add_trial(_trial(TrialState.COMPLETE, 0.95, 2e-3, {1: 0.9, 2: 0.95}))
    study.add_trial(_trial(TrialState.PRUNED, None, 5e-3, {1: 0.99}))  # never exported
    study.add_trial(_trial(TrialState.FAIL, None, 9e-3))
    return url, spec


@pytest.fixture
def output(tmp_path):
    path = tmp_path / "best.py"
    shutil.copy(ROOT / "best_hyper_parameters.py", path)
    return path


def test_exports_the_best_complete_trial_and_merges(storage_with_studies, output, capsys):
    url, spec = storage_with_studies
    before, _ = load_best_hyper_parameters(output)
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    table, provenance = load_best_hyper_parameters(output)
    assert table["digits"]["resnet20"]["adamsrt"] == {
        "lr": 2e-3,
        "betas": (0.9, 0.99),
        "weight_decay": 1e-4,
        "eps": 1e-8,
    }
    assert table["digits"]["resnet20"]["sgd"] == before["digits"]["resnet20"]["sgd"]  # empty study
    assert table["cifar10"] == before["cifar10"]
    record = provenance["digits/resnet20/adamsrt"]
    assert record["study"] == spec.study_name("adamsrt") and record["trial"] == 1
    assert record["value"] == 0.95 and record["date"]
    assert "wrote" in capsys.readouterr().out
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_dry_run_shows_the_change_and_writes_nothing(storage_with_studies, output, capsys):
    url, _ = storage_with_studies
    text = output.read_text()
    assert export_best.main(["--storage", url, "--output", str(output), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "digits/resnet20/adamsrt: {'lr': 0.002," in out and "(was {" in out
    assert "best val 95.00% in 3 epochs of batch 128" in out and "not written" in out
    assert output.read_text() == text


def test_output_elsewhere_starts_from_the_project_table(storage_with_studies, tmp_path):
    url, _ = storage_with_studies
    fresh = tmp_path / "new_best.py"
    assert export_best.main(["--storage", url, "--output", str(fresh)]) == 0
    table, _ = load_best_hyper_parameters(fresh)
    project, _ = load_best_hyper_parameters(ROOT / "best_hyper_parameters.py")
    assert table["cifar100"] == project["cifar100"]
    assert table["digits"]["resnet20"]["adamsrt"]["lr"] == 2e-3
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_replacing_keeps_the_file_mode(storage_with_studies, output):
    url, _ = storage_with_studies
    output.chmod(0o644)
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    assert output.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--study", "nope"], "unknown study 'nope'"),
        (["--study", "x-digits-resnet20-sgd-default"], "has no COMPLETE trial"),
    ],
)
def test_unknown_or_empty_study_is_one_line_and_leaves_the_file(
    storage_with_studies, output, capsys, args, message
):
    url, _ = storage_with_studies
    text = output.read_text()
    assert export_best.main(["--storage", url, "--output", str(output), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert output.read_text() == text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://alice:s3cret@127.0.0.1:1/optuna", "cannot open storage"),
        ("sqlite:////nonexistent/dir/studies.db", "no such SQLite file"),
        ("not a url", "storage URL is not valid"),
    ],
)
def test_unreachable_storage_is_one_line_without_password(output, capsys, url, message):
    text = output.read_text()
    assert export_best.main(["--storage", url, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert message in err and "s3cret" not in err and err.count("\n") == 1
    assert output.read_text() == text
    assert not list(output.parent.glob(".best.py.*")), "no temporary file left behind"


def _confirmation(value, source, seed):
    trial = _trial(TrialState.COMPLETE, value, 1e-3)
    trial.user_attrs.update(confirms=source, seed=seed)
    return trial


def test_the_best_confirmed_mean_wins_over_the_best_single_value(storage_with_studies, output):
    url, spec = storage_with_studies
    study = optuna.load_study(study_name=spec.study_name("adamsrt"), storage=url)
    # Trial 1 (0.95) confirms at 0.80 and 0.82; trial 0 (0.90) at 0.88 and 0.90.
    for value, source, seed in ((0.80, 1, 1), (0.82, 1, 2), (0.88, 0, 1), (0.90, 0, 2)):
        study.add_trial(_confirmation(value, source, seed))
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    table, provenance = load_best_hyper_parameters(output)
    assert table["digits"]["resnet20"]["adamsrt"]["lr"] == 1e-3  # trial 0's
    record = provenance["digits/resnet20/adamsrt"]
    assert record["trial"] == 0 and record["confirmed"] is True
    assert record["mean"] == 0.89 and record["std"] == 0.01 and record["seeds"] == [1, 2]


def test_an_unconfirmed_winner_says_so(storage_with_studies, output, capsys):
    url, _ = storage_with_studies
    assert export_best.main(["--storage", url, "--output", str(output), "--dry-run"]) == 0
    assert "unconfirmed (one seed" in capsys.readouterr().out


def test_the_budget_is_the_winning_trials_own(storage_with_studies, output):
    url, spec = storage_with_studies
    study = optuna.load_study(study_name=spec.study_name("sgd"), storage=url)
    trial = _trial(TrialState.COMPLETE, 0.5, 1e-2)
    trial.user_attrs["budget"] = {"epochs": 7, "batch_size": 32, "train_subset": 100}
    study.add_trial(trial)
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    record = load_best_hyper_parameters(output)[1]["digits/resnet20/sgd"]
    assert (record["epochs"], record["batch_size"], record["train_subset"]) == (7, 32, 100)


@pytest.mark.parametrize(
    "hparams",
    [{"lr": float("nan")}, {"lr": float("inf")}, {"lr": "0.1"}, {"betas": [0.9, None]}, []],
)
def test_a_malformed_study_is_skipped_with_one_warning(
    storage_with_studies, output, capsys, hparams
):
    url, spec = storage_with_studies
    study = optuna.load_study(study_name=spec.study_name("sgd"), storage=url)
    trial = _trial(TrialState.COMPLETE, 0.99, 1e-2)
    trial.user_attrs["hparams"] = hparams
    study.add_trial(trial)
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and spec.study_name("sgd") in warnings[0]
    table, _ = load_best_hyper_parameters(output)
    assert table["digits"]["resnet20"]["adamsrt"]["lr"] == 2e-3  # the rest is exported


def test_a_broken_target_file_is_one_line_and_untouched(storage_with_studies, output, capsys):
    url, _ = storage_with_studies
    output.write_text("BEST_HYPER_PARAMETERS = {\n")
    assert export_best.main(["--storage", url, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "could not load" in err and err.count("\n") == 1
    assert output.read_text() == "BEST_HYPER_PARAMETERS = {\n"


def test_a_database_without_optuna_is_never_given_a_schema(tmp_path, output, capsys):
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    before = db.read_bytes()
    assert export_best.main(["--storage", f"sqlite:///{db}", "--output", str(output)]) == 2
    assert "holds no Optuna studies" in capsys.readouterr().err
    assert db.read_bytes() == before


def test_leftovers_of_a_killed_export_are_swept_and_no_bytecode_is_cached(
    storage_with_studies, output
):
    url, _ = storage_with_studies
    dead = output.with_name(f".{output.name}.999999999.tmp")  # no such process
    dead.write_text("half")
    assert export_best.main(["--storage", url, "--output", str(output)]) == 0
    assert not dead.exists()
    assert sorted(p.name for p in output.parent.iterdir() if p.name.startswith(".")) == []
    assert not (output.parent / "__pycache__").exists()


def test_study_names_with_terminal_escapes_are_printed_escaped(tmp_path, output, capsys):
    url = f"sqlite:///{tmp_path / 'esc.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="evil\x1b[2J", storage=storage, direction="maximize")
    for key, value in (("dataset", "digits"), ("model", "resnet20"), ("optimizer", "adamsrt")):
        study.set_user_attr(key, value)
    study.add_trial(_trial(TrialState.COMPLETE, 0.5, 1e-3))
    assert export_best.main(["--storage", url, "--output", str(output), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J" in out


@pytest.mark.parametrize(
    "attrs", [{"confirms": 0}, {"confirms": [0], "seed": 1}, {"confirms": 0, "seed": "one"}]
)
def test_malformed_confirmation_attributes_skip_the_study_with_one_warning(
    storage_with_studies, output, capsys, attrs
):
    url, spec = storage_with_studies
    study = optuna.load_study(study_name=spec.study_name("adamsrt"), storage=url)
    trial = _trial(TrialState.COMPLETE, 0.5, 4e-3)
    trial.user_attrs.update(attrs)
    study.add_trial(trial)
    assert export_best.main(["--storage", url, "--output", str(output)]) == 2  # nothing left
    out, err = capsys.readouterr()
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "confirms and seed must be integers" in warnings[0], out
    assert "no COMPLETE trial" in err and "Traceback" not in out + err


def _row(markdown: str, optimizer: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {optimizer} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_report_compares_the_optimizers_with_numbers_from_the_database(
    storage_with_studies, output, tmp_path
):
    url, spec = storage_with_studies
    # adamsrt: trial 1 (0.95) confirms at 0.80 and 0.82; trial 0 (0.90) at 0.88 and 0.91.
    adamsrt = optuna.load_study(study_name=spec.study_name("adamsrt"), storage=url)
    for value, source, seed in ((0.80, 1, 1), (0.82, 1, 2), (0.88, 0, 1), (0.91, 0, 2)):
        adamsrt.add_trial(_confirmation(value, source, seed))
    sgd = optuna.load_study(study_name=spec.study_name("sgd"), storage=url)
    sgd.add_trial(_trial(TrialState.COMPLETE, 0.70, 3e-2, {1: 0.6, 2: 0.7}))
    sgd.add_trial(_trial(TrialState.PRUNED, None, 1e-1, {1: 0.1}))
    report = tmp_path / "report"
    assert (
        export_best.main(["--storage", url, "--output", str(output), "--report", str(report)]) == 0
    )
    assert sorted(p.name for p in report.iterdir()) == [
        "digits-resnet20.md",
        "digits-resnet20.png",
    ]
    assert (report / "digits-resnet20.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (report / "digits-resnet20.md").read_text()
    # Recomputed here from the values written above: trial 0 wins on its confirmed mean.
    mean = (0.88 + 0.91) / 2
    std = ((0.88 - mean) ** 2 + (0.91 - mean) ** 2) ** 0.5 / 2**0.5
    assert _row(text, "adamsrt")[:5] == [
        "adamsrt",
        f"{100 * mean:.2f}% ± {100 * std:.2f}",
        "1, 2",
        "90.00% (#0)",
        "2 / 1 / 1",
    ]
    assert _row(text, "sgd")[:5] == [
        "sgd",
        "70.00% (unconfirmed)",
        "–",
        "70.00% (#0)",
        "1 / 1 / 0",
    ]
    assert text.index("| adamsrt |") < text.index("| sgd |")  # confirmed first
