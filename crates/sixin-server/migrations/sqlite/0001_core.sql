-- Core schema: accounts, logins, relations, conversations, messages and per-user session state.
-- Every integer is a 64-bit INTEGER; u64 ids are stored bit-cast into i64.

CREATE TABLE users (
    mid             INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    face            TEXT    NOT NULL DEFAULT '',
    sign            TEXT    NOT NULL DEFAULT '',
    level           INTEGER NOT NULL DEFAULT 0,
    password_hash   TEXT,
    system_msg_type INTEGER NOT NULL DEFAULT 0,
    privacy         INTEGER NOT NULL DEFAULT 0,
    flagged         INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL
);

CREATE TABLE logins (
    sessdata_hash TEXT    PRIMARY KEY,
    mid           INTEGER NOT NULL REFERENCES users(mid),
    bili_jct      TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX logins_mid ON logins(mid);

-- One row per ordered pair (mid acts on fid).
CREATE TABLE relations (
    mid        INTEGER NOT NULL,
    fid        INTEGER NOT NULL,
    follow     INTEGER NOT NULL DEFAULT 0,
    special    INTEGER NOT NULL DEFAULT 0,
    block      INTEGER NOT NULL DEFAULT 0,
    follow_ms  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mid, fid)
);

-- A conversation is a user pair (kind 1, pair_key "lo:hi") or a fan group (kind 2).
-- max_seqno is the per-conversation counter the insert transaction advances.
CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       INTEGER NOT NULL,
    pair_key   TEXT UNIQUE,
    user_lo    INTEGER NOT NULL DEFAULT 0,
    user_hi    INTEGER NOT NULL DEFAULT 0,
    group_id   INTEGER,
    max_seqno  INTEGER NOT NULL DEFAULT 0,
    last_ts_us INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    conv_id          INTEGER NOT NULL,
    seqno            INTEGER NOT NULL,
    msg_key          INTEGER NOT NULL UNIQUE,
    sender_uid       INTEGER NOT NULL,
    receiver_type    INTEGER NOT NULL,
    receiver_id      INTEGER NOT NULL,
    msg_type         INTEGER NOT NULL,
    content          TEXT    NOT NULL,
    ts               INTEGER NOT NULL,
    at_uids          TEXT,
    msg_status       INTEGER NOT NULL DEFAULT 0,
    sys_cancel       INTEGER NOT NULL DEFAULT 0,
    notify_code      TEXT    NOT NULL DEFAULT '',
    new_face_version INTEGER NOT NULL DEFAULT 0,
    msg_source       INTEGER NOT NULL,
    visible_to       INTEGER,
    dev_id           TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (conv_id, seqno)
) WITHOUT ROWID;

-- One user's view of one conversation (or only their settings towards a talker, when
-- last_seqno is 0). unread_count is maintained by the writes so reads never scan history.
CREATE TABLE sessions (
    owner          INTEGER NOT NULL,
    session_type   INTEGER NOT NULL,
    talker_id      INTEGER NOT NULL,
    conv_id        INTEGER,
    ack_seqno      INTEGER NOT NULL DEFAULT 0,
    ack_ts         INTEGER NOT NULL DEFAULT 0,
    session_ts     INTEGER NOT NULL DEFAULT 0,
    last_seqno     INTEGER NOT NULL DEFAULT 0,
    unread_count   INTEGER NOT NULL DEFAULT 0,
    top_ts         INTEGER NOT NULL DEFAULT 0,
    is_dnd         INTEGER NOT NULL DEFAULT 0,
    push_setting   INTEGER NOT NULL DEFAULT 0,
    removed        INTEGER NOT NULL DEFAULT 0,
    is_intercept   INTEGER NOT NULL DEFAULT 0,
    is_trust       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, session_type, talker_id)
) WITHOUT ROWID;
CREATE INDEX sessions_by_ts ON sessions(owner, session_ts);
CREATE INDEX sessions_unread ON sessions(owner) WHERE unread_count > 0;

-- Snowflake node ids, leased so processes sharing a database never share one.
CREATE TABLE nodes (
    node_id  INTEGER PRIMARY KEY,
    lease_ms INTEGER NOT NULL,
    instance TEXT    NOT NULL
);
