-- Relations, limits, interception and auto-replies.

-- Per-user session counters kept by the writes:
--   manual_sent      messages the owner wrote by hand here (not recalls, not automatic ones);
--                    decides the one-message rule (21047)
--   biz_unread       unread pushes (msg_source 5 or 6) among unread_count
--   official_unread  unread official broadcasts (msg_source 5) among biz_unread
ALTER TABLE sessions ADD COLUMN manual_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN biz_unread INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN official_unread INTEGER NOT NULL DEFAULT 0;

-- 0 not a push, 1 a push (msg_source 6), 2 an official broadcast (msg_source 5): what
-- biz_unread and official_unread count when a read mark moves.
ALTER TABLE messages ADD COLUMN push_kind INTEGER NOT NULL DEFAULT 0;

CREATE TABLE auto_replies (
    mid             INTEGER PRIMARY KEY,
    follow_reply    TEXT NOT NULL DEFAULT '',
    message_reply   TEXT NOT NULL DEFAULT '',
    -- JSON array of {"keyword": "...", "reply": "..."}, first match wins
    keyword_replies TEXT NOT NULL DEFAULT '[]'
);

-- The received-message reply goes out at most once per counterpart per day.
CREATE TABLE auto_reply_log (
    owner       INTEGER NOT NULL,
    counterpart INTEGER NOT NULL,
    day         INTEGER NOT NULL,
    PRIMARY KEY (owner, counterpart, day)
);

-- Fixed-window counters shared by every process using the database (rate limits).
CREATE TABLE rate_counters (
    key   TEXT PRIMARY KEY,
    win   INTEGER NOT NULL,
    count INTEGER NOT NULL
);

-- Switches an operator flips at run time (maintenance mode).
CREATE TABLE server_flags (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
