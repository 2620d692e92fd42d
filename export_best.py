"""Write the winners of the searches into best_hyper_parameters.py.

For each dataset/model/optimizer found in the storage, the best COMPLETE trial (never a pruned
or failed one) replaces that entry; other entries are kept. The new file is checked to parse
and load to exactly the intended table before it atomically replaces the old one.

    python export_best.py                       # the default SQLite storage under studies/
    python export_best.py --storage postgresql+psycopg://user:pass@host/optuna --dry-run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT / "best_hyper_parameters.py"
DEFAULT_STORAGE = f"sqlite:///{ROOT / 'studies' / 'studies.db'}"


class ExportError(RuntimeError):
    """Nothing to export, or the export cannot be written; one clear line."""


def _winners(
    storage_url: str, names: Sequence[str] | None
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(dataset, model, optimizer) → {hparams, provenance} of the best COMPLETE trial."""
    import optuna
    from optuna.trial import TrialState

    from search import counted_trials, open_storage, redact
    from search._storage import is_sqlite

    if is_sqlite(storage_url):
        import sqlalchemy

        database = sqlalchemy.engine.make_url(storage_url).database
        if not database or not Path(database).is_file():
            raise ExportError(f"storage {redact(storage_url)}: no such SQLite file")
    storage = open_storage(storage_url)
    studies = {s.study_name: s for s in storage.get_all_studies()}
    if names:
        unknown = sorted(set(names) - set(studies))
        if unknown:
            raise ExportError(
                f"unknown study {unknown[0]!r} in {redact(storage_url)}; available: {sorted(studies)}"
            )
        studies = {n: studies[n] for n in names}
    winners: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, frozen in sorted(studies.items()):
        attrs = frozen.user_attrs
        if not {"dataset", "model", "optimizer"} <= set(attrs):
            if names:
                raise ExportError(
                    f"study {name!r} was not made by run_search.py (no dataset/model/optimizer)"
                )
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        complete = [
            t
            for t in counted_trials(study.get_trials(deepcopy=False))
            if t.state == TrialState.COMPLETE and "hparams" in t.user_attrs
        ]
        if not complete:
            if names:
                raise ExportError(f"study {name!r} has no COMPLETE trial to export")
            continue
        best = max(complete, key=lambda t: t.value)
        key = (attrs["dataset"], attrs["model"], attrs["optimizer"])
        if key in winners and winners[key]["provenance"]["value"] >= best.value:
            continue
        hparams = dict(best.user_attrs["hparams"])
        if "betas" in hparams:
            hparams["betas"] = tuple(hparams["betas"])
        winners[key] = {
            "hparams": hparams,
            "provenance": {
                "study": name,
                "trial": best.number,
                "value": round(best.value, 4),
                "date": best.datetime_complete.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "epochs": attrs.get("epochs"),
                "batch_size": attrs.get("batch_size"),
            },
        }
    if not winners:
        raise ExportError(f"no COMPLETE trial of a run_search.py study in {redact(storage_url)}")
    return winners


def _write_atomically(path: Path, text: str, expected: tuple[dict, dict]) -> None:
    from training import load_best_hyper_parameters

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".py", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if load_best_hyper_parameters(tmp) != expected:
            raise ExportError(
                f"the new {path.name} does not load back to the exported table; left unchanged"
            )
        # mkstemp makes the file private; keep the mode of the file it replaces.
        umask = os.umask(0)
        os.umask(umask)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="SQLAlchemy URL of the studies (default: SQLite under studies/)",
    )
    parser.add_argument("--study", action="append", help="export only this study (repeatable)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="file to merge into and write (default: best_hyper_parameters.py)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    args = parser.parse_args(argv)

    from search import StorageError
    from training import load_best_hyper_parameters, render_best_hyper_parameters

    try:
        winners = _winners(args.storage, args.study)
        # A new --output starts from the project's table, so it stays complete.
        base = args.output if args.output.exists() else DEFAULT_OUTPUT
        table, provenance = load_best_hyper_parameters(base)
        old_text = args.output.read_text() if args.output.exists() else ""
        for (dataset, model, optimizer), win in sorted(winners.items()):
            key = f"{dataset}/{model}/{optimizer}"
            old = table.get(dataset, {}).get(model, {}).get(optimizer)
            p = win["provenance"]
            change = "unchanged" if old == win["hparams"] else f"was {old}" if old else "new"
            print(
                f"{key}: {win['hparams']} ({change}) — study {p['study']}, trial #{p['trial']}, "
                f"best val {100 * p['value']:.2f}% in {p['epochs']} epochs of batch {p['batch_size']}"
            )
            table.setdefault(dataset, {}).setdefault(model, {})[optimizer] = win["hparams"]
            provenance[key] = p
        text = render_best_hyper_parameters(table, provenance)
        if args.dry_run:
            print(f"dry run: {args.output} not written")
            return 0
        if text == old_text:
            print(f"{args.output} is already up to date")
            return 0
        _write_atomically(args.output, text, (table, provenance))
        print(f"wrote {args.output}")
    except (ExportError, StorageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
