"""The chunk store, `chunks.sqlite`: its tables, which rows a generation sees, rows to records.

Rows carry the generation that added them (`gen_added`) and the one that removed them
(`gen_removed`, NULL while they are current), so the rows of generation G and of G+1 live side by
side until a manifest names G+1.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import numpy as np

from rag.types import Chunk

DB = "chunks.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    source TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, pages TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, added_at REAL NOT NULL,
    gen_added INTEGER NOT NULL, gen_removed INTEGER,
    PRIMARY KEY (source, gen_added));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, page INTEGER, text TEXT NOT NULL, sentences TEXT NOT NULL,
    vector BLOB NOT NULL, sentence_vectors BLOB NOT NULL,
    gen_added INTEGER NOT NULL, gen_removed INTEGER);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks (source, gen_added);
"""

# The rows generation `:gen` sees: added by it or before, not removed by it or before. Queries
# using it bind `gen` by name.
LIVE = "gen_added <= :gen AND (gen_removed IS NULL OR gen_removed > :gen)"

CHUNK_COLUMNS = 'id, source, start, "end", page, text, sentences'  # what `chunk_from_row` reads
VECTOR_BLOCK = 50_000  # vectors read from the chunk store at a time


def chunk_from_row(row: tuple) -> Chunk:
    """A `Chunk` from a row of `CHUNK_COLUMNS`."""
    cid, source, start, end, page, text, sentences = row
    return Chunk(cid, source, start, end, text, page, tuple(tuple(s) for s in json.loads(sentences)))


def vector_blocks(cursor: sqlite3.Cursor, block_rows: int = VECTOR_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(chunk ids, vectors) of a cursor over (id, vector) rows, `block_rows` rows at a time: int64
    ids and a float32 (rows, dim) array, so memory holds one block, not every vector."""
    while True:
        block = cursor.fetchmany(block_rows)
        if not block:
            return
        ids = np.fromiter((r[0] for r in block), dtype=np.int64, count=len(block))
        yield ids, np.frombuffer(b"".join(r[1] for r in block), dtype=np.float32).reshape(len(block), -1)
