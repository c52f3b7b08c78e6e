#!/usr/bin/env bash
# Every way `kdcli shrink` can choose what a student keeps, on one teacher.
# Usage: bash examples/shrink_modes.sh TEACHER OUT_DIR [DATA]
#   TEACHER: a fine-tuned classifier (e.g. demo-out/teacher from `make demo`, or a Hub id)
#   DATA: text for the data-driven modes (default: the shipped 10-language sample)
set -euo pipefail

TEACHER="${1:?usage: shrink_modes.sh TEACHER OUT_DIR [DATA]}"
OUT="${2:?usage: shrink_modes.sh TEACHER OUT_DIR [DATA]}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${3:-$HERE/data/massive-sample}"
mkdir -p "$OUT"
shrink() { kdcli shrink "$TEACHER" --overwrite --quiet "$@"; }

# depth: explicit layers, or a count and a strategy
shrink --layers 0,1 --out "$OUT/explicit"                                 # exactly these layers
shrink --num-layers 2 --out "$OUT/uniform"                                # maximally spaced (default)
shrink --num-layers 2 --layer-strategy first --out "$OUT/first"           # the bottom layers
shrink --num-layers 2 --layer-strategy last --out "$OUT/last"             # the top layers
shrink --layer-strategy every-other --out "$OUT/every-other"              # 0, 2, 4, ...
shrink --num-layers 2 --layer-strategy importance --calib-data "$DATA" \
    --calib-samples 64 --out "$OUT/importance"                            # layers that change most

# width: fewer channels, heads and feed-forward neurons
shrink --num-layers 2 --hidden-size 64 --intermediate-size 256 --out "$OUT/narrow-first"
shrink --num-layers 2 --hidden-size 64 --intermediate-size 256 --width-strategy magnitude \
    --out "$OUT/narrow-magnitude"                                         # largest weights
shrink --num-layers 2 --hidden-size 64 --intermediate-size 256 --width-strategy activation \
    --calib-data "$DATA" --calib-samples 64 --out "$OUT/narrow-activation" # busiest on the data

# vocabulary: only the tokens two languages need, checked on their held-out texts
shrink --num-layers 2 --vocab-from "$DATA" --languages en-US,de-DE --out "$OUT/vocab-en-de"
shrink --num-layers 2 --vocab-from "$DATA" --languages en-US,de-DE --vocab-keep data \
    --max-changed 100% --out "$OUT/vocab-en-de-data"                      # smallest, not safe

# the study's baseline: the same shape, random weights
shrink --num-layers 2 --random-init --seed 1 --out "$OUT/random-init"

echo "students written to $OUT: $(ls "$OUT" | tr '\n' ' ')"
