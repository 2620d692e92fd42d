"""The scripts' command-line convention: a usage error is one line, ``error: ...``, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training import ArgumentParser, error_line, print_error

ROOT = Path(__file__).resolve().parents[2]
# Runs a script with --help; the exit hook registered first runs last, after the script's own.
EXIT_PROBE = """
import atexit, gc, runpy, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count()))
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="demo", description="A demo.")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--kind", choices=["a", "b"])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run").add_argument("--n", type=int)
    return parser


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--epochs", "x"], "error: argument --epochs: invalid int value: 'x' (see --help)"),
        ([], "error: the following arguments are required: --epochs (see --help)"),
        (
            ["--epochs", "1", "--kind", "c"],
            "error: argument --kind: invalid choice: 'c' (choose from a, b) (see --help)",
        ),
        (["--epochs", "1", "--nope"], "error: unrecognized arguments: --nope (see --help)"),
        (
            ["--epochs", "1", "run", "--n", "x"],
            "error: argument --n: invalid int value: 'x' (see --help)",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    # argparse's quoting of choices changed between Python versions: compare without quotes.
    assert captured.err.replace("'a', 'b'", "a, b") == line + "\n"


def test_help_is_argparse_s_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: demo") and "A demo." in out and "--epochs" in out


def test_error_line_is_one_line_whatever_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert error_line("two\nlines") == "error: two lines"
    assert error_line(ValueError("bell \x07 and escape \x1b[2J")) == (
        "error: bell \\x07 and escape \\x1b[2J"
    )
    print_error(FileNotFoundError("missing: /x"))
    assert capsys.readouterr().err == "error: missing: /x\n"


@pytest.mark.parametrize("script", ["run_search.py", "export_best.py", "training_example.py"])
def test_each_script_leaves_its_objects_to_no_last_collection_at_exit(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    frozen = int(proc.stdout.rsplit("frozen at exit:", 1)[1])
    assert frozen > 10_000  # torch alone leaves more objects than that
