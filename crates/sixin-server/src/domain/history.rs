//! `fetch_session_msgs`: the four windows of SPEC §4.3 and the emoji decoration of texts.

use sixin_proto::content;
use sixin_proto::{EmojiInfo, Message, MessagePage, EMPTY_MIN_SEQNO};

use super::{Caller, Result, Service};
use crate::store::Window;

pub const MAX_FETCH: u32 = 200;
/// How many tips a `size=0` read returns.
const TIPS_PAGE: u32 = 20;

#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub talker_id: u64,
    pub session_type: u8,
    pub size: u32,
    /// Exclusive; 0 is a real bound ("from the beginning", for catching up).
    pub begin_seqno: Option<u64>,
    /// Exclusive; 0 is the same as absent (nothing lies below it).
    pub end_seqno: Option<u64>,
    pub web: bool,
}

impl Service {
    pub async fn fetch(&self, caller: &Caller, req: FetchRequest) -> Result<MessagePage> {
        let begin = req.begin_seqno;
        let end = req.end_seqno.filter(|e| *e > 0);
        let tips_only = req.size == 0;
        let size = if tips_only {
            TIPS_PAGE
        } else {
            req.size.min(MAX_FETCH)
        };
        let empty = MessagePage {
            messages: None,
            has_more: 0,
            min_seqno: EMPTY_MIN_SEQNO,
            max_seqno: 0,
            e_infos: None,
        };
        let conv_id = if req.session_type == 2 {
            self.readable_group(caller.mid, req.talker_id)
                .await?
                .conv_id
        } else {
            match self
                .store
                .pair_conversation(caller.mid, req.talker_id)
                .await?
            {
                Some(conv_id) => conv_id,
                None => return Ok(empty),
            }
        };
        if let (Some(b), Some(e)) = (begin, end) {
            if e <= b.saturating_add(1) {
                return Ok(empty);
            }
        }
        let window = Window {
            begin,
            end,
            // Catching up forwards takes the oldest messages after `begin`, so nothing between
            // `begin` and the page is skipped.
            oldest_first: begin.is_some() && end.is_none(),
            limit: size + 1,
            tips_only,
        };
        let mut messages = self.store.messages(conv_id, caller.mid, window).await?;
        let has_more = messages.len() > size as usize;
        if has_more {
            if window.oldest_first {
                // Newest first: the extra one is the newest.
                messages.remove(0);
            } else {
                messages.pop();
            }
        }
        if messages.is_empty() {
            return Ok(empty);
        }
        let e_infos = self.decorate(&mut messages, req.web);
        Ok(MessagePage {
            has_more: u8::from(has_more),
            min_seqno: messages.last().map_or(EMPTY_MIN_SEQNO, |m| m.msg_seqno),
            max_seqno: messages.first().map_or(0, |m| m.msg_seqno),
            messages: Some(messages),
            e_infos: (!e_infos.is_empty()).then_some(e_infos),
        })
    }

    /// Converts old emoji names for web clients and gathers the `e_infos` of the texts.
    pub(crate) fn decorate(&self, messages: &mut [Message], web: bool) -> Vec<EmojiInfo> {
        let mut infos: Vec<EmojiInfo> = Vec::new();
        for m in messages.iter_mut() {
            // Emoji are written `[name]`; a text without a bracket (even an escaped one) has none.
            if m.msg_type != content::TEXT
                || !(m.content.contains('[') || m.content.contains("\\u"))
            {
                continue;
            }
            let Ok(mut text) = serde_json::from_str::<content::Text>(&m.content) else {
                continue;
            };
            let mut new_face = m.new_face_version == Some(1);
            if web && !new_face {
                let converted = self.emoji.convert_old_names(&text.content);
                if let std::borrow::Cow::Owned(c) = converted {
                    text.content = c;
                    m.content = serde_json::to_string(&text).unwrap_or_else(|_| m.content.clone());
                }
                new_face = true;
            }
            for info in self.emoji.e_infos(&text.content, new_face) {
                if !infos.iter().any(|i| i.text == info.text) {
                    infos.push(info);
                }
            }
        }
        infos
    }
}
