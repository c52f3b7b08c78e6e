#!/usr/bin/env bash
# The whole kdcli workflow on a tiny random model, offline, in a few minutes on 2 CPU cores:
#   encoder -> finetune (the teacher) -> shrink (a copy-weight student) -> distill
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

# --- eval: wired by the lead (kdcli eval is being built) -----------------------------------
# --- export: wired by the lead (kdcli export is being built) -------------------------------

echo "tiny pipeline done: teacher $OUT/teacher, student $OUT/student-kd"
