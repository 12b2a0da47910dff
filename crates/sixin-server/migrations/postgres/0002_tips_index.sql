-- fetch_session_msgs with size 0 reads only system tips: find them without walking history.
CREATE INDEX messages_tips ON messages(conv_id, seqno) WHERE msg_type = 18;
