"""Training throughput of ``training.train`` against a minimal hand-written PyTorch loop (same
model, data, loader, optimizer and batch size), measured in the same run; then the project's
loader, ``data.DeviceLoader``, against a standard DataLoader (per-image torchvision
augmentation in worker processes) on CIFAR-shaped synthetic data: images/s of the loaders
alone, and on CUDA the epoch time of resnet18 and resnet20 fed by each. This is the measurement
behind the one loader: a DataLoader path would be kept only where it were faster.

    python benchmarks/train_throughput.py [--dataset digits] [--model resnet20] [--threads 1]
    python benchmarks/train_throughput.py --device cuda --synthetic-size 50000 --workers 8

Throughput is images/s of the training phase (validation excluded), per epoch; the first epoch
of every run is warm-up. The two loops alternate ``--repeats`` times, so drift of a shared
machine hits both alike; the ratio printed is the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import DeviceLoader, build_loaders, get_dataset_info
from models import create_model
from optim import create_optimizer
from training import TrainConfig, lookup_hyper_parameters, train

TARGET_RATIO = 0.95


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hand_loop(config: TrainConfig, device: torch.device) -> list[float]:
    """The reference: the same pieces as ``train``, with nothing but the training steps."""
    torch.manual_seed(config.seed)
    loaders = build_loaders(
        config.dataset,
        batch_size=config.batch_size,
        seed=config.seed,
        device=device,
        train_subset=config.train_subset,
        with_test=False,
    )
    info = loaders.info
    model = create_model(config.model, num_classes=info.num_classes, in_channels=info.in_channels)
    model = model.to(device)
    optimizer = create_optimizer(config.optimizer, model, **config.hparams)
    rates = []
    for epoch in range(config.epochs):
        loaders.train.set_epoch(epoch)
        model.train()
        _sync(device)
        started, seen = time.perf_counter(), 0
        for images, labels in loaders.train:  # already on the device
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += labels.numel()
        _sync(device)
        rates.append(seen / (time.perf_counter() - started))
    return rates


def _compare(args: argparse.Namespace, device: torch.device) -> None:
    config = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        optimizer=args.optimizer,
        hparams=lookup_hyper_parameters(args.dataset, args.model, args.optimizer),
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=str(device),
        train_subset=args.train_subset,
        evaluate_test=False,
        progress=args.progress,
    )
    print(
        f"\ntrain() vs hand-written loop: {args.dataset}/{args.model}/{args.optimizer}, "
        f"batch {args.batch_size}, {args.epochs} epochs (first is warm-up) x {args.repeats}"
    )
    ratios, trainer_rates, hand_rates = [], [], []
    for repeat in range(args.repeats):
        # Alternate which loop goes first, so a slow start or a warming machine favours neither.
        for loop in ("trainer", "hand") if repeat % 2 == 0 else ("hand", "trainer"):
            if loop == "trainer":
                trainer = statistics.median(m["images_per_s"] for m in train(config).history[1:])
            else:
                hand = statistics.median(_hand_loop(config, device)[1:])
        trainer_rates.append(trainer)
        hand_rates.append(hand)
        ratios.append(trainer / hand)
        print(
            f"  train() {trainer:9.0f} img/s   hand loop {hand:9.0f} img/s   ratio {ratios[-1]:.3f}"
        )
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio >= TARGET_RATIO else f"BELOW the {TARGET_RATIO} target"
    print(
        f"median: train() {statistics.median(trainer_rates):.0f} img/s, hand loop "
        f"{statistics.median(hand_rates):.0f} img/s, ratio {ratio:.3f} ({verdict})"
    )


class _AugmentedImages(Dataset[tuple[torch.Tensor, int]]):
    """The usual torchvision pipeline: per-image crop + flip + normalise, on the CPU."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        info = get_dataset_info("cifar10")
        assert info.mean is not None and info.std is not None  # CIFAR-10 is normalised
        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [
                v2.RandomCrop(32, padding=4),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(info.mean, info.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def _epoch_seconds(
    model_name: str,
    loader: DeviceLoader | DataLoader,
    device: torch.device,
    args: argparse.Namespace,
) -> float:
    """Seconds of the second of two training epochs (the first warms cuDNN and workers)."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    hparams = lookup_hyper_parameters("cifar10", model_name, args.optimizer)
    optimizer = create_optimizer(args.optimizer, model, **hparams)
    model.train()
    for _ in range(2):
        _sync(device)
        started = time.perf_counter()
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            if args.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync(device)
    return time.perf_counter() - started


def _loader_images_per_s(loader: DeviceLoader | DataLoader, device: torch.device) -> float:
    """Images/s of the second of two passes over ``loader`` alone (the first starts workers)."""
    for _ in range(2):
        _sync(device)
        started, seen = time.perf_counter(), 0
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            seen += len(labels.to(device, non_blocking=True))
        _sync(device)
    return seen / (time.perf_counter() - started)


def _compare_loaders(args: argparse.Namespace, device: torch.device) -> None:
    info = get_dataset_info("cifar10")
    generator = torch.Generator().manual_seed(0)
    n = args.synthetic_size
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    device_loader = DeviceLoader(
        images,
        labels,
        batch_size=128,
        mean=info.mean,
        std=info.std,
        device=device,
        shuffle=True,
        augment=True,
    )
    data_loader = DataLoader(
        _AugmentedImages(images, labels),
        batch_size=128,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    print(f"\nCIFAR-shaped synthetic data, {n} images, batch 128, crop + flip + normalise")
    fast = _loader_images_per_s(device_loader, device)
    standard = _loader_images_per_s(data_loader, device)
    print(
        f"loaders alone: DeviceLoader {fast:.0f} img/s, DataLoader({args.workers} workers) "
        f"{standard:.0f} img/s, speed-up {fast / standard:.2f}x"
    )
    if device.type != "cuda":
        return  # a CPU epoch of resnet18 on 50k images takes too long to be a benchmark
    print(
        f"{args.optimizer}, bf16={args.bf16}, channels_last={args.channels_last}: "
        "seconds per epoch"
    )
    print(f"{'model':<9} {'DeviceLoader':>13} {f'DataLoader({args.workers})':>15} {'speed-up':>9}")
    for model_name in ("resnet20", "resnet18"):
        fast = _epoch_seconds(model_name, device_loader, device, args)
        standard = _epoch_seconds(model_name, data_loader, device, args)
        print(f"{model_name:<9} {fast:>13.2f} {standard:>15.2f} {standard / fast:>8.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--optimizer", default="adamsrt")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-subset", type=int, help="default: the whole training split")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--progress", action="store_true", help="train() with its progress bar")
    parser.add_argument("--synthetic-size", type=int, default=50_000, help="loader part")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers, loader part")
    parser.add_argument("--bf16", action="store_true", help="CUDA part: bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="CUDA part: NHWC")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    _compare(args, device)
    _compare_loaders(args, device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
