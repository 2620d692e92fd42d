"""How many trials to pack on one GPU: the same search with 1, 2 and 4 trials at once on one
device (gpus_per_trial 1, 0.5, 0.25), and the total epochs per second each gives.

    python benchmarks/gpu_packing.py [--epochs 3] [--images 10000] [--shares 1 0.5 0.25]

Each search trains resnet20 with adamsrt on CIFAR-shaped random images (the GPU machine has no
network; the data's content does not change the speed), two trials per slot, on a private local
Ray. Epochs per second counts every epoch trained over the search's wall time, Ray's start
included. ``--cpu`` runs the same plumbing on the CPU with tiny settings (a check, not a figure).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's synthetic_data

from search import load_spec, open_storage, run

SPEC = """
name = "packing"
dataset = "synthetic_data:cifar_like"
model = "resnet20"
optimizers = ["adamsrt"]
epochs = {epochs}
n_trials = {trials}
batch_size = 128
sampler = "random"

[pruner]
kind = "none"

[resources]
workers = {workers}
cpus_per_trial = {cpus}
gpus_per_trial = {gpus}
"""


def measure(share: float, args: argparse.Namespace, tmp: Path) -> tuple[int, float]:
    import optuna

    workers = max(1, round(1 / share))
    cpus = max(1, (os.cpu_count() or 2) // workers)
    spec_path = tmp / f"packing-{share}.toml"
    spec_path.write_text(
        SPEC.format(
            epochs=args.epochs,
            trials=2 * workers,
            workers=workers,
            cpus=cpus,
            gpus=0 if args.cpu else share,
        )
    )
    spec = load_spec(spec_path)
    url = f"sqlite:///{tmp}/packing-{share}.db"
    started = time.perf_counter()
    run(spec, storage_url=url, checkpoint_dir=tmp / f"c-{share}", say=lambda _: None)
    wall = time.perf_counter() - started
    trials = optuna.load_study(
        study_name=spec.study_name("adamsrt"), storage=open_storage(url)
    ).get_trials()
    return sum(len(t.intermediate_values) for t in trials), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    parser.add_argument("--cpu", action="store_true", help="check the plumbing on the CPU")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        parser.error("needs a CUDA device (or --cpu for a plumbing check)")
    os.environ["SYNTHETIC_IMAGES"] = str(args.images)
    # Ray's runners import synthetic_data from this folder too.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    device = "CPU" if args.cpu else torch.cuda.get_device_name(0)
    print(
        f"resnet20 / adamsrt, {args.images} CIFAR-shaped images, {args.epochs} epochs a "
        f"trial, 2 trials per slot, on {device}"
    )
    print(
        f"{'trials at once':>14} {'gpus_per_trial':>14} {'epochs':>6} {'wall s':>7} "
        f"{'epochs/s':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="packing-") as tmp:
        for share in args.shares:
            epochs, wall = measure(share, args, Path(tmp))
            print(
                f"{round(1 / share):>14} {share:>14g} {epochs:>6} {wall:7.1f} {epochs / wall:8.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
