//! sixin's own event stream (`GET /sixin/v1/events`): the caller's new messages as they are
//! stored, as server-sent events.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::{Client, Error, Host, Result};

const EVENTS: &str = "/sixin/v1/events";
/// How long one connection of the stream is kept before it is made again (it resumes where it
/// was, so nothing is lost in between).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(3600);

/// One new message, with the session it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    /// 1: a user, 2: a fan group.
    pub session_type: u8,
    /// The other user, or the group.
    pub talker_id: u64,
    pub msg: sixin_proto::Message,
}

type Raw = Pin<
    Box<
        dyn Stream<
                Item = std::result::Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// The caller's new messages, one by one ([`Client::events`]). A dropped connection is made
/// again and resumes after the last message received, so none is missed or repeated.
pub struct Events {
    client: Client,
    raw: Option<Raw>,
    last: Option<u64>,
    /// Connections made again in a row without a message in between.
    failures: u32,
    /// Keys of the latest messages returned: a resumed stream starts a little before the
    /// last one (so that nothing stored around it is lost) and these are not returned again.
    recent: std::collections::VecDeque<u64>,
    /// Messages up to this key are not returned (the `after` the stream was opened with).
    floor: u64,
}

/// Messages remembered to recognise those a resumed stream sends again.
const RECENT: usize = 4096;

impl Client {
    /// sixin's own extension: opens the stream of the caller's new messages, from now on,
    /// or those with a key above `after` (a `msg_key`). A server without the stream (the
    /// official hosts) answers with [`Error::Http`] 404.
    pub async fn events(&self, after: Option<u64>) -> Result<Events> {
        let raw = self.open_events(after).await?;
        Ok(Events {
            client: self.clone(),
            raw: Some(raw),
            last: after,
            failures: 0,
            recent: std::collections::VecDeque::new(),
            floor: after.unwrap_or(0),
        })
    }

    async fn open_events(&self, after: Option<u64>) -> Result<Raw> {
        let url = self.url(Host::Vc, EVENTS)?;
        let mut rb = self
            .http()
            .get(url)
            .timeout(CONNECTION_LIFETIME)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(c) = self.cookie_header() {
            rb = rb.header(reqwest::header::COOKIE, c);
        }
        if let Some(k) = after {
            rb = rb.header("Last-Event-ID", k.to_string());
        }
        let resp = rb.send().await.map_err(Error::Transport)?;
        let is_stream = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if resp.status().is_success() && is_stream {
            return Ok(Box::pin(resp.bytes_stream().eventsource()));
        }
        // Refused: the API's own answer (-101 without a login), or an HTTP error.
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(Error::Transport)?;
        match serde_json::from_str::<sixin_proto::Envelope<serde_json::Value>>(&text) {
            Ok(env) if env.code != 0 => Err(Error::Api {
                code: env.code,
                message: env.message,
            }),
            _ => Err(Error::Http {
                status,
                body: text.chars().take(300).collect(),
            }),
        }
    }
}

impl Events {
    /// The next new message. Waits for it; connections the server or the network ended are
    /// made again. Fails when the stream cannot be opened again (the login ended: -101).
    pub async fn next(&mut self) -> Result<MessageEvent> {
        loop {
            let raw = match &mut self.raw {
                Some(raw) => raw,
                None => {
                    if self.failures > 0 {
                        tokio::time::sleep(crate::backoff(self.failures.min(4) - 1)).await;
                    }
                    self.failures += 1;
                    match self.client.open_events(self.last).await {
                        Ok(raw) => self.raw.insert(raw),
                        Err(e @ Error::Transport(_)) if self.failures <= 8 => {
                            tracing::debug!(error = %e, "event stream: connecting again");
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            match raw.next().await {
                Some(Ok(ev)) if ev.event == "message" => {
                    let m: MessageEvent = serde_json::from_str(&ev.data)
                        .map_err(|e| Error::Decode(format!("event {}: {e}", ev.id)))?;
                    self.failures = 0;
                    let key = m.msg.msg_key;
                    if key <= self.floor || self.recent.contains(&key) {
                        continue;
                    }
                    if self.recent.len() == RECENT {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(key);
                    self.reached(key);
                    return Ok(m);
                }
                // The stream's start (`open`), and kinds for newer clients: only the position.
                Some(Ok(ev)) => {
                    if let Ok(k) = ev.id.parse::<u64>() {
                        self.reached(k);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "event stream interrupted");
                    self.raw = None;
                }
                None => self.raw = None,
            }
        }
    }

    /// The stream got as far as `key`: a reconnect resumes from there.
    fn reached(&mut self, key: u64) {
        self.last = Some(self.last.map_or(key, |l| l.max(key)));
    }

    /// The `msg_key` of the last message received (or the one the stream started after).
    pub fn last_key(&self) -> Option<u64> {
        self.last
    }
}
