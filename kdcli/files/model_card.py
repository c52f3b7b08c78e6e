"""The short README.md (model card) kdcli writes into every model directory it makes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TRANSFORMERS_USAGE = (
    "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
    "",
    'model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder")',
    'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
)

ONNX_USAGE = (
    "import onnxruntime as ort",
    "from transformers import AutoConfig, AutoTokenizer",
    "",
    'folder = "path/to/this/folder"',
    "tokenizer = AutoTokenizer.from_pretrained(folder)",
    "labels = AutoConfig.from_pretrained(folder).id2label",
    "session = ort.InferenceSession(",
    '    f"{folder}/model_quantized.onnx", disabled_optimizers=["SkipLayerNormFusion"]',
    ")",
    'batch = tokenizer(["wake me up at seven"], padding=True, return_tensors="np")',
    "logits = session.run(None, {i.name: batch[i.name] for i in session.get_inputs()})[0]",
    "print([labels[int(i)] for i in logits.argmax(-1)])",
)


def write_model_card(
    out_dir: Path,
    title: str,
    summary: str,
    facts: Iterable[tuple[str, object]],
    source: str | None = None,
    usage: Sequence[str] = TRANSFORMERS_USAGE,
    library: str = "transformers",
    record: dict[str, Any] | None = None,
    results: tuple[str, Mapping[str, float]] | None = None,
    results_caption: str = "per language on the dev split",
) -> None:
    """A model card with a front matter Hugging Face understands and a table of facts, ready to
    publish: the base model is the Hub model the lineage in `record` (kdcli.json) starts from,
    `results` (a metric's name, language -> score) become a table, and no local path appears
    in it (callers give names through `public_name`)."""
    base = base_model(record) or (source if source and not Path(source).exists() else None)
    task = "text-classification"
    if record_task(record) == "token-classification":
        task = "token-classification"
    lines = ["---", f"library_name: {library}", "tags:", "- kdcli", f"- {task}"]
    if base:
        lines.append(f"base_model: {base}")
    metric, scores = results or ("accuracy", {})
    languages = sorted(scores)
    codes = sorted({lang.replace("_", "-").split("-")[0] for lang in languages} - {"und"})
    if codes and all(_is_language_code(code) for code in codes):
        lines += ["language:", *(f"- {code}" for code in codes)]
    lines += ["---", "", f"# {title}", "", summary, "", "| | |", "|---|---|"]
    if base:
        lines.append(f"| base model | `{base}` |")
    lines += [f"| {key} | {value} |" for key, value in facts]
    if scores:
        caption = f"{metric[0].upper()}{metric[1:]} {results_caption}"
        lines += ["", "## Results", "", f"{caption} (from `kdcli.json`):", ""]
        lines += [f"| language | {metric} |", "|---|---:|"]
        lines += [f"| {lang} | {100 * scores[lang]:.1f} |" for lang in languages]
    lines += ["", "## Use", "", "```python", *usage, "```", ""]
    lines += ["How it was made (source, settings, checks) is recorded in `kdcli.json`.", ""]
    (Path(out_dir) / "README.md").write_text("\n".join(lines), encoding="utf-8")


def public_name(name: str | Path) -> str:
    """What a card may call a model or data set: a Hub id as it is, a local path by its last
    component only (a card is published; the folders of the machine that made it are not)."""
    text = str(name)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or "\\" in text:
        return path.resolve().name or text
    return text


def base_model(record: dict[str, Any] | None) -> str | None:
    """The Hub model a kdcli lineage starts from: the oldest model in it with a Hub id."""
    from kdcli.files.provenance import lineage_entries

    for entry in reversed(lineage_entries(record)):
        for key in ("source", "student", "teacher"):
            value = entry.get(key)
            if isinstance(value, dict) and "revision" in value and value.get("model"):
                return str(value["model"])
    return None


def record_task(record: dict[str, Any] | None) -> str | None:
    """The task (sequence or token classification) the newest training stage recorded."""
    from kdcli.files.provenance import entry_field, lineage_entries

    for entry in lineage_entries(record):
        task = entry_field(entry, "task")
        if isinstance(task, str):
            return task
    return None


def dev_results(record: dict[str, Any] | None) -> tuple[str, dict[str, float]]:
    """Per-language dev score of the newest training stage in a lineage, with its name: entity
    F1 for token classification (where accuracy counts words, mostly `O`), else accuracy."""
    from kdcli.files.provenance import entry_field, lineage_entries

    for entry in lineage_entries(record):
        per_language = entry_field(entry, "metrics", "dev", "per_language")
        if isinstance(per_language, dict) and per_language:
            key = "f1" if entry_field(entry, "task") == "token-classification" else "accuracy"
            scores = {
                str(lang): float(entry_field(value, key))
                for lang, value in per_language.items()
                if isinstance(entry_field(value, key), int | float)
            }
            return ("entity F1" if key == "f1" else "accuracy"), scores
    return "accuracy", {}


def _is_language_code(code: str) -> bool:
    head = code.replace("_", "-").split("-")[0]
    return 2 <= len(head) <= 3 and head.isalpha() and head.islower()
