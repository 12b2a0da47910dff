-- Core schema: accounts, logins, relations, conversations, messages and per-user session state.
-- Every integer is a 64-bit BIGINT; u64 ids are stored bit-cast into i64 (BIGINT).

CREATE TABLE users (
    mid             BIGINT PRIMARY KEY,
    name            TEXT    NOT NULL,
    face            TEXT    NOT NULL DEFAULT '',
    sign            TEXT    NOT NULL DEFAULT '',
    level           BIGINT NOT NULL DEFAULT 0,
    password_hash   TEXT,
    system_msg_type BIGINT NOT NULL DEFAULT 0,
    privacy         BIGINT NOT NULL DEFAULT 0,
    flagged         BIGINT NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL
);

CREATE TABLE logins (
    sessdata_hash TEXT    PRIMARY KEY,
    mid           BIGINT NOT NULL REFERENCES users(mid),
    bili_jct      TEXT    NOT NULL,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    revoked       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX logins_mid ON logins(mid);

-- One row per ordered pair (mid acts on fid).
CREATE TABLE relations (
    mid        BIGINT NOT NULL,
    fid        BIGINT NOT NULL,
    follow     BIGINT NOT NULL DEFAULT 0,
    special    BIGINT NOT NULL DEFAULT 0,
    block      BIGINT NOT NULL DEFAULT 0,
    follow_ms  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (mid, fid)
);

-- A conversation is a user pair (kind 1, pair_key "lo:hi") or a fan group (kind 2).
-- max_seqno is the per-conversation counter the insert transaction advances.
CREATE TABLE conversations (
    id         BIGSERIAL PRIMARY KEY,
    kind       BIGINT NOT NULL,
    pair_key   TEXT UNIQUE,
    user_lo    BIGINT NOT NULL DEFAULT 0,
    user_hi    BIGINT NOT NULL DEFAULT 0,
    group_id   BIGINT,
    max_seqno  BIGINT NOT NULL DEFAULT 0,
    last_ts_us BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    conv_id          BIGINT NOT NULL,
    seqno            BIGINT NOT NULL,
    msg_key          BIGINT NOT NULL UNIQUE,
    sender_uid       BIGINT NOT NULL,
    receiver_type    BIGINT NOT NULL,
    receiver_id      BIGINT NOT NULL,
    msg_type         BIGINT NOT NULL,
    content          TEXT    NOT NULL,
    ts               BIGINT NOT NULL,
    at_uids          TEXT,
    msg_status       BIGINT NOT NULL DEFAULT 0,
    sys_cancel       BIGINT NOT NULL DEFAULT 0,
    notify_code      TEXT    NOT NULL DEFAULT '',
    new_face_version BIGINT NOT NULL DEFAULT 0,
    msg_source       BIGINT NOT NULL,
    visible_to       BIGINT,
    dev_id           TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (conv_id, seqno)
);

-- One user's view of one conversation (or only their settings towards a talker, when
-- last_seqno is 0). unread_count is maintained by the writes so reads never scan history.
CREATE TABLE sessions (
    owner          BIGINT NOT NULL,
    session_type   BIGINT NOT NULL,
    talker_id      BIGINT NOT NULL,
    conv_id        BIGINT,
    ack_seqno      BIGINT NOT NULL DEFAULT 0,
    ack_ts         BIGINT NOT NULL DEFAULT 0,
    session_ts     BIGINT NOT NULL DEFAULT 0,
    last_seqno     BIGINT NOT NULL DEFAULT 0,
    unread_count   BIGINT NOT NULL DEFAULT 0,
    top_ts         BIGINT NOT NULL DEFAULT 0,
    is_dnd         BIGINT NOT NULL DEFAULT 0,
    push_setting   BIGINT NOT NULL DEFAULT 0,
    removed        BIGINT NOT NULL DEFAULT 0,
    is_intercept   BIGINT NOT NULL DEFAULT 0,
    is_trust       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, session_type, talker_id)
);
CREATE INDEX sessions_by_ts ON sessions(owner, session_ts);
CREATE INDEX sessions_unread ON sessions(owner) WHERE unread_count > 0;

-- Snowflake node ids, leased so processes sharing a database never share one.
CREATE TABLE nodes (
    node_id  BIGINT PRIMARY KEY,
    lease_ms BIGINT NOT NULL,
    instance TEXT    NOT NULL
);
