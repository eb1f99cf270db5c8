#!/usr/bin/env bash
# The prepared GPU check: run it whenever a CUDA machine is at hand; README's GPU rows come from
# its output (dated). Needs python3 with torch (CUDA), numpy, scipy, scikit-image, scikit-learn,
# tifffile, pytest, and onnx + onnxscript for the CLI step's ONNX export; nothing is downloaded.
# Pure-Python wheels a machine lacks can be put in .whl/ first (they are installed with
# --no-index into a temporary folder; on the H200 machine of 2026-12-04: nibabel).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # 281 s on one H200 (2026-12-04)
#   SEGSTUDIO_GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh   # the same steps on the CPU
#                                                                 # (checks the script itself)
#
# Steps, each with its own time limit, each printing its lines; a failing step is reported and
# the others still run; the exit code is the number of failed steps:
#   1. the CUDA-marked tests (AMP training 2D/3D, with and without textures; GPU prediction
#      against the CPU), and the TIFF reader against the machine's own tifffile
#   2. the quality matrix's quick cells (casual strokes; tissue through textures on auto),
#      trained on the GPU for the same number of steps, several cells at a time
#   3. training throughput with AMP, trainer vs a bare PyTorch loop (2D and 3D)
#   4. predict speed: whole image vs one forward pass (2D 2048^2, 3D 64x256x256)
#   5. the headless path end to end: segstudio train --device, predict, metrics, export
#      (TorchScript, ONNX) as separate processes, 2D and 3D (benchmarks/cli_check.py)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEVICE=${SEGSTUDIO_GPU_CHECK_DEVICE:-cuda}
# the matrix's 60 s budgets in steps (2D, 3D); a CPU check of the script itself uses a few
if [ "$DEVICE" = cuda ]; then STEPS=${SEGSTUDIO_GPU_CHECK_STEPS:-1400 370}; else STEPS=${SEGSTUDIO_GPU_CHECK_STEPS:-30 6}; fi
# the quick cells run this many at a time (sharing the one GPU; the forest runs on the CPU)
if [ "$DEVICE" = cuda ]; then JOBS=${SEGSTUDIO_GPU_CHECK_JOBS:-8}; else JOBS=${SEGSTUDIO_GPU_CHECK_JOBS:-1}; fi
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/segstudio-site .whl/*.whl \
        && export PYTHONPATH="/tmp/segstudio-site:$PYTHONPATH"
fi
failed=0
step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name"
    if timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"; then
        echo "== $name: ok in $((SECONDS - t0)) s"
    else
        echo "== $name: FAILED (exit ${PIPESTATUS[0]}) after $((SECONDS - t0)) s"
        failed=$((failed + 1))
    fi
}

$PY - <<'EOF' | tee "$OUT/machine.log"
import datetime, os, platform, torch
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    gpu = f"{p.name} ({p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
else:
    gpu = "no CUDA GPU"
print(f"{datetime.date.today()} {platform.node()} python {platform.python_version()} torch {torch.__version__} "
      f"{gpu}; {os.cpu_count()} CPU cores")
EOF
if [ "$DEVICE" = cuda ]; then
    step cuda-tests 150 $PY -m pytest -q -p no:cacheprovider -rs tests/core/test_cuda.py tests/core/test_tiff_versions.py
fi
step quality-quick 300 $PY benchmarks/quality.py --device "$DEVICE" --families nuclei cells vessels tissue \
    --dims 2 3 --habits casual --modes exclusive multilabel --steps $STEPS --jobs "$JOBS" --out "$OUT/quality.jsonl"
if [ "$DEVICE" = cuda ]; then
    step throughput 90 $PY benchmarks/throughput.py --quick
    step predict-speed 120 $PY benchmarks/inference_vs_monai.py --device cuda
    step cli 150 $PY benchmarks/cli_check.py --device cuda --iterations 400
else
    step throughput 240 $PY benchmarks/throughput.py --quick
    step predict-speed 240 $PY benchmarks/inference_vs_monai.py --device cpu --quick
    step cli 240 $PY benchmarks/cli_check.py --device cpu --iterations 20 --floor 0
fi
echo "gpu check: $failed failed step(s); logs in $OUT/"
exit $failed
