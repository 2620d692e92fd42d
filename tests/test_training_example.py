"""training_example.py: in-process via ``main(argv)`` on the offline digits set, plus
subprocess runs for the no-traceback promise and for the log written off a terminal.

The runs read a hyper-parameter file of the tests' own (the paper's cifar10/resnet20 entries
under digits/resnet20), never the committed one, which export_best.py rewrites.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import training_example

from .conftest import PAPER_TABLE_4

ROOT = Path(__file__).resolve().parents[1]
TABLE = {**PAPER_TABLE_4, "digits": {"resnet20": PAPER_TABLE_4["cifar10"]["resnet20"]}}
TINY = [
    "--model=resnet20",
    "--dataset=digits",
    "--epochs=2",
    "--train-subset=200",
    "--batch-size=64",
    "--device=cpu",
    "--no-progress",
]

pytestmark = pytest.mark.usefixtures("one_thread")


def _write_table(path: Path, table: dict) -> Path:
    """A hyper-parameter file written as plain Python, without the code under test."""
    path.write_text(f"BEST_HYPER_PARAMETERS = {table!r}\n")
    return path


@pytest.fixture(scope="module")
def table_flag(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``--hyper-parameters`` pointing at a file of ``TABLE``."""
    return f"--hyper-parameters={_write_table(tmp_path_factory.mktemp('t') / 'best.py', TABLE)}"


@pytest.fixture
def tiny(table_flag: str) -> list[str]:
    """``TINY`` reading the tests' own table."""
    return [*TINY, table_flag]


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_writes_results_with_the_exact_hyper_parameters(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert training_example.main([*tiny, "--optimizer=adamsrt", f"--output={tmp_path}"]) == 0
    expected_json = {"lr": 1e-3, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 7.8125e-6}
    metrics = _json(tmp_path / "metrics.json")
    assert metrics["setting"] == "digits/resnet20/adamsrt"
    assert metrics["hyper_parameters"] == expected_json
    [run] = metrics["runs"]
    assert run["hparams"] == expected_json and run["seed"] == 0
    assert run["status"] == "completed" and run["epochs_run"] == 2
    assert 0 <= run["best_val_acc"] <= 1 and 0 <= run["test_acc"] <= 1
    assert metrics["summary"]["test_acc"] == {"mean": run["test_acc"], "std": None}
    config = _json(tmp_path / "config.json")
    assert config["seeds"] == [0] and config["train_configs"][0]["hparams"] == expected_json
    assert len((tmp_path / "seed_0" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "seed_0" / "checkpoint.pt").is_file()
    out = capsys.readouterr().out
    assert f"test acc {100 * run['test_acc']:.2f} %" in out


def test_resume_continues_a_finished_run(tiny: list[str], tmp_path: Path) -> None:
    argv = [*tiny, "--optimizer=sgd", f"--output={tmp_path}"]
    assert training_example.main(argv) == 0
    first = _json(tmp_path / "metrics.json")["runs"][0]
    assert training_example.main([*argv, "--resume"]) == 0
    again = _json(tmp_path / "metrics.json")["runs"][0]
    for key in ("best_val_acc", "best_epoch", "test_acc", "epochs_run"):
        assert again[key] == first[key]


@pytest.mark.parametrize(
    ("optimizer", "flags", "expected"),
    [
        (
            "adam",
            ["--lr=0.005", "--beta2=0.9", "--weight-decay=0", "--eps=1e-6"],
            {"lr": 0.005, "betas": [0.9, 0.9], "weight_decay": 0.0, "eps": 1e-6},
        ),
        ("sgdmrt", ["--momentum=0.5"], {"lr": 0.1, "momentum": 0.5, "weight_decay": 3.125e-5}),
    ],
)
def test_command_line_values_override_the_file(
    tiny: list[str], tmp_path: Path, optimizer: str, flags: list[str], expected: dict
) -> None:
    argv = [*tiny, "--epochs=1", f"--optimizer={optimizer}", f"--output={tmp_path}", *flags]
    assert training_example.main(argv) == 0
    assert _json(tmp_path / "metrics.json")["runs"][0]["hparams"] == expected


def test_several_seeds_report_mean_and_std(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*tiny, "--epochs=1", "--optimizer=sgd", "--seeds", "0", "1", f"--output={tmp_path}"]
    assert training_example.main(argv) == 0
    metrics = _json(tmp_path / "metrics.json")
    assert [r["seed"] for r in metrics["runs"]] == [0, 1]
    summary = metrics["summary"]
    assert summary["runs"] == summary["completed"] == 2
    tests = [r["test_acc"] for r in metrics["runs"]]
    assert summary["test_acc"]["mean"] == pytest.approx(sum(tests) / 2)
    assert summary["test_acc"]["std"] == pytest.approx(abs(tests[0] - tests[1]) / 2**0.5)
    assert (tmp_path / "seed_1" / "checkpoint.pt").is_file()
    assert "over 2 seed(s), 2 completed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--optimizer=lamb", "--model=resnet20", "--dataset=digits"], ["adamsrt", "sgdmrt"]),
        (["--optimizer=sgd", "--model=resnet50", "--dataset=digits"], ["resnet20", "vgg16"]),
        (["--optimizer=sgd", "--model=resnet20", "--dataloader=mnist"], ["digits", "svhn"]),
        ([*TINY, "--optimizer=sgd", "--resume"], ["--resume needs --output"]),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        training_example.main(argv)
    assert exit_info.value.code == 2
    err = _one_line_error(capsys)
    assert all(word in err for word in words), err


@pytest.mark.parametrize(
    ("optimizer", "flag", "message"),
    [
        ("adam", "--momentum=0.9", "--momentum does not apply to optimizer 'adam'; it takes "),
        ("sgd", "--beta1=0.8", "--beta1 does not apply to optimizer 'sgd'; it takes "),
    ],
)
def test_override_that_does_not_apply_is_refused(
    tiny: list[str], optimizer: str, flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert training_example.main([*tiny, f"--optimizer={optimizer}", flag]) == 2
    assert message in _one_line_error(capsys)


def test_missing_dataset_files_name_the_path(
    table_flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--optimizer=sgd", "--model=resnet20", "--dataset=cifar10", f"--data-dir={tmp_path}"]
    assert training_example.main([*argv, "--device=cpu", "--no-progress", table_flag]) == 2
    err = _one_line_error(capsys)
    assert str(tmp_path / "cifar-10-batches-py") in err and "--download" in err


def test_missing_table_entry_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = TABLE["digits"]["resnet20"]["adam"]
    path = _write_table(tmp_path / "best.py", {"digits": {"resnet20": {"adam": entry}}})
    assert training_example.main([*TINY, "--optimizer=sgd", f"--hyper-parameters={path}"]) == 2
    assert "no best hyper-parameters for digits/resnet20/sgd" in _one_line_error(capsys)
    missing = tmp_path / "nope.py"
    assert training_example.main([*TINY, "--optimizer=sgd", f"--hyper-parameters={missing}"]) == 2
    assert str(missing) in _one_line_error(capsys)


def test_cuda_only_flag_on_cpu_is_one_line(
    tiny: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert training_example.main([*tiny, "--optimizer=sgd", "--bf16"]) == 2
    assert "bf16 must be False on a cpu device" in _one_line_error(capsys)


def test_unknown_model_from_the_shell_has_no_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "training_example.py",
            "--optimizer=adam",
            "--model=resnet50",
            "--dataset=digits",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "invalid choice: 'resnet50'" in proc.stderr
    assert all(name in proc.stderr for name in ("resnet18", "resnet20", "vgg16"))


def test_off_a_terminal_progress_is_one_plain_line_per_epoch(table_flag: str) -> None:
    argv = [arg for arg in TINY if arg != "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "training_example.py", *argv, "--optimizer=sgd", table_flag],
        cwd=ROOT,
        capture_output=True,  # pipes, as a log file or a cluster job would give
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    for epoch in (1, 2):
        assert sum(f"seed 0: epoch {epoch}/2 loss " in line for line in lines) == 1, lines


# --- a dataset and model of one's own, by import path ---------------------------------------

EXAMPLE = [
    "--model=examples.digits_mobilenet:mobilenet",
    "--dataloader=examples.digits_mobilenet:digits",
]
OWN_MLP = "tests.training_tests.own_models:mlp"


def test_the_worked_example_runs_from_the_repository_root() -> None:
    """The README's command (on a subset, to be quick), reading the committed table under the
    example's import paths."""
    argv = [*EXAMPLE, "--optimizer=adamsrt", "--epochs=2", "--train-subset=256"]
    proc = subprocess.run(
        [sys.executable, "training_example.py", *argv, "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    setting = "examples.digits_mobilenet:digits/examples.digits_mobilenet:mobilenet/adamsrt"
    assert proc.stdout.startswith(f"{setting} from best_hyper_parameters.py: {{")
    assert "seed 0: completed" in proc.stdout and "note:" not in proc.stdout
    assert f"{setting} over 1 seed(s), 1 completed" in proc.stdout


def test_the_notice_is_printed_for_a_spherical_optimizer_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _write_table(
        tmp_path / "best.py",
        {"digits": {OWN_MLP: {"sgdmrt": {"lr": 0.1, "momentum": 0.9}, "sgd": {"lr": 0.1}}}},
    )
    argv = [*TINY, f"--model={OWN_MLP}", "--epochs=1", f"--table={table}"]
    assert training_example.main([*argv, "--optimizer=sgdmrt"]) == 0
    out = capsys.readouterr().out.splitlines()
    notes = [line for line in out if line.startswith("note:")]
    assert notes == [
        f"note: model '{OWN_MLP}' has no scale-invariant weights (a conv or linear whose output "
        "feeds only a BatchNorm): the spherical optimizers (adamg, adams, adamsrt, sgdmrt) "
        "train it with their plain rule, every weight in the non-channel-wise group"
    ]
    assert training_example.main([*argv, "--optimizer=sgd"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_a_setting_without_an_entry_trains_on_the_command_line_s_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table_flag: str
) -> None:
    argv = [*TINY, table_flag, f"--model={OWN_MLP}", "--epochs=1", "--optimizer=adam"]
    assert training_example.main(argv) == 2
    err = _one_line_error(capsys)
    assert f"no best hyper-parameters for digits/{OWN_MLP}/adam" in err
    assert "give --lr and the other values on the command line" in err
    assert training_example.main([*argv, "--lr=0.01", f"--output={tmp_path}"]) == 0
    assert "has no entry for this setting: command-line values only" in capsys.readouterr().out
    assert _json(tmp_path / "metrics.json")["hyper_parameters"] == {"lr": 0.01}


def test_augment_flag_reaches_the_run(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*tiny, "--optimizer=sgd", "--epochs=1", f"--output={tmp_path}", "--augment"]
    assert training_example.main(argv) == 0
    assert _json(tmp_path / "config.json")["train_configs"][0]["augment"] is True
    assert training_example.main([*argv[:-1], "--no-augment"]) == 0
    assert _json(tmp_path / "config.json")["train_configs"][0]["augment"] is False


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "--model=tests.training_tests.own_models:raises",
            "error: model 'tests.training_tests.own_models:raises' must build a model when "
            "called as raises(num_classes=10, in_channels=1), but it raised RuntimeError: "
            "out of memory",
        ),
        (
            "--dataloader=tests.data_tests.own_datasets:nan_pixel",
            "error: dataset 'tests.data_tests.own_datasets:nan_pixel' must return finite "
            "values in x_train, but it holds NaN or infinity",
        ),
        (
            "--model=no_such_module_anywhere:build",
            "error: model 'no_such_module_anywhere:build' must import, but importing "
            "'no_such_module_anywhere' raised ModuleNotFoundError: ",
        ),
    ],
)
def test_a_setting_that_cannot_be_used_is_one_line_before_training(
    tiny: list[str], flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert training_example.main([*tiny, "--optimizer=sgd", flag, "--lr=0.1"]) == 2
    assert _one_line_error(capsys).startswith(message)


def test_a_damaged_checkpoint_on_resume_is_one_line(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*tiny, "--optimizer=sgd", "--epochs=1", f"--output={tmp_path}"]
    assert training_example.main(argv) == 0
    checkpoint = tmp_path / "seed_0" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    capsys.readouterr()
    assert training_example.main([*argv, "--resume"]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"error: checkpoint {checkpoint} is damaged or not a checkpoint (")


def test_an_output_that_cannot_be_written_is_one_line_exit_1(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    argv = [*tiny, "--optimizer=sgd", "--epochs=1", f"--output={tmp_path / 'file' / 'run'}"]
    assert training_example.main(argv) == 1
    assert "Not a directory" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_results_are_written_without_temporaries(tiny: list[str], tmp_path: Path) -> None:
    assert (
        training_example.main([*tiny, "--optimizer=sgd", "--epochs=1", f"--output={tmp_path}"])
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "metrics.json", "seed_0"]
    assert sorted(p.name for p in (tmp_path / "seed_0").iterdir()) == [
        "checkpoint.pt",
        "metrics.jsonl",
    ]


def test_modules_of_the_working_directory_are_found(tmp_path: Path) -> None:
    """``cd my_project && python path/to/training_example.py --model my_nets:build ...``."""
    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\n"
        "def build(num_classes, in_channels):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, bias=False), nn.BatchNorm2d(4),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n"
    )
    (tmp_path / "my_data.py").write_text(
        "import torch\n"
        "def load():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randint(0, 256, (60, 2, 6, 6), dtype=torch.uint8, generator=g)\n"
        "    y = torch.arange(60) % 3\n"
        "    return x[:50], y[:50], x[50:], y[50:]\n"
    )
    argv = ["--model=my_nets:build", "--dataloader=my_data:load", "--optimizer=adamsrt"]
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "training_example.py"),
            *argv,
            "--epochs=1",
            "--lr=0.01",
            "--device=cpu",
            "--no-progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "my_data:load/my_nets:build/adamsrt over 1 seed(s), 1 completed" in proc.stdout
