"""Build a real, harder multilingual text-classification set from Debian's translation catalogues.

Every Debian/Ubuntu machine carries human translations of its programs' messages in
`/usr/share/locale/<lang>/LC_MESSAGES/<package>.mo`. Labelling each translated message with the
package it comes from gives a real topic-classification task in many languages and scripts:
"Permission denied" belongs to coreutils, "Authentication token manipulation error" to Linux-PAM,
"Swiss franc" to the ISO 4217 currency names. Some packages overlap in what they talk about (apt
and dpkg, PAM and shadow, countries and currencies), so a good model stays clearly below 100%,
which is what a quality benchmark needs (the shipped MASSIVE sample is too easy).

The output is in the MASSIVE layout that `kdcli --data` reads: `OUT/data/<locale>.jsonl`, one
line per utterance with `id, locale, partition (train|dev|test), scenario, intent, utt`.

- Split by source message: every translation of one English message (msgid) lands in the same
  partition, so no test sentence has a translation in the training data.
- English is one of the languages (the msgids themselves).
- Messages are cleaned (menu accelerators, format-only strings and untranslated copies removed),
  and a text that appears under two packages in one language is dropped as ambiguous.
- Deterministic: the same catalogues give byte-identical files (selection by hash, not by a
  random generator). Catalogues differ between distributions and releases, so `OUT/README.md`
  records each package's version and a fingerprint of the whole set.

Usage: python scripts/make_gettext_data.py --out data/gettext-topics
Licences: the catalogues belong to their packages (GPL/LGPL and similar); the generated set is for
local benchmarking and is not shipped in this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

# The label set: packages whose messages are about recognisably different things, with a few
# deliberately confusable pairs. Each is translated into every locale below on Debian 12/13.
PACKAGES = {
    "coreutils": "system",
    "bash": "system",
    "Linux-PAM": "security",
    "shadow": "security",
    "apt": "packaging",
    "dpkg": "packaging",
    "wget": "network",
    "avahi": "network",
    "glib20": "desktop",
    "gtk20": "desktop",
    "shared-mime-info": "desktop",
    "gstreamer-1.0": "desktop",
    "xkeyboard-config": "reference",
    "iso_3166-1": "reference",
    "iso_4217": "reference",
}
# Gettext locale folder -> locale code in the output (with English: 17 languages, 6 scripts).
# Debian 12 lacks three catalogues here (dpkg in uk, apt in id, avahi in vi): those locales simply
# have no examples of that label.
LOCALES = {
    "de": "de-DE",
    "es": "es-ES",
    "fr": "fr-FR",
    "pt_BR": "pt-BR",
    "nl": "nl-NL",
    "pl": "pl-PL",
    "cs": "cs-CZ",
    "ru": "ru-RU",
    "uk": "uk-UA",
    "el": "el-GR",
    "tr": "tr-TR",
    "id": "id-ID",
    "vi": "vi-VN",
    "ja": "ja-JP",
    "zh_CN": "zh-CN",
    "ko": "ko-KR",
}
ENGLISH = "en-US"
MESSAGES_PER_PACKAGE = 40  # source messages drawn from each package (before cleaning losses)
SPLITS = (("train", 70), ("dev", 15), ("test", 15))  # percent of source messages
MIN_LETTERS, MAX_CHARS = 4, 160


def read_mo(path: Path) -> dict[str, str]:
    """msgid -> msgstr of a compiled gettext catalogue (first plural form; header dropped)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    _, count, originals, translations = struct.unpack(endian + "4I", data[4:20])
    catalogue: dict[str, str] = {}
    for i in range(count):
        o_len, o_off = struct.unpack(endian + "2I", data[originals + 8 * i : originals + 8 * i + 8])
        t_len, t_off = struct.unpack(
            endian + "2I", data[translations + 8 * i : translations + 8 * i + 8]
        )
        msgid = data[o_off : o_off + o_len].split(b"\0")[0]
        msgstr = data[t_off : t_off + t_len].split(b"\0")[0]
        if not msgid or b"\x04" in msgid:  # header, or a message with a context
            continue
        try:
            catalogue[msgid.decode("utf-8")] = msgstr.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return catalogue


_FORMAT = re.compile(r"%(\d+\$)?[-+ #0']*\d*(\.\d+)?(hh|h|ll|l|L|q|j|z|t)?[a-zA-Z%]|\$\{?\w+\}?")
_MARKUP = re.compile(r"<[^>]+>")


def clean(text: str) -> str | None:
    """One line of natural text, or None when little natural language is left."""
    text = _MARKUP.sub(" ", text)
    text = re.sub(r"(?<!\w)_(?=\w)|&(?=\w)", "", text)  # menu accelerators: _Open, &File
    text = re.sub(r"\s+", " ", text).strip().rstrip(":").strip()
    letters = _FORMAT.sub("", text)
    if sum(ch.isalpha() for ch in letters) < MIN_LETTERS or len(text) > MAX_CHARS:
        return None
    if text.startswith(("-", "Usage", "usage")):  # option lists and synopses
        return None
    return text


def _rank(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def partition(package: str, msgid: str) -> str:
    bucket = int(_rank("split", package, msgid)[:8], 16) % 100
    for name, share in SPLITS:
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("split shares must add up to 100")


def collect(locale_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Rows per output locale, before de-duplication."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for package, scenario in PACKAGES.items():
        catalogues = {
            code: read_mo(locale_dir / folder / "LC_MESSAGES" / f"{package}.mo")
            for folder, code in LOCALES.items()
            if (locale_dir / folder / "LC_MESSAGES" / f"{package}.mo").is_file()
        }
        if len(catalogues) < len(LOCALES) - 3:  # a few gaps are real life; most must be there
            missing = sorted(set(LOCALES.values()) - set(catalogues))
            raise SystemExit(f"{package}: no catalogue for {', '.join(missing)} in {locale_dir}")
        # Source messages translated in most locales, cleanable in English, in hash order.
        msgids = [
            m
            for m in set.union(*(set(c) for c in catalogues.values()))
            if clean(m) and sum(bool(c.get(m)) for c in catalogues.values()) >= len(LOCALES) // 2
        ]
        msgids.sort(key=lambda m: _rank("pick", package, m))
        for msgid in msgids[:MESSAGES_PER_PACKAGE]:
            split = partition(package, msgid)
            key = _rank("id", package, msgid)[:12]
            rows[ENGLISH].append(_row(key, ENGLISH, split, scenario, package, clean(msgid)))
            for code, catalogue in catalogues.items():
                text = clean(catalogue.get(msgid, ""))
                if text and text != clean(msgid):  # untranslated copies are English, not `code`
                    rows[code].append(_row(key, code, split, scenario, package, text))
    return rows


def _row(key: str, locale: str, split: str, scenario: str, package: str, text: str | None) -> dict:
    return {
        "id": f"{key}-{locale}",
        "locale": locale,
        "partition": split,
        "scenario": scenario,
        "intent": package,
        "utt": text or "",
    }


def deduplicate(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop texts that carry two labels in one language; keep one copy of exact repeats."""
    labels: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        labels[row["utt"].casefold()].add(row["intent"])
    seen: set[str] = set()
    kept = []
    for row in sorted(rows, key=lambda r: r["id"]):
        key = row["utt"].casefold()
        if len(labels[key]) == 1 and key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def package_versions() -> dict[str, str]:
    """The Debian package that owns each catalogue, with its version (for the README)."""
    versions = {}
    for package in PACKAGES:
        path = f"/usr/share/locale/de/LC_MESSAGES/{package}.mo"
        try:
            owner = subprocess.run(
                ["dpkg-query", "-S", path], capture_output=True, text=True, check=True
            ).stdout.split(":")[0]
            version = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", owner],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            versions[package] = f"{owner} {version}"
        except (OSError, subprocess.CalledProcessError):
            versions[package] = "unknown"
    return versions


def write(out: Path, rows: dict[str, list[dict[str, str]]], locale_dir: Path) -> str:
    digest = hashlib.sha256()
    counts: Counter[tuple[str, str]] = Counter()
    (out / "data").mkdir(parents=True)
    for code in sorted(rows):
        lines = [json.dumps(row, ensure_ascii=False) for row in deduplicate(rows[code])]
        text = "\n".join(lines) + "\n"
        (out / "data" / f"{code}.jsonl").write_text(text, encoding="utf-8")
        digest.update(text.encode("utf-8"))
        for line in lines:
            counts[(code, json.loads(line)["partition"])] += 1
    fingerprint = digest.hexdigest()[:16]
    table = "\n".join(
        f"| {code} | " + " | ".join(str(counts[(code, split)]) for split, _ in SPLITS) + " |"
        for code in sorted(rows)
    )
    versions = "\n".join(f"- `{p}`: {v}" for p, v in package_versions().items())
    totals = {s: sum(n for (_, split), n in counts.items() if split == s) for s, _ in SPLITS}
    (out / "README.md").write_text(
        f"# gettext-topics: which program does this message come from?\n\n"
        f"Built by `scripts/make_gettext_data.py` from `{locale_dir}`. "
        f"Fingerprint `{fingerprint}`.\n"
        f"{len(rows)} locales, {len(PACKAGES)} labels; {totals['train']} train, "
        f"{totals['dev']} dev, {totals['test']} test utterances.\n\n"
        f"| locale | train | dev | test |\n|---|---|---|---|\n{table}\n\n"
        f"Catalogues (Debian package and version):\n{versions}\n",
        encoding="utf-8",
    )
    return fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (MASSIVE layout)")
    parser.add_argument("--locale-dir", type=Path, default=Path("/usr/share/locale"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        print(f"{args.out} exists: pass --overwrite to replace it", file=sys.stderr)
        return 2
    if not args.locale_dir.is_dir():
        print(f"{args.locale_dir} is not a folder of gettext catalogues", file=sys.stderr)
        return 2
    rows = collect(args.locale_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{args.out.name}.tmp-", dir=args.out.parent))
    try:
        fingerprint = write(tmp, rows, args.locale_dir)
        if args.out.exists():
            shutil.rmtree(args.out)
        tmp.rename(args.out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"wrote {args.out} (fingerprint {fingerprint})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
