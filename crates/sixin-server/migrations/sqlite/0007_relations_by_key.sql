-- A relation is read by its key on every send (both directions) and for every row of a session
-- list. Kept in its key's own B-tree (WITHOUT ROWID), a read is one search instead of two: the
-- key's index, then the table by rowid.
CREATE TABLE relations_by_key (
    mid        INTEGER NOT NULL,
    fid        INTEGER NOT NULL,
    follow     INTEGER NOT NULL DEFAULT 0,
    special    INTEGER NOT NULL DEFAULT 0,
    block      INTEGER NOT NULL DEFAULT 0,
    follow_ms  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mid, fid)
) WITHOUT ROWID;
INSERT INTO relations_by_key (mid, fid, follow, special, block, follow_ms)
    SELECT mid, fid, follow, special, block, follow_ms FROM relations;
DROP TABLE relations;
ALTER TABLE relations_by_key RENAME TO relations;
