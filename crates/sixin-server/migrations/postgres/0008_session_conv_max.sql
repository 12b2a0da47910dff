-- A pair session keeps its conversation's newest seqno (the session object's max_seqno),
-- written with the session by every insert into the conversation: a session list reads it from
-- the session row instead of looking the conversation up for every session.
ALTER TABLE sessions ADD COLUMN conv_max BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET conv_max = (SELECT c.max_seqno FROM conversations c WHERE c.id = sessions.conv_id)
    WHERE session_type = 1 AND conv_id IS NOT NULL;
