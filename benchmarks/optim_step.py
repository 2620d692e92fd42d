"""Time ``optimizer.step()`` on the parameters of ResNet18-CIFAR and ResNet20 with fixed random
gradients: every optimizer of the project against torch.optim.Adam(foreach=True) and
torch.optim.SGD(foreach=True), measured in the same run, plus optimizer-state bytes.

    python benchmarks/optim_step.py [--device cuda] [--models resnet20 resnet18] [--repeats 5]
    python benchmarks/optim_step.py --compile   # torch.compile(opt.step) on both sides
    python benchmarks/optim_step.py --threads 1 --clock cpu   # on a shared, loaded CPU machine

Ratios are medians of interleaved repeats, so drift of the machine hits every optimizer alike.
With ``--compile`` every step (ours and torch's) is ``torch.compile(opt.step)``; the time of the
first three calls (tracing, compilation, and torch's recompile after lazy state creation) is
reported apart, and nothing is timed until all optimizers are compiled. ``--clock cpu`` times
the CPU time of the (single) timing thread instead of wall time, so other jobs on a shared
machine do not count against whichever optimizer they happened to preempt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import create_model
from optim import create_optimizer

HPARAMS = {
    "adam": {"lr": 1e-3, "weight_decay": 5e-4, "foreach": True},
    "sgd": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "foreach": True},
    "adamw": {"lr": 1e-3, "weight_decay": 5e-4, "foreach": True},
    "adams": {"lr": 1e-3, "weight_decay": 5e-4},
    "adamsrt": {"lr": 1e-3, "weight_decay": 5e-4},
    "adamg": {"lr": 1e-2, "weight_decay": 5e-4},
    "sgdmrt": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
}
BASELINE = {"adams": "adam", "adamsrt": "adam", "adamg": "adam", "adamw": "adam", "sgdmrt": "sgd"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(
        t.numel() * t.element_size()
        for state in opt.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    )


def _own_code(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` called from a function with a code object of its own. Dynamo keeps compiled
    code per code object, and every optimizer's ``step`` is torch's one wrapper function: each
    compiled optimizer would check the guards of those compiled before it, and past Dynamo's
    cache size limit (8) run eagerly."""

    def call() -> None:
        step()

    return types.FunctionType(call.__code__.replace(), call.__globals__, closure=call.__closure__)


def _timer(
    name: str,
    model_name: str,
    device: torch.device,
    steps: int,
    compile: bool,
    clock: Callable[[], float],
) -> tuple[Callable[[], float], int, float]:
    model = create_model(model_name, num_classes=10).to(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    for p in model.parameters():
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).to(device)
    opt = create_optimizer(name, model, **HPARAMS[name])
    step = torch.compile(_own_code(opt.step)) if compile else opt.step
    start = time.perf_counter()
    for _ in range(3):  # warm-up: lazy state creation, and compilation
        step()
    _sync(device)
    warmup_s = time.perf_counter() - start

    def run() -> float:
        _sync(device)
        start = clock()
        for _ in range(steps):
            step()
        _sync(device)
        return (clock() - start) / steps * 1e3

    return run, _state_bytes(opt), warmup_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18"])
    parser.add_argument("--optimizers", nargs="+", default=list(HPARAMS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--compile", action="store_true", help="time torch.compile(opt.step) on both sides"
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: CPU time of this thread (CPU device with --threads 1 only)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (device.type != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu needs --device cpu and --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mode = "compiled step" if args.compile else "eager step"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, {mode}, {args.clock} clock"
    )
    for model_name in args.models:
        steps = 20 if model_name == "resnet20" or device.type == "cuda" else 5
        timers = {}
        for n in args.optimizers:
            timers[n] = _timer(n, model_name, device, steps, args.compile, clock)
            # Progress while compiling on a slow machine; the table below repeats it.
            print(f"{model_name} {n}: warm-up {timers[n][2]:.1f} s", file=sys.stderr, flush=True)
        samples: dict[str, list[float]] = {n: [] for n in timers}
        for _ in range(args.repeats):
            for n, (run, _, _) in timers.items():
                samples[n].append(run())
        median = {n: statistics.median(s) for n, s in samples.items()}
        # Interquartile range of the repeats relative to the median: how noisy the machine was.
        spread = {
            n: (q[2] - q[0]) / median[n]
            for n, q in ((n, statistics.quantiles(s, n=4)) for n, s in samples.items())
        }
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"\n{model_name} ({steps} steps x {args.repeats} repeats, median ms/step; "
            f"load average {load:.1f})"
        )
        print(
            f"{'optimizer':<10} {'ms/step':>9} {'baseline':>9} {'ratio':>7} {'state MiB':>10} "
            f"{'warm-up s':>10} {'spread':>7}"
        )
        for n in timers:
            base = BASELINE.get(n)
            ratio = f"{median[n] / median[base]:.2f}x" if base in median else "-"
            print(
                f"{n:<10} {median[n]:>9.3f} {base or '-':>9} {ratio:>7} "
                f"{timers[n][1] / 2**20:>10.2f} {timers[n][2]:>10.1f} {spread[n]:>6.0%}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
