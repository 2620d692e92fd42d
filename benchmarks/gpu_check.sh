#!/usr/bin/env bash
# The GPU figures, in one short run (≤ 8 minutes on one modern GPU): optimizer step ratios on
# CUDA, then resnet20 / resnet18 epoch times on CIFAR-shaped data with the device-resident
# loader against a standard DataLoader. Record the output in benchmarks/BENCHMARKS.md with the
# GPU's name.
#
#     bash benchmarks/gpu_check.sh            # from the repository root, in the project's venv
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
assert torch.cuda.is_available(), "gpu_check.sh needs a CUDA device"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
echo "== optimizer step on CUDA (ratios against torch.optim.Adam/SGD foreach) =="
timeout 180 python benchmarks/optim_step.py --device cuda --repeats 5
echo "== train() vs a hand loop; resnet20 and resnet18 epoch times, device-resident loader vs DataLoader =="
timeout 300 python benchmarks/train_throughput.py --device cuda --epochs 3 --repeats 2 --synthetic-size 50000 --workers 8
