-- The documents a run was created from (runs created from pasted text have none), and where in
-- its file each block came from.
CREATE TABLE run_files (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- Upload order, from 0.
    file_index INTEGER NOT NULL CHECK (file_index >= 0),
    file_name TEXT NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
    -- Lower-case, without the dot: the extension `upload.allowed_extensions` admitted.
    extension TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    -- SHA-256 of the file's bytes, lower-case hex.
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    block_count INTEGER NOT NULL CHECK (block_count >= 1),
    PRIMARY KEY (run_id, file_index)
);

-- The file (run_files.file_index) and the position in it (paragraph, row or page, from 1) a
-- block was extracted from; NULL for pasted text.
ALTER TABLE blocks ADD COLUMN file_index INTEGER NULL;
ALTER TABLE blocks ADD COLUMN file_position INTEGER NULL;
