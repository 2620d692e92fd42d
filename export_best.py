"""Write the winners of the searches into best_hyper_parameters.py.

For each dataset/model/optimizer found in the storage, the configuration with the best mean
validation accuracy over its confirmation seeds (else, unconfirmed, the best COMPLETE trial;
never a pruned or failed one) replaces that entry; other entries are kept. The new file is
checked to load to exactly the intended table before it atomically replaces the old one.

    python export_best.py                       # the default SQLite storage under studies/
    python export_best.py --storage postgresql+psycopg://user:pass@host/optuna --dry-run
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT / "best_hyper_parameters.py"
DEFAULT_STORAGE = f"sqlite:///{ROOT / 'studies' / 'studies.db'}"


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

    from search import ExportError, StorageError, describe, merge, select_winners, write_table
    from training import load_best_hyper_parameters, render_best_hyper_parameters

    try:
        # A new --output starts from the project's table, so it stays complete.
        base = args.output if args.output.exists() else DEFAULT_OUTPUT
        try:
            table, provenance = load_best_hyper_parameters(base)
        except ValueError as exc:
            raise ExportError(f"{exc}; fix or remove it first (left unchanged)") from None
        winners = select_winners(args.storage, args.study, warn=print)
        for (dataset, model, optimizer), win in sorted(winners.items()):
            old = table.get(dataset, {}).get(model, {}).get(optimizer)
            print(describe(f"{dataset}/{model}/{optimizer}", win, old))
        merge(table, provenance, winners)
        if args.dry_run:
            print(f"dry run: {args.output} not written")
            return 0
        old_text = args.output.read_text() if args.output.exists() else ""
        if render_best_hyper_parameters(table, provenance) == old_text:
            print(f"{args.output} is already up to date")
            return 0
        write_table(args.output, table, provenance)
        print(f"wrote {args.output}")
    except (ExportError, StorageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
