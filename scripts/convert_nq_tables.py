#!/usr/bin/env python
"""Convert the released NQ-tables TF records into zoo's JSONL form for `zoo bench`.

    gsutil -m cp -R gs://tapas_models/2021_07_22/nq_tables/* nq_tables/
    python scripts/convert_nq_tables.py nq_tables/ nq_tables_jsonl/
    zoo bench tapas_nq_hn_retriever_large --data nq_tables_jsonl/ --split test

Reads SRC/tables/tables.tfrecord (Table protos: the retrieval corpus) and every
SRC/interactions/<split>.tfrecord (Interaction protos: questions with their gold table), and
writes OUT/tables.jsonl and OUT/<split>.jsonl (format: docs/benchmarks.md). No TensorFlow and no
tapas package needed: zoo.benchmarks.nq_tfrecord decodes the protobuf wire format itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.benchmarks.nq_tfrecord import questions, read_tfrecord, table
from zoo.cache import atomic_write_bytes


def _write(path: Path, records) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="the released nq_tables folder (tables/, interactions/)")
    parser.add_argument("out", type=Path, help="folder for tables.jsonl and <split>.jsonl")
    args = parser.parse_args(argv)
    tables_file = args.src / "tables" / "tables.tfrecord"
    interactions = sorted((args.src / "interactions").glob("*.tfrecord"))
    if not tables_file.is_file() or not interactions:
        print(
            f"convert_nq_tables: expected {tables_file} and {args.src / 'interactions'}/<split>.tfrecord",
            file=sys.stderr,
        )
        return 2
    print(f"tables.jsonl: {_write(args.out / 'tables.jsonl', (table(r) for r in read_tfrecord(tables_file)))} tables")
    for path in interactions:
        count = _write(args.out / f"{path.stem}.jsonl", (q for r in read_tfrecord(path) for q in questions(r)))
        print(f"{path.stem}.jsonl: {count} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
