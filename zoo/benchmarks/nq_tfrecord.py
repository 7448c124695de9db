"""Read the released NQ-tables TF records (gs://tapas_models/2021_07_22/nq_tables/) without TensorFlow.

`interactions/{train,dev,test}.tfrecord` hold serialized `language.tapas.Interaction` protos,
`tables/tables.tfrecord` serialized `Table` protos (tapas/protos/interaction.proto). The few
fields the benchmark needs are decoded straight from the protobuf wire format, so neither the
tapas package nor its generated protos are required:

    Interaction: 1 id, 2 table (Table), 3 questions (Question, repeated)
    Table:       1 columns (Cell, repeated), 2 rows (Cells, repeated), 3 table_id, 4 document_title
    Cells:       1 cells (Cell, repeated)        Cell: 1 text
    Question:    1 id, 2 text (normalised; what the retriever encoded), 5 answer (Answer)
    Answer:      3 answer_texts (repeated)

Every other field is skipped by wire type. TFRecord framing (length, masked CRC32C of the
length, data, masked CRC32C of the data) is checked record by record; gzip files are read too.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_crc32c

from ..errors import FormatError

Fields = dict[int, list[Any]]  # field number -> values (ints for varints, bytes for length-delimited)


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecord(path: Path) -> Iterator[bytes]:
    """The records of one TFRecord file, CRC-checked."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as fh:
        index = 0
        while header := fh.read(12):
            if len(header) < 12:
                raise FormatError(f"{path}: record {index} is truncated")
            (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
            if _masked_crc(header[:8]) != length_crc:
                raise FormatError(f"{path}: record {index}: corrupt length (CRC mismatch); not a TFRecord file?")
            data, footer = fh.read(length), fh.read(4)
            if len(data) < length or len(footer) < 4:
                raise FormatError(f"{path}: record {index} is truncated")
            if _masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise FormatError(f"{path}: record {index}: data CRC mismatch")
            yield data
            index += 1


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise FormatError("protobuf: truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def parse(data: bytes) -> Fields:
    """One message's fields; length-delimited values stay bytes (strings or nested messages)."""
    fields: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise FormatError(f"protobuf: unsupported wire type {wire} (field {number})")
        if pos > len(data):
            raise FormatError(f"protobuf: field {number} runs past the end of the message")
        fields.setdefault(number, []).append(value)
    return fields


def _text(fields: Fields, number: int) -> str:
    values = fields.get(number)
    return values[-1].decode("utf-8") if values else ""


def _cell(data: bytes) -> str:
    return _text(parse(data), 1)


def table(data: bytes) -> dict[str, Any]:
    """A Table proto as a tables.jsonl record."""
    fields = parse(data)
    return {
        "table_id": _text(fields, 3),
        "document_title": _text(fields, 4),
        "columns": [_cell(c) for c in fields.get(1, [])],
        "rows": [[_cell(c) for c in parse(row).get(1, [])] for row in fields.get(2, [])],
    }


def questions(data: bytes) -> list[dict[str, Any]]:
    """An Interaction proto's questions as <split>.jsonl records (gold table: the interaction's table)."""
    fields = parse(data)
    tables = fields.get(2)
    if not tables:
        raise FormatError("interaction without a table")
    table_id = _text(parse(tables[-1]), 3)
    out = []
    for raw in fields.get(3, []):
        question = parse(raw)
        answer = parse(question[5][-1]) if 5 in question else {}
        out.append(
            {
                "id": _text(question, 1),
                "question": _text(question, 2),
                "table_ids": [table_id],
                "answers": [a.decode("utf-8") for a in answer.get(3, [])],
            }
        )
    return out
