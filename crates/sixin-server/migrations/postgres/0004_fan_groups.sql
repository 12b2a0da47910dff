-- Fan groups (应援团). A group is a conversation (conversations.kind = 2) plus these rows.
-- Sending to a group writes the message and the sender's session only: members' unread counts
-- are max_seqno - ack_seqno, and mentions have their own rows.

CREATE TABLE groups (
    group_id   BIGINT PRIMARY KEY,
    conv_id    BIGINT NOT NULL UNIQUE,
    owner      BIGINT NOT NULL,
    name       TEXT    NOT NULL,
    cover      TEXT    NOT NULL DEFAULT '',
    group_type BIGINT NOT NULL DEFAULT 0,
    -- 0 normal, 1 frozen, 2 dissolved
    state      BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id  BIGINT NOT NULL,
    mid       BIGINT NOT NULL,
    joined_us BIGINT NOT NULL,
    -- 0 while a member; the seqno of the leave message once gone (their view ends there)
    left_seqno BIGINT NOT NULL DEFAULT 0,
    left_us    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, mid)
);
CREATE INDEX group_members_by_mid ON group_members(mid);

-- One row per mentioned member per message.
CREATE TABLE group_mentions (
    group_id BIGINT NOT NULL,
    mid      BIGINT NOT NULL,
    seqno    BIGINT NOT NULL,
    PRIMARY KEY (group_id, mid, seqno)
);
