#!/usr/bin/env bash
# The GPU check of a suite, one command: is the machine ready (hetmtl doctor), and
# one group of the suite timed at its real image size, one seed: step time per
# method, MFU, peak memory, and the whole grid's estimate from the measured rates
# (hetmtl bench; README "What it costs").
#
#   scripts/gpu_check.sh                                   # the paper suite's unrelated group, on cuda
#   scripts/gpu_check.sh SUITE GROUP [hetmtl bench flags]  # e.g. paper related --method mtal hard_sharing
#   DEVICE=cpu scripts/gpu_check.sh tiny related --steps 2 # the CPU path (tests/test_gpu_check.py)
#
# Doctor's blocked lines are shown, not fatal: a GPU check may run before the
# archives are placed (bench times random images of the tasks' shapes when the
# data is not prepared). Results: reports/<suite>/bench/bench_<device>.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-paper}
group=${2:-unrelated}
shift $(( $# < 2 ? $# : 2 ))
device=${DEVICE:-cuda}
echo "[gpu_check] $(date -u +%FT%TZ) suite $suite, group $group, device $device"
hetmtl doctor --suite "$suite" --no-cost || echo "[gpu_check] doctor: blocked item(s) above; timing anyway"
if [ "$device" != cpu ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
hetmtl bench --suite "$suite" --group "$group" --device "$device" "$@"
