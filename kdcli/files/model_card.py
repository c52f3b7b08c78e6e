"""The short README.md (model card) kdcli writes into every model directory it makes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

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
) -> None:
    """A model card with a front matter Hugging Face understands and a table of facts."""
    lines = ["---", f"library_name: {library}", "tags:", "- kdcli", "- text-classification"]
    if source and not Path(source).exists():
        lines.append(f"base_model: {source}")
    lines += ["---", "", f"# {title}", "", summary, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts]
    lines += ["", "## Use", "", "```python", *usage, "```", ""]
    lines += ["How it was made (source, settings, checks) is recorded in `kdcli.json`.", ""]
    (Path(out_dir) / "README.md").write_text("\n".join(lines), encoding="utf-8")
