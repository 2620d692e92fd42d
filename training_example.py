"""Train one model with one optimizer on one dataset under the paper's protocol, using the best
hyper-parameters of best_hyper_parameters.py, and report validation and test accuracy.

    python training_example.py --optimizer=adamsrt --model=resnet18 --dataloader=cifar100
    python training_example.py --optimizer=sgdmrt --model=resnet20 --dataset=digits \\
        --epochs=30 --seeds 0 1 2 --output=runs/digits
    python training_example.py --optimizer=adamsrt --epochs=2 \\
        --model=examples.digits_mobilenet:mobilenet --dataloader=examples.digits_mobilenet:digits

--model and --dataloader take a registry name or a "package.module:function" import path of
your own: a model function called as function(num_classes=N, in_channels=C), a dataset
function called with no arguments that returns (x_train, y_train, x_test, y_test) tensors
(see data.build_loaders); the current directory is searched for the module too. The table
(--table, default ./best_hyper_parameters.py, else the installed one) is looked up under
those names. Every value set on the command line (--lr, --weight-decay, --momentum, --beta1,
--beta2, --eps) replaces the table's; only those that the optimizer takes are accepted, and a
setting without a table entry trains on them and the optimizer's defaults. With --output,
DIR/config.json holds the resolved settings, DIR/metrics.json the results per seed and their
mean and std, and DIR/seed_N/ the checkpoint and per-epoch metrics (--resume continues there).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data import IMPORT_PATH_RULE, DatasetChecksumError, is_import_path, list_datasets
from models import list_models
from optim import get_optimizer_info, list_optimizers
from training import (
    ArgumentParser,
    CheckpointWriteError,
    TrainConfig,
    TrainResult,
    atomic_write,
    find_best_hyper_parameters,
    freeze_at_exit,
    inspect_setting,
    load_best_hyper_parameters,
    lookup_hyper_parameters,
    print_error,
    train,
)

PAPER_EPOCHS = 405

# Command-line override -> the optimizer keyword argument it sets.
_OVERRIDES = {
    "lr": "lr",
    "weight_decay": "weight_decay",
    "momentum": "momentum",
    "beta1": "betas",
    "beta2": "betas",
    "eps": "eps",
}


def _name_or_import_path(choices: list[str]) -> Any:
    """An argparse ``type``: a registry name from ``choices`` or an import path."""

    def parse(value: str) -> str:
        if value in choices or is_import_path(value):
            return value
        listed = ", ".join(repr(c) for c in choices)
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {listed}, or {IMPORT_PATH_RULE})"
        )

    return parse


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="training_example.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--optimizer", required=True, choices=list_optimizers())
    parser.add_argument(
        "--model",
        required=True,
        type=_name_or_import_path(list_models()),
        help=f"one of {', '.join(list_models())}, or package.module:function",
    )
    parser.add_argument(
        "--dataloader",
        "--dataset",
        dest="dataset",
        required=True,
        type=_name_or_import_path(list_datasets()),
        help=f"one of {', '.join(list_datasets())}, or package.module:function",
    )
    parser.add_argument("--epochs", type=int, default=PAPER_EPOCHS, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    seeds.add_argument(
        "--seeds", type=int, nargs="+", help="train once per seed; report mean and std"
    )
    parser.add_argument("--data-dir", help="dataset root (default: $SPHERICAL_BN_DATA_DIR)")
    parser.add_argument("--download", action="store_true", help="fetch missing dataset files")
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        help="random crop and flip of the training images (default: the dataset's own: "
        "on for CIFAR, off for the others and for an import-path dataset)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory (CUDA only)")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the model and the optimizer step"
    )
    parser.add_argument("--train-subset", type=int, help="train on the first N training images")
    parser.add_argument("--output", type=Path, help="directory for results and checkpoints")
    parser.add_argument(
        "--resume", action="store_true", help="continue from --output's checkpoints"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--table",
        "--hyper-parameters",
        dest="table",
        type=Path,
        help="best-hyper-parameter file to read (default: ./best_hyper_parameters.py, "
        "else the installed one)",
    )
    overrides = parser.add_argument_group("hyper-parameter overrides")
    for flag in ("lr", "weight_decay", "momentum", "beta1", "beta2", "eps"):
        overrides.add_argument(f"--{flag.replace('_', '-')}", type=float, dest=flag)
    return parser


def _hyper_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The file's entry for the setting, with the command-line overrides applied; with no
    entry, the overrides alone (the optimizer's defaults for the rest) if there are any."""
    table, _ = load_best_hyper_parameters(args.table)
    given = [flag for flag in _OVERRIDES if getattr(args, flag) is not None]
    try:
        hparams = lookup_hyper_parameters(args.dataset, args.model, args.optimizer, table)
    except ValueError as err:
        if not given:
            raise ValueError(
                f"{err} (add an entry to {args.table}, or give --lr and the other values "
                "on the command line)"
            ) from None
        print(f"{args.table} has no entry for this setting: command-line values only")
        hparams = {}
    info = get_optimizer_info(args.optimizer)
    accepted = info.hyperparameters()
    applicable = [f"--{f.replace('_', '-')}" for f, key in _OVERRIDES.items() if key in accepted]
    for flag, key in _OVERRIDES.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if key not in accepted:
            raise ValueError(
                f"--{flag.replace('_', '-')} does not apply to optimizer {args.optimizer!r}; "
                f"it takes {', '.join(applicable)}"
            )
        if key == "betas":
            default = inspect.signature(info.cls).parameters["betas"].default
            betas = list(hparams.get("betas", default))
            betas[flag == "beta2"] = value
            hparams["betas"] = tuple(betas)
        else:
            hparams[key] = value
    return hparams


def _mean_std(values: list[float]) -> dict[str, float | None] | None:
    """Mean and sample std (``None`` for a single value) of ``values``; ``None`` if empty."""
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std}


def _percent(stats: dict[str, float | None] | None) -> str:
    if stats is None or stats["mean"] is None:
        return "n/a"
    text = f"{100 * stats['mean']:.2f}"
    return text if stats["std"] is None else f"{text} ± {100 * stats['std']:.2f}"


def _summary(results: list[TrainResult]) -> dict[str, Any]:
    completed = [r for r in results if r.status == "completed"]
    test = [r.test_acc for r in completed if r.test_acc is not None]
    return {
        "runs": len(results),
        "completed": len(completed),
        "best_val_acc": _mean_std(
            [r.best_val_acc for r in completed if r.best_val_acc is not None]
        ),
        "test_acc": _mean_std(test),
    }


def _write_json(path: Path, obj: object) -> None:
    atomic_write(path, json.dumps(obj, indent=2) + "\n")


def _run(args: argparse.Namespace) -> int:
    if args.table is None:
        args.table = find_best_hyper_parameters()
    hparams = _hyper_parameters(args)
    seeds = args.seeds or [args.seed]
    setting = f"{args.dataset}/{args.model}/{args.optimizer}"
    configs = []
    for seed in seeds:
        run_dir = None if args.output is None else args.output / f"seed_{seed}"
        configs.append(
            TrainConfig(
                dataset=args.dataset,
                model=args.model,
                optimizer=args.optimizer,
                hparams=hparams,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=seed,
                device=args.device,
                data_dir=args.data_dir,
                download=args.download,
                bf16=args.bf16,
                channels_last=args.channels_last,
                compile=args.compile,
                train_subset=args.train_subset,
                checkpoint_dir=run_dir,
                resume=args.resume,
                metrics_path=None if run_dir is None else run_dir / "metrics.jsonl",
                progress=not args.no_progress,
                augment=args.augment,
            )
        )
    print(f"{setting} from {args.table}: {hparams}")
    info = inspect_setting(
        args.dataset,
        args.model,
        data_dir=args.data_dir,
        augment=args.augment,
        download=args.download,
    )
    notice = info.notice_for([args.optimizer])
    if notice:
        print(notice)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        _write_json(
            args.output / "config.json",
            {
                "hyper_parameters_file": os.fspath(args.table),
                "seeds": seeds,
                "train_configs": [c.to_dict() for c in configs],
            },
        )
    results: list[TrainResult] = []
    for config in configs:
        result = train(config)
        results.append(result)
        test = "n/a" if result.test_acc is None else f"{100 * result.test_acc:.2f}%"
        val = "n/a" if result.best_val_acc is None else f"{100 * result.best_val_acc:.2f}%"
        print(
            f"seed {config.seed}: {result.status}"
            + (f" ({result.reason})" if result.reason else "")
            + f", best val {val} (epoch {result.best_epoch}), test {test}, "
            f"{result.epochs_run} epochs, {result.images_per_s:.0f} images/s"
        )
        if args.output is not None:
            _write_json(
                args.output / "metrics.json",
                {
                    "setting": setting,
                    "hyper_parameters": hparams,
                    "runs": [{"seed": r.config.seed, **r.to_dict(history=False)} for r in results],
                    "summary": _summary(results),
                },
            )
    summary = _summary(results)
    print(
        f"{setting} over {len(seeds)} seed(s), {summary['completed']} completed: "
        f"val acc {_percent(summary['best_val_acc'])} %, "
        f"test acc {_percent(summary['test_acc'])} %"
    )
    return 0 if summary["completed"] == len(results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and train. A usage mistake (a bad flag or value, a dataset or model that
    cannot be used, a damaged checkpoint) ends with one line on stderr and exit status 2; a
    file that cannot be written, with one line and status 1."""
    freeze_at_exit()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.resume and args.output is None:
        parser.error("--resume needs --output (where the checkpoints are)")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would: import paths of the user's modules
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, DatasetChecksumError) as err:
        print_error(err)  # SettingError, CheckpointError, DatasetNotFoundError included
        return 2
    except (CheckpointWriteError, OSError) as err:
        print_error(err)
        return 1
    except KeyboardInterrupt:
        hint = "; rerun with --resume to continue" if args.output is not None else ""
        print(f"{parser.prog}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
