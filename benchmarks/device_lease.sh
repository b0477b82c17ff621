#!/usr/bin/env bash
# One GPU lease (the `device` machine, ~10 minutes of command time): the `full` profile against
# the heads on a full-size synthetic market, and beside it, on the same GPU, the demo-market
# ablation of the options a CPU cannot afford plus the profile's model under other samplers.
# Both write as they go, so a lease cut short keeps every finished stage.
#
#   OUT=/tmp/lease bash benchmarks/device_lease.sh     # on the GPU machine, from the repo root
#
# Packages the CUDA image lacks travel as wheels in .whl/ (docs/performance.md says which).
set -u
OUT=${OUT:-/tmp/lease}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
LIMIT=${LIMIT:-540}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} >"$OUT/gpu.txt" 2>&1

timeout "$LIMIT" python3 benchmarks/full_profile.py --work /tmp/full --max-steps 2500 \
  --samplers dpmpp_2m_20 ddim_50_eta1 ddpm_100 ddpm_1000 >"$OUT/full.json" 2>"$OUT/full.log" &
timeout "$LIMIT" python3 benchmarks/ablation.py --work /tmp/ablation --budget-s $((LIMIT - 150)) \
  --only prediction loss_weighting encoder context_s lr T \
  --samplers dpmpp_2m_10 dpmpp_2m_20 ddim_50_eta1 ddpm_100 ddpm_1000 \
  --out "$OUT/ablation.json" >"$OUT/ablation.log" 2>&1 &
wait
nvidia-smi --query-gpu=memory.used --format=csv >>"$OUT/gpu.txt" 2>&1
tail -n 3 "$OUT/full.log" "$OUT/ablation.log"
