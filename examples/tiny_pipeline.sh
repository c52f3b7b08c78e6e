#!/usr/bin/env bash
# The whole kdcli workflow on a tiny random model, offline, in about 4 minutes of CPU time:
#   encoder -> finetune (the teacher) -> shrink (a copy-weight student) -> distill -> export
#   -> eval, with a random-init student of the same shape as the baseline
# Usage: bash examples/tiny_pipeline.sh OUT_DIR    (run from anywhere; `make demo` runs it)
set -euo pipefail

OUT="${1:?usage: tiny_pipeline.sh OUT_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="$HERE/data/massive-sample"
RECIPE="$HERE/recipes/tiny.yaml"
PYTHON="${PYTHON:-python}"

export HF_HUB_OFFLINE=1                          # nothing here needs the network
export KDCLI_CACHE="${KDCLI_CACHE:-$OUT/cache}"  # teacher outputs stay with the demo
# A 128-wide model is too small to gain from several threads; on a busy machine they mostly
# wait on each other. Set OMP_NUM_THREADS yourself to override.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

mkdir -p "$OUT"
if [ ! -f "$OUT/encoder/config.json" ]; then
    "$PYTHON" "$HERE/make_tiny_model.py" "$OUT/encoder"     # 4 layers, hidden 128, random
fi

kdcli finetune "$OUT/encoder" --data "$DATA" --out "$OUT/teacher" --config "$RECIPE" \
    --overwrite --quiet --json "$OUT/teacher.json"

kdcli shrink "$OUT/teacher" --num-layers 2 --out "$OUT/student" --overwrite --quiet \
    --json "$OUT/student.json"

# --teacher is optional: the student's kdcli.json names the teacher it was copied from
kdcli distill --student "$OUT/student" --data "$DATA" --out "$OUT/student-kd" \
    --config "$RECIPE" --overwrite --quiet --json "$OUT/student-kd.json"

# the study's baseline: the same student shape with random weights, distilled the same way
kdcli shrink "$OUT/teacher" --num-layers 2 --random-init --out "$OUT/student-scratch" \
    --overwrite --quiet
kdcli distill --student "$OUT/student-scratch" --data "$DATA" --out "$OUT/student-scratch-kd" \
    --config "$RECIPE" --overwrite --quiet

# ONNX + int8 for CPU serving, verified against PyTorch on the sample's test texts
kdcli export "$OUT/student-kd" --onnx --quantize int8 --out "$OUT/deploy" --verify-data "$DATA" \
    --overwrite --quiet --json "$OUT/deploy.json"

# every language, side by side: the teacher, the copy-weight and the from-scratch students
# (both distilled), and the copy-weight student's int8 export
kdcli eval "$OUT/teacher" "$OUT/student-kd" "$OUT/student-scratch-kd" "$OUT/deploy" \
    --data "$DATA" --split test --quiet --overwrite \
    --json "$OUT/report.json" --markdown "$OUT/report.md"

echo "tiny pipeline done: teacher $OUT/teacher, student $OUT/student-kd, int8 export $OUT/deploy"
echo "report: $OUT/report.md"
