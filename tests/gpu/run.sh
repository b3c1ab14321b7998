#!/usr/bin/env bash
# The GPU suite in one device call: tests/gpu/run.sh [fast|full] [extra pytest args]
#   fast  the `fast` tier: every kernel family and the runtime basics, few configs, small shapes;
#         run it on every device call that touches kernels/, runtime/ or builder/
#   full  every GPU test; config sweeps run tests/gpu/sweep.py's subset (TF_GPU_FULL_SWEEP=1: all)
# Tests are spread over pytest-xdist workers (TF_GPU_WORKERS, default 8: Triton compiles are
# single-threaded, the machine has 16 cores) by test, not by file, which is safe because no GPU test
# has a module fixture and the workers share one Triton cache (tests/gpu/conftest.py), so a kernel
# compiles once per run. With $OUT set, the JUnit XML and the log go there. The end of the output
# lists the 25 slowest tests and the seconds per file.
set -uo pipefail
cd "$(dirname "$0")/../.."
tier=${1:-fast}
[ $# -gt 0 ] && shift
case "$tier" in
  fast) select=(-m fast) ;;
  full) select=() ;;
  *) echo "usage: tests/gpu/run.sh [fast|full] [pytest args]" >&2; exit 2 ;;
esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
args=(-q -rfEs --durations=25 -p no:cacheprovider)
if python3 -c "import xdist" 2>/dev/null; then
  # worksteal (xdist >= 3.2) rebalances when one worker draws the long model builds
  dist=$(python3 -c "import xdist; v = tuple(int(x) for x in xdist.__version__.split('.')[:2]); \
print('worksteal' if v >= (3, 2) else 'load')")
  args+=(-n "${TF_GPU_WORKERS:-8}" --dist "$dist")
else
  echo "tests/gpu/run.sh: pytest-xdist is not installed: running in one process" >&2
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  args+=("--junitxml=$OUT/gpu-$tier.xml")
  python3 -m pytest "${args[@]}" ${select[@]+"${select[@]}"} "$@" tests/gpu 2>&1 | tee "$OUT/gpu-$tier.log"
  exit "${PIPESTATUS[0]}"
fi
exec python3 -m pytest "${args[@]}" ${select[@]+"${select[@]}"} "$@" tests/gpu
