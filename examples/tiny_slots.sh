#!/usr/bin/env bash
# Slot filling (token classification) end to end on a tiny random model, offline, in minutes:
#   encoder -> finetune --task token-classification (the sample's MASSIVE slots) -> shrink
#   -> distill (per-word KD) -> export int8 (verified per word) -> eval (entity F1 per language)
# Usage: bash examples/tiny_slots.sh OUT_DIR    (run from anywhere; `make demo-slots` runs it)
set -euo pipefail

OUT="${1:?usage: tiny_slots.sh OUT_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="$HERE/data/massive-sample"
RECIPE="$HERE/recipes/tiny.yaml"
PYTHON="${PYTHON:-python}"

export HF_HUB_OFFLINE=1
export KDCLI_CACHE="${KDCLI_CACHE:-$OUT/cache}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

mkdir -p "$OUT"
if [ ! -f "$OUT/encoder/config.json" ]; then
    "$PYTHON" "$HERE/make_tiny_model.py" "$OUT/encoder"     # 4 layers, hidden 128, random
fi

# MASSIVE holds intents and slots: --task token-classification trains on the slots (annot_utt)
kdcli finetune "$OUT/encoder" --data "$DATA" --task token-classification --out "$OUT/slots" \
    --config "$RECIPE" --overwrite --quiet --json "$OUT/slots.json"

kdcli shrink "$OUT/slots" --num-layers 2 --out "$OUT/slots-student" --overwrite --quiet

# the teacher's head makes this token classification: no --task needed from here on
kdcli distill --student "$OUT/slots-student" --data "$DATA" --out "$OUT/slots-kd" \
    --config "$RECIPE" --overwrite --quiet --json "$OUT/slots-kd.json"

kdcli export "$OUT/slots-kd" --onnx --quantize int8 --out "$OUT/slots-deploy" \
    --verify-data "$DATA" --overwrite --quiet --json "$OUT/slots-deploy.json"

kdcli eval "$OUT/slots" "$OUT/slots-kd" "$OUT/slots-deploy" --data "$DATA" --split test \
    --quiet --overwrite --json "$OUT/slots-report.json" --markdown "$OUT/slots-report.md" \
    --predictions "$OUT/slots-predictions.jsonl"

echo "slots pipeline done: teacher $OUT/slots, student $OUT/slots-kd, int8 $OUT/slots-deploy"
echo "report: $OUT/slots-report.md"
