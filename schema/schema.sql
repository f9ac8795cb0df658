-- Reference schema of the platform tables media-sync reads and writes
-- (docs/contract.md §1). Only the seed's columns; safe to apply more than once.
CREATE TABLE IF NOT EXISTS storage_boxes (
    id              TEXT PRIMARY KEY,
    minio_endpoint  TEXT NOT NULL,
    used_bytes      BIGINT NOT NULL DEFAULT 0,
    reserved_bytes  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS media_files (
    sha256          CHAR(64) PRIMARY KEY,
    s3_key          TEXT NOT NULL,
    file_size       BIGINT NOT NULL,
    storage_box_id  TEXT REFERENCES storage_boxes (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    synced_at       TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS media_files_unsynced
    ON media_files (created_at) WHERE synced_at IS NULL;
