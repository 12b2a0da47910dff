//! Walking a whole history page by page.

use sixin_proto::Message;

use crate::{Client, FetchQuery, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the newest message back to the first.
    Backward,
    /// From after `seqno` (0: the beginning) forward to the newest, oldest first.
    ForwardFrom(u64),
}

/// Pages through a conversation. Bounds are exclusive seqnos taken from the previous page, so
/// no message is returned twice or skipped, however long the history.
pub struct HistoryPager {
    client: Client,
    talker_id: u64,
    session_type: u8,
    direction: Direction,
    /// The exclusive bound of the next page.
    cursor: Option<u64>,
    page_size: u32,
    done: bool,
}

impl HistoryPager {
    pub(crate) fn new(
        client: Client,
        talker_id: u64,
        session_type: u8,
        direction: Direction,
    ) -> Self {
        let cursor = match direction {
            Direction::Backward => None,
            Direction::ForwardFrom(s) => Some(s),
        };
        HistoryPager {
            client,
            talker_id,
            session_type,
            direction,
            cursor,
            page_size: 200,
            done: false,
        }
    }

    /// Messages per request (1 to 200; default 200).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 200);
        self
    }

    /// The next page: newest first when walking backward, oldest first when walking forward.
    /// `None` when the walk is over.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Message>>> {
        match self.next_raw_page().await? {
            None => Ok(None),
            Some(raw) => raw
                .into_iter()
                .map(|v| {
                    serde_json::from_value(v)
                        .map_err(|e| crate::Error::Decode(format!("message: {e}")))
                })
                .collect::<Result<Vec<Message>>>()
                .map(Some),
        }
    }

    /// The next page as received JSON objects (see [`Client::fetch_session_msgs_raw`]).
    pub async fn next_raw_page(&mut self) -> Result<Option<Vec<serde_json::Value>>> {
        if self.done {
            return Ok(None);
        }
        let forward = matches!(self.direction, Direction::ForwardFrom(_));
        let page = self
            .client
            .fetch_session_msgs_raw(FetchQuery {
                talker_id: self.talker_id,
                session_type: self.session_type,
                size: self.page_size,
                begin_seqno: if forward {
                    Some(self.cursor.unwrap_or(0))
                } else {
                    None
                },
                end_seqno: if forward { None } else { self.cursor },
            })
            .await?;
        let mut msgs = match page.get("messages") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let has_more = page
            .get("has_more")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if msgs.is_empty() {
            self.done = true;
            return Ok(None);
        }
        if forward {
            msgs.reverse();
        }
        self.cursor = msgs
            .last()
            .and_then(|m| m.get("msg_seqno"))
            .and_then(serde_json::Value::as_u64);
        if has_more == 0 || self.cursor.is_none() {
            self.done = true;
        }
        Ok(Some(msgs))
    }

    /// Every remaining message, in the walk's order.
    pub async fn collect_all(mut self) -> Result<Vec<Message>> {
        let mut all = Vec::new();
        while let Some(p) = self.next_page().await? {
            all.extend(p);
        }
        Ok(all)
    }
}
