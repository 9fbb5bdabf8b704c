#!/usr/bin/env bash
# The GPU checklist (the test suite, the GPU benchmarks, the char-6L quality run) in as few runs as possible, on a machine with an NVIDIA GPU,
# CuPy and PyTorch already installed and, perhaps, no network.
#
#   bash benchmarks/gpu_session.sh env tests kernels report   # versions, the suite on cuda, the fused kernels' tests
#   bash benchmarks/gpu_session.sh fused report               # char-6L batch 64: fused off, fused on, PyTorch eager
#   bash benchmarks/gpu_session.sh bench                      # the other benchmarks (minutes: fresh processes, kernel compiles)
#   bash benchmarks/gpu_session.sh train report               # char-6L, 5000 steps; run again to resume
# Each line fits in a 10-minute run; logs are written as they go (tee), so a run cut short
# still leaves what it did, and `report` (re)writes $OUT/report.json and $OUT/report.md from
# whatever the stages have left there so far.
#
# Stages (any order, any subset):
#   env     GPU, driver, Python and package versions
#   tests   the test suite on the GPU only: pytest --device gpu
#   kernels tests/test_cuda_kernels.py: NVRTC compiles (sm_80, sm_90), the CPU harness where g++ is
#           installed, and every fused kernel on the GPU against the generic CuPy path
#   fused   bench_train.py char-6L batch 64: tinylm with the fused kernels off (PyTorch eager beside
#           it, same GPU), then on (TINYLM_FUSED=1); step times in fused_off.json / fused_on.json
#   report  report.json + report.md: versions, pass/fail counts, step times and ratios, training progress
#   bench   bench_train.py char-6L batch 64 vs PyTorch (+ each alone: step time, memory-pool peak),
#           its per-op profile, the cost of per-step reseeding, and bench_generate.py with and without the KV cache vs PyTorch
#   train   examples/train_shakespeare.py --device gpu (char-6L, 5000 steps, val <= 1.50 wanted),
#           stopped with SIGINT after TRAIN_BUDGET_S seconds (default 540); the run saves
#           out/gpu-char6L/last.npz and the next `train` resumes it, bit for bit
#
# Environment: OUT (where logs and results go; default out/gpu-session), DATA (the text to train
# on when tiny Shakespeare cannot be found or downloaded, e.g. a copy carried beside the repo),
# TRAIN_BUDGET_S, RUN_DIR (default out/gpu-char6L), DEVICE (default gpu) and TRAIN_ARGS (more flags for `train`; a dry run on the CPU:
# DEVICE=cpu TRAIN_ARGS="--preset cpu-small --max-iters 60" TRAIN_BUDGET_S=10 ... train). Installs nothing: run it with a Python that has numpy, regex, tqdm, cupy,
# torch and pytest + hypothesis (the repo goes on PYTHONPATH).
set -u -o pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-out/gpu-session}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_MININTERVAL=30
PY=${PYTHON:-python3}
status=0

for stage in "$@"; do
  echo "=== $stage ($(date -u +%FT%TZ))"
  case $stage in
    env)
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$LOG/env.txt"
      nproc | sed 's/^/cpu cores: /' | tee -a "$LOG/env.txt"
      $PY - <<'EOF' 2>&1 | tee -a "$LOG/env.txt"
import sys, numpy, cupy
print("python", sys.version.split()[0], "numpy", numpy.__version__, "cupy", cupy.__version__,
      "cuda runtime", cupy.cuda.runtime.runtimeGetVersion())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda)
except ImportError:
    print("torch: not installed")
import tinylm
print("tinylm", tinylm.__version__, "gpu_available", tinylm.gpu_available())
EOF
      ;;
    tests)
      $PY -m pytest --device gpu -q -p no:cacheprovider 2>&1 | tee "$LOG/tests.log" || status=1
      ;;
    kernels)
      $PY -m pytest tests/test_cuda_kernels.py -q -rs -p no:cacheprovider 2>&1 | tee "$LOG/kernels.log" || status=1
      ;;
    fused)
      # if TINYLM_FUSED=1 cannot switch the kernels on (a warning), stop rather than time the plain path again
      TINYLM_FUSED=0 $PY benchmarks/bench_train.py --preset char-6L --device gpu --compare torch --steps 20 \
        --json "$LOG/fused_off.json" 2>&1 | tee "$LOG/fused_off.log" || status=1
      TINYLM_FUSED=1 $PY -W "error:TINYLM_FUSED=1 ignored:RuntimeWarning" benchmarks/bench_train.py --preset char-6L --device gpu --steps 20 \
        --json "$LOG/fused_on.json" 2>&1 | tee "$LOG/fused_on.log" || status=1
      ;;
    report)
      OUT_DIR="$LOG" RUN_DIR="${RUN_DIR:-out/gpu-char6L}" $PY benchmarks/gpu_report.py || status=1
      ;;
    bench)
      $PY benchmarks/bench_train.py --preset char-6L --device gpu --compare torch --memory --steps 20 \
        --json "$LOG/bench_train_char6L_b64.json" 2>&1 | tee "$LOG/bench_train.log" || status=1
      $PY benchmarks/bench_train.py --preset char-6L --device gpu --profile --steps 5 2>&1 \
        | tee "$LOG/bench_train_profile.log" || status=1
      # the training loop reseeds every step (a new cuRAND generator on the GPU): what it costs
      $PY benchmarks/bench_train.py --preset char-6L --device gpu --compare torch --reseed --steps 10 2>&1 \
        | tee "$LOG/bench_train_reseed.log" || status=1
      $PY benchmarks/bench_generate.py --preset char-6L --device gpu --compare torch 2>&1 \
        | tee "$LOG/bench_generate.log" || status=1
      ;;
    train)
      dir=${RUN_DIR:-out/gpu-char6L}
      resume=()
      [ -f "$dir/last.npz" ] && resume=(--resume)
      data=()
      [ -n "${DATA:-}" ] && data=(--data "$DATA")
      # SIGINT = Ctrl-C: the loop saves last.npz between steps and exits cleanly
      timeout -s INT -k 120 "${TRAIN_BUDGET_S:-540}" $PY examples/train_shakespeare.py --device "${DEVICE:-gpu}" \
        --out-dir "$dir" "${data[@]}" "${resume[@]}" ${TRAIN_ARGS:-} 2>&1 | tee -a "$LOG/train.log"
      rc=${PIPESTATUS[0]}
      [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && status=1
      cp "$dir/log.csv" "$LOG/train_log.csv" 2>/dev/null
      cp "$dir/loss.png" "$LOG/train_loss.png" 2>/dev/null
      ;;
    *)
      echo "unknown stage '$stage' (expected env, tests, kernels, fused, bench, train or report)" >&2
      exit 2
      ;;
  esac
done
exit $status
