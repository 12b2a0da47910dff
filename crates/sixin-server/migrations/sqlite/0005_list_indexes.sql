-- Session lists walk one index in their order and stop at the page size: the order includes
-- the talker as tie-breaker. System accounts are found without scanning a user's sessions.
DROP INDEX sessions_by_ts;
CREATE INDEX sessions_list ON sessions(owner, session_type, session_ts, talker_id);
CREATE INDEX sessions_by_ack ON sessions(owner, session_type, ack_ts, talker_id);
CREATE INDEX users_system ON users(system_msg_type) WHERE system_msg_type > 0;
CREATE INDEX sessions_pinned ON sessions(owner, session_type, top_ts) WHERE top_ts > 0;
