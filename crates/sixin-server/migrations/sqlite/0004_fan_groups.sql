-- Fan groups (应援团). A group is a conversation (conversations.kind = 2) plus these rows.
-- Sending to a group writes the message and the sender's session only: members' unread counts
-- are max_seqno - ack_seqno, and mentions have their own rows.

CREATE TABLE groups (
    group_id   INTEGER PRIMARY KEY,
    conv_id    INTEGER NOT NULL UNIQUE,
    owner      INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    cover      TEXT    NOT NULL DEFAULT '',
    group_type INTEGER NOT NULL DEFAULT 0,
    -- 0 normal, 1 frozen, 2 dissolved
    state      INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL,
    mid       INTEGER NOT NULL,
    joined_us INTEGER NOT NULL,
    -- 0 while a member; the seqno of the leave message once gone (their view ends there)
    left_seqno INTEGER NOT NULL DEFAULT 0,
    left_us    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, mid)
);
CREATE INDEX group_members_by_mid ON group_members(mid);

-- One row per mentioned member per message.
CREATE TABLE group_mentions (
    group_id INTEGER NOT NULL,
    mid      INTEGER NOT NULL,
    seqno    INTEGER NOT NULL,
    PRIMARY KEY (group_id, mid, seqno)
);
