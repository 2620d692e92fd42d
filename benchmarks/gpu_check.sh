#!/usr/bin/env bash
# The GPU figures, in one short run (≤ 8 minutes on one modern GPU): optimizer step ratios on
# CUDA, eager and compiled; resnet20 / resnet18 epoch times on CIFAR-shaped data with the
# device-resident loader against a standard DataLoader; and trainer epochs with --compile,
# bf16 and channels_last (offline digits: the GPU machine has no network); and 1, 2 and 4
# resnet20 trials at once on the one GPU (how many to pack per GPU). Record the output
# in benchmarks/BENCHMARKS.md with the GPU's name.
#
#     bash benchmarks/gpu_check.sh            # from the repository root, in the project's venv
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA device"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
# Each part has its own time limit; one that runs out says so and the rest still run (every
# table is printed as soon as its model is measured).
part() {
    local limit=$1
    shift
    timeout "$limit" "$@" || echo "(stopped with exit $?: the figures above are what it finished)"
}
echo "== optimizer step on CUDA (ratios against torch.optim.Adam/SGD foreach) =="
part 80 python benchmarks/optim_step.py --device cuda --repeats 5
echo "== compiled optimizer step on CUDA (against compiled torch.optim.Adam/SGD foreach) =="
part 200 python benchmarks/optim_step.py --device cuda --repeats 5 --compile \
    --optimizers adam sgd adams adamsrt adamg sgdmrt
echo "== compiled step: one graph, no recompile, equal to eager (CUDA tests) =="
part 50 python -m pytest tests/optim_tests/test_compile.py -q -k cuda -m "not slow"
echo "== train() vs a hand loop; resnet20 and resnet18 epoch times, device-resident loader vs DataLoader =="
part 90 python benchmarks/train_throughput.py --device cuda --epochs 3 --repeats 2 --synthetic-size 50000 --workers 8
echo "== trainer epochs: --compile, bf16, channels_last (resnet20, adamsrt, offline digits) =="
part 60 python training_example.py --optimizer adamsrt --model resnet20 --dataloader digits \
    --epochs 2 --device cuda --compile --bf16 --channels-last --no-progress
echo "== trials packed on one GPU: 1, 2 and 4 at once (gpus_per_trial 1, 0.5, 0.25), total epochs/s =="
part 150 python benchmarks/gpu_packing.py --epochs 3 --images 10000
