"""The memory tables in PostgreSQL (schema ``memora``), versioned like their SQLite form.

The vector column is untyped until the first embedder writes: then it becomes
``vector(dim)``, gets its HNSW index (cosine) and the embedder's name and dimension are kept in
``meta`` (key ``space``), so that another embedder opening the database is refused.
Full-text search is a generated ``tsvector`` (configuration ``english``: stemmed, like SQLite's
porter tokenizer) with a GIN index.
"""

from __future__ import annotations

from memora._sqlite import Component
from memora.memory.sqlbase import OCCURRENCES, TIMES_AND_KEYS

__all__ = ["COLUMNS", "MEMORY"]

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('seq', '0') ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS memories (
    key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT,
    agent_id TEXT,
    session_id TEXT,
    scope_key TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    embedding vector NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    deleted_at DOUBLE PRECISION,
    surprise DOUBLE PRECISION,
    salient BOOLEAN NOT NULL DEFAULT FALSE,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE UNIQUE INDEX IF NOT EXISTS memories_dedup
    ON memories (scope_key, content_hash) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS memories_user ON memories (user_id, agent_id, session_id);
CREATE INDEX IF NOT EXISTS memories_agent ON memories (agent_id);
CREATE INDEX IF NOT EXISTS memories_session ON memories (session_id);
CREATE INDEX IF NOT EXISTS memories_tsv ON memories USING gin (tsv);

CREATE TABLE IF NOT EXISTS history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_text TEXT,
    new_text TEXT,
    actor TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS history_memory ON history (memory_id);

-- the change number of every record written (gone: removed for good), numbered at the end of
-- each write transaction, so that concurrent writers hold the counter's lock only to commit
CREATE TABLE IF NOT EXISTS changes (
    key BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    gone BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS changes_seq ON changes (seq);
"""

_OCCURRENCES = OCCURRENCES.format(id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                                  real="DOUBLE PRECISION", bool="BOOLEAN", true="TRUE")  # fmt: skip

_V4 = TIMES_AND_KEYS.format(real="DOUBLE PRECISION")
_STEMMED = """
ALTER TABLE memories DROP COLUMN tsv;
ALTER TABLE memories ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX IF NOT EXISTS memories_tsv ON memories USING gin (tsv);
"""

#: The memory component; its version follows the SQLite form's (3: occurrences; 4:
#: ``occurred_at``, search keys, stemmed full text).
MEMORY = Component(
    name="memory", version=4, schema="", postgres=_TABLES + _OCCURRENCES + _V4,
    postgres_migrations={2: _OCCURRENCES, 3: _V4 + _STEMMED},
)  # fmt: skip

#: :data:`memora.memory.rows.COLUMNS` in this schema (``to_record`` reads both).
COLUMNS = (
    "memories.key, memories.id, memories.user_id, memories.agent_id, memories.session_id, "
    "memories.text, memories.metadata::text, memories.created_at, memories.updated_at, "
    "memories.embedder, memories.dim, memories.content_hash, memories.expires_at, "
    "memories.deleted_at, 0, memories.surprise, memories.salient, memories.dedup, "
    "memories.occurred_at, memories.key_of"
)
