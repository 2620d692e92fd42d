"""Write the winners of the searches into best_hyper_parameters.py, and compare the optimizers.

For each dataset/model/optimizer found in the storage, the configuration with the best mean
validation accuracy over its confirmation seeds (else, unconfirmed, the best COMPLETE trial;
never a pruned or failed one) replaces that entry; other entries are kept. The new file is
checked to load to exactly the intended table before it atomically replaces the old one.

    python export_best.py                       # ./studies/studies.db into ./best_hyper_parameters.py
    python export_best.py --storage postgresql+psycopg://user:pass@host/optuna --dry-run
    python export_best.py --report reports      # a table and a plot per dataset/model
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from training import (
    HYPER_PARAMETERS_FILE,
    ArgumentParser,
    freeze_at_exit,
    import_or_exit,
    print_error,
)


def main(argv: Sequence[str] | None = None) -> int:
    freeze_at_exit()
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage",
        help="SQLAlchemy URL of the studies (default: $SPHERICAL_BN_STORAGE, else "
        "sqlite:///studies/studies.db in the working directory)",
    )
    parser.add_argument("--study", action="append", help="export only this study (repeatable)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(HYPER_PARAMETERS_FILE),
        help=f"file to merge into and write (default: ./{HYPER_PARAMETERS_FILE}; a new one "
        "starts from the installed table)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write, per dataset/model, a Markdown table comparing the optimizers and a "
        "PNG of it into DIR",
    )
    args = parser.parse_args(argv)

    import_or_exit("search")  # the [search] extra may not be installed
    from search import (
        ExportError,
        StorageError,
        default_storage,
        describe,
        merge,
        select_winners,
        write_report,
        write_table,
    )
    from training import (
        find_best_hyper_parameters,
        load_best_hyper_parameters,
        render_best_hyper_parameters,
    )

    storage = args.storage or default_storage()
    try:
        # A new --output starts from the table training_example.py reads, so it stays complete.
        base = args.output if args.output.exists() else find_best_hyper_parameters()
        try:
            table, provenance = load_best_hyper_parameters(base)
        except ValueError as exc:
            raise ExportError(f"{exc}; fix or remove it first (left unchanged)") from None
        winners = select_winners(storage, args.study, warn=print)
        for (dataset, model, optimizer), win in sorted(winners.items()):
            old = table.get(dataset, {}).get(model, {}).get(optimizer)
            print(describe(f"{dataset}/{model}/{optimizer}", win, old))
        merge(table, provenance, winners)
        if args.report is not None and not args.dry_run:
            for path in write_report(storage, args.report, args.study, warn=lambda _: None):
                print(f"wrote {path}")
        if args.dry_run:
            print(f"dry run: {args.output} not written")
            return 0
        old_text = args.output.read_text() if args.output.exists() else ""
        if render_best_hyper_parameters(table, provenance) == old_text:
            print(f"{args.output} is already up to date")
            return 0
        write_table(args.output, table, provenance)
        print(f"wrote {args.output}")
    except (ExportError, StorageError, FileNotFoundError) as exc:
        print_error(exc)
        return 2
    except OSError as exc:
        print_error(f"cannot write: {exc.strerror or exc} ({os.fspath(exc.filename or '')})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
