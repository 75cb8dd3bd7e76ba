#!/usr/bin/env bash
# Every CUDA path and the GPU throughput benchmarks in one run, each step under its own time limit:
# the test suite with a GPU present (device "auto" takes it), codes on the GPU against the CPU's and a
# head's fit (gpu_check.py), the bare forward's variants (forward.py) and the extract stage against
# its bare forward with JPEGs decoded by workers or on the device (extraction.py); then, on the
# machine's CPU pinned to two cores (a quiet stand-in for a 2-core laptop), the extract stage against
# its bare forward for the token and channels-last families (ViT, Swin, ConvNeXt) and float32,
# bfloat16 and int8 side by side (precision.py).
#
#   OUT=gpu-results bash benchmarks/gpu_check.sh       # Markdown and logs land in $OUT
#   STEPS="extraction families precision" OUT=gpu-results bash benchmarks/gpu_check.sh   # some steps only
#
# Wheels in .whl/ (cleanlab, termcolor, torchao ... for a machine without them) are installed into /tmp/site first.
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
{ nvidia-smi -L; lscpu | grep 'Model name'; echo "cores: $(nproc)"
  python3 -c "import torch, torchvision, sklearn; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'sklearn', sklearn.__version__)"; } > "$OUT/env.txt" 2>&1

step() {  # step NAME SECONDS COMMAND...: run COMMAND into $OUT/NAME.log, note its exit code and time
    local name=$1 limit=$2 started=$SECONDS
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - started)) s" | tee -a "$OUT/env.txt"
}

STEPS=${STEPS:-pytest gpu_check forward extraction families precision}
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
PINNED=(env OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 taskset -c 0,1)  # for the pipeline's own subprocesses too

wanted pytest && step pytest "${PYTEST_SECONDS:-240}" python3 -m pytest -v --tb=short --timeout 120 -p no:cacheprovider \
    -n "${PYTEST_WORKERS:-14}" tests
wanted gpu_check && step gpu_check 80 python3 benchmarks/gpu_check.py --head-rows 10000 --out "$OUT/gpu_check.md"
wanted forward && step forward "${FORWARD_SECONDS:-90}" python3 benchmarks/forward.py --device cuda \
    --backbones ${FORWARD_BACKBONES:-vgg16 resnet50} --sizes ${FORWARD_SIZES:-64 224} --batch-size 256 --seconds 1 --repeats 2
wanted extraction && step extraction "${EXTRACTION_SECONDS:-150}" python3 benchmarks/extraction.py --device cuda \
    --precision bfloat16 --decode fast device --backbones resnet50 --sizes 224 --batch-sizes 256 --n 1000 --seconds 5 \
    --repeats 1 --models --answer-repeats 0 --out "$OUT/extraction.md"
wanted families && step families "${FAMILIES_SECONDS:-170}" "${PINNED[@]}" python3 benchmarks/extraction.py --device cpu \
    --backbones vit_b_16 swin_t convnext_tiny --sizes 64 224 --batch-sizes 16 --seconds 3 --repeats 1 --models \
    --answer-repeats 0 --out "$OUT/families.md"
wanted precision && step precision "${PRECISION_SECONDS:-170}" "${PINNED[@]}" python3 benchmarks/precision.py \
    --out "$OUT/precision.md" speed --backbones resnet50 --sizes 224 --images 128 --bare-seconds 3 --rounds 1
