#!/bin/bash
# The GPU checks in one pass, for a lent CUDA machine with lm-explorer's dependencies importable:
#   bench/device_check.sh NYT_DIR OUT_DIR [MEASURES]
# 1. env.log     the GPU, torch and Triton versions
# 2. tests.log   tests/system/test_cuda.py: the Triton-compiled head against float64 autograd, a CUDA run
#                against the CPU, stacked members against their solo twins, a sweep as one job
# 3. bench.log   python -m bench --quick --device cuda --only MEASURES --markdown (default 1,2,3,8,10)
#                (measure 10 adds the 8- and 16-weight stacks against one run on CUDA)
# 4. sweeps.log  whole commands, wall time from process start to exit (torch import and
#                compilation included): one paper run against a stacked 4-weight sweep on W2
#                (issue 8's ≤ 1.5×), and the study's 8-weight KL sweep on April 2018 against one
#                of its runs (issue 11's "done when")
# Each step has its own time limit so one slow step cannot take the others' time.
set -uo pipefail
data=${1:?NYT data folder}
out=${2:?output folder}
measures=${3:-1,2,3,8,10}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 data out

since() { awk -v start="$1" -v now="$EPOCHREALTIME" 'BEGIN { printf "%.1f", now - start }'; }
lmx() { python3 -m tui.launcher "$@"; }

step() {  # step NAME LIMIT_S COMMAND...: run with a limit, log to OUT/NAME.log, print its tail
  local name=$1 limit=$2 start=$EPOCHREALTIME rc
  shift 2
  timeout "$limit" "$@" >>"$out/$name.log" 2>&1
  rc=$?
  echo "== $name: rc $rc after $(since "$start") s (limit $limit s)"
  tail -n 40 "$out/$name.log"
}

timed() {  # timed LABEL COMMAND...: one whole command's wall time, appended to sweeps.log
  local label=$1 start=$EPOCHREALTIME rc
  shift
  "$@" >/dev/null 2>>"$out/sweeps.err"
  rc=$?
  echo "$label: rc $rc, $(since "$start") s"
}

sweeps() {
  local scratch
  scratch=$(mktemp -d)
  local paper=(--preset paper --regularizer kl --device cuda --checkpoints "$scratch" --json)
  timed "W2 one run, kl 10, 2 epochs" lmx train "${paper[@]}" --corpus "$data" --weight 10 --epochs 2
  timed "W2 sweep of 4 kl weights (stacked by default on CUDA), 2 epochs" \
    lmx sweep "${paper[@]}" --corpus "$data" --weights 0.1,1,10,100 --epochs 2
  timed "April 2018 one run, kl 10, 5 epochs" lmx train "${paper[@]}" --corpus "$data/ArticlesApril2018.csv" --weight 10
  timed "April 2018 sweep of the study's 8 kl weights, 5 epochs" \
    lmx sweep "${paper[@]}" --corpus "$data/ArticlesApril2018.csv" --weights 1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100
  lmx runs --checkpoints "$scratch"
  rm -rf "$scratch"
}

step env 60 bash -c 'nvidia-smi; python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())"; nproc'
step tests 150 python3 -m pytest -q -p no:cacheprovider tests/system/test_cuda.py "tests/engine/test_trainer.py::test_devices_with_a_gpu"
step bench 200 python3 -m bench --quick --device cuda --only "$measures" --data "$data" --markdown
export -f since lmx timed sweeps
step sweeps 150 bash -c sweeps
