//! JSON written directly for the objects answered by the page: messages, sessions and the
//! pages and envelopes holding them.
//!
//! The output is byte for byte what their `Serialize` implementations give through
//! `serde_json` (the tests below and `tests/upstream_examples.rs` compare the two). It costs a
//! fraction: serde's path writes every field name through the string escaper, one small write
//! at a time, and a page of 20 sessions has about 900 names and strings. Here a field's name
//! and its punctuation are one constant, numbers go through `itoa`, and only text values are
//! escaped. Rare parts (emoji details, user labels, the system-message map) still go through
//! `serde_json`.

use serde::Serialize;

use crate::envelope::{Data, Envelope};
use crate::types::{AccountInfo, Message, MessagePage, Session, SessionList};

/// A value that writes its own JSON.
pub trait WriteJson {
    /// Appends the value's JSON to `out`.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

/// Appends `v` as a JSON number.
fn uint(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn flag(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it: `"` and `\`, and the
/// control characters below U+0020 (`\b \t \n \f \r` by their short forms, the rest as
/// `\u00XX`); everything else as is.
fn text(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0x00..=0x1F => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `v` through `serde_json`.
fn serde(out: &mut Vec<u8>, v: &impl Serialize) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, v)
}

/// Appends `null`, or the array of `items`.
fn list<T: WriteJson>(out: &mut Vec<u8>, items: Option<&[T]>) -> serde_json::Result<()> {
    let Some(items) = items else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    out.push(b'[');
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        item.write_json(out)?;
    }
    out.push(b']');
    Ok(())
}

impl WriteJson for Message {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"sender_uid\":");
        uint(out, self.sender_uid);
        out.extend_from_slice(b",\"receiver_type\":");
        uint(out, self.receiver_type);
        out.extend_from_slice(b",\"receiver_id\":");
        uint(out, self.receiver_id);
        out.extend_from_slice(b",\"msg_type\":");
        uint(out, self.msg_type);
        out.extend_from_slice(b",\"content\":");
        text(out, &self.content);
        out.extend_from_slice(b",\"msg_seqno\":");
        uint(out, self.msg_seqno);
        out.extend_from_slice(b",\"timestamp\":");
        uint(out, self.timestamp);
        out.extend_from_slice(b",\"at_uids\":");
        match &self.at_uids {
            None => out.extend_from_slice(b"null"),
            Some(uids) => {
                out.push(b'[');
                for (k, uid) in uids.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    uint(out, *uid);
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(b",\"msg_key\":");
        uint(out, self.msg_key);
        out.extend_from_slice(b",\"msg_status\":");
        uint(out, self.msg_status);
        if let Some(cancel) = self.sys_cancel {
            out.extend_from_slice(b",\"sys_cancel\":");
            flag(out, cancel);
        }
        out.extend_from_slice(b",\"notify_code\":");
        text(out, &self.notify_code);
        if let Some(v) = self.new_face_version {
            out.extend_from_slice(b",\"new_face_version\":");
            uint(out, v);
        }
        out.extend_from_slice(b",\"msg_source\":");
        uint(out, self.msg_source);
        out.push(b'}');
        Ok(())
    }
}

impl WriteJson for AccountInfo {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"name\":");
        text(out, &self.name);
        out.extend_from_slice(b",\"pic_url\":");
        text(out, &self.pic_url);
        out.push(b'}');
        Ok(())
    }
}

impl WriteJson for Session {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"talker_id\":");
        uint(out, self.talker_id);
        out.extend_from_slice(b",\"session_type\":");
        uint(out, self.session_type);
        out.extend_from_slice(b",\"at_seqno\":");
        uint(out, self.at_seqno);
        out.extend_from_slice(b",\"top_ts\":");
        uint(out, self.top_ts);
        out.extend_from_slice(b",\"group_name\":");
        text(out, &self.group_name);
        out.extend_from_slice(b",\"group_cover\":");
        text(out, &self.group_cover);
        out.extend_from_slice(b",\"is_follow\":");
        uint(out, self.is_follow);
        out.extend_from_slice(b",\"is_dnd\":");
        uint(out, self.is_dnd);
        out.extend_from_slice(b",\"ack_seqno\":");
        uint(out, self.ack_seqno);
        out.extend_from_slice(b",\"ack_ts\":");
        uint(out, self.ack_ts);
        out.extend_from_slice(b",\"session_ts\":");
        uint(out, self.session_ts);
        out.extend_from_slice(b",\"unread_count\":");
        uint(out, self.unread_count);
        out.extend_from_slice(b",\"last_msg\":");
        match &self.last_msg {
            None => out.extend_from_slice(b"null"),
            Some(m) => m.write_json(out)?,
        }
        out.extend_from_slice(b",\"group_type\":");
        uint(out, self.group_type);
        out.extend_from_slice(b",\"can_fold\":");
        uint(out, self.can_fold);
        out.extend_from_slice(b",\"status\":");
        uint(out, self.status);
        out.extend_from_slice(b",\"max_seqno\":");
        uint(out, self.max_seqno);
        out.extend_from_slice(b",\"new_push_msg\":");
        uint(out, self.new_push_msg);
        out.extend_from_slice(b",\"setting\":");
        uint(out, self.setting);
        out.extend_from_slice(b",\"is_guardian\":");
        uint(out, self.is_guardian);
        out.extend_from_slice(b",\"is_intercept\":");
        uint(out, self.is_intercept);
        out.extend_from_slice(b",\"is_trust\":");
        uint(out, self.is_trust);
        out.extend_from_slice(b",\"system_msg_type\":");
        uint(out, self.system_msg_type);
        if let Some(info) = &self.account_info {
            out.extend_from_slice(b",\"account_info\":");
            info.write_json(out)?;
        }
        out.extend_from_slice(b",\"live_status\":");
        uint(out, self.live_status);
        out.extend_from_slice(b",\"biz_msg_unread_count\":");
        uint(out, self.biz_msg_unread_count);
        out.extend_from_slice(b",\"user_label\":");
        match &self.user_label {
            None => out.extend_from_slice(b"null"),
            Some(v) => serde(out, v)?,
        }
        out.push(b'}');
        Ok(())
    }
}

impl WriteJson for MessagePage {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"messages\":");
        list(out, self.messages.as_deref())?;
        out.extend_from_slice(b",\"has_more\":");
        uint(out, self.has_more);
        out.extend_from_slice(b",\"min_seqno\":");
        uint(out, self.min_seqno);
        out.extend_from_slice(b",\"max_seqno\":");
        uint(out, self.max_seqno);
        if let Some(infos) = &self.e_infos {
            out.extend_from_slice(b",\"e_infos\":");
            serde(out, infos)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl WriteJson for SessionList {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"session_list\":");
        list(out, self.session_list.as_deref())?;
        out.extend_from_slice(b",\"has_more\":");
        uint(out, self.has_more);
        out.extend_from_slice(b",\"anti_disturb_cleaning\":");
        flag(out, self.anti_disturb_cleaning);
        out.extend_from_slice(b",\"is_address_list_empty\":");
        uint(out, self.is_address_list_empty);
        if let Some(map) = &self.system_msg {
            out.extend_from_slice(b",\"system_msg\":");
            serde(out, map)?;
        }
        out.extend_from_slice(b",\"show_level\":");
        flag(out, self.show_level);
        out.push(b'}');
        Ok(())
    }
}

impl<T: WriteJson> WriteJson for Envelope<T> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"code\":");
        uint(out, self.code);
        if let Some(msg) = &self.msg {
            out.extend_from_slice(b",\"msg\":");
            text(out, msg);
        }
        out.extend_from_slice(b",\"message\":");
        text(out, &self.message);
        if let Some(ttl) = self.ttl {
            out.extend_from_slice(b",\"ttl\":");
            uint(out, ttl);
        }
        match &self.data {
            Data::Absent => {}
            Data::Null => out.extend_from_slice(b",\"data\":null"),
            Data::Value(v) => {
                out.extend_from_slice(b",\"data\":");
                v.write_json(out)?;
            }
        }
        out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emoji::EmojiInfo;

    /// The direct JSON of `v` against `serde_json`'s, byte for byte.
    fn same<T: WriteJson + Serialize>(v: &T) {
        let mut direct = Vec::new();
        v.write_json(&mut direct).unwrap();
        let serde = serde_json::to_vec(v).unwrap();
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(serde).unwrap()
        );
    }

    /// Every character below U+0080, the escaped ones included, and some beyond.
    fn every_kind_of_text() -> String {
        let mut s: String = (0u8..0x80).map(char::from).collect();
        s.push_str("私信 ✓ 😀 \u{2028}\u{7f}\\\"/");
        s
    }

    fn message(k: u64) -> Message {
        Message {
            sender_uid: u64::MAX - k,
            receiver_type: 2,
            receiver_id: k,
            msg_type: 18,
            content: format!(
                "{{\"content\":\"{}\"}}",
                every_kind_of_text().escape_default()
            ),
            msg_seqno: k,
            timestamp: -1_700_000_000 - k as i64,
            at_uids: if k % 2 == 0 {
                None
            } else {
                Some(vec![1, u64::MAX, 0])
            },
            msg_key: 7_530_020_035_980_968_384 + k,
            msg_status: 1,
            sys_cancel: match k % 3 {
                0 => None,
                1 => Some(true),
                _ => Some(false),
            },
            notify_code: every_kind_of_text(),
            new_face_version: if k % 2 == 0 { Some(1) } else { None },
            msg_source: u32::MAX,
        }
    }

    fn session(k: u64) -> Session {
        Session {
            talker_id: k,
            session_type: 1,
            at_seqno: 3,
            top_ts: i64::MIN,
            group_name: every_kind_of_text(),
            group_cover: String::new(),
            is_follow: 1,
            is_dnd: 0,
            ack_seqno: 9,
            ack_ts: i64::MAX,
            session_ts: 1_795_296_678_682_000,
            unread_count: 12,
            last_msg: if k % 2 == 0 { Some(message(k)) } else { None },
            group_type: 0,
            can_fold: 1,
            status: 0,
            max_seqno: u64::MAX,
            new_push_msg: 1,
            setting: 0,
            is_guardian: 0,
            is_intercept: 1,
            is_trust: 0,
            system_msg_type: 5,
            account_info: if k % 3 == 0 {
                Some(AccountInfo {
                    name: "系统通知\n".into(),
                    pic_url: "https://i0.hdslb.com/a.png".into(),
                })
            } else {
                None
            },
            live_status: 0,
            biz_msg_unread_count: 7,
            user_label: if k % 2 == 0 {
                None
            } else {
                Some(serde_json::json!({"label": {"text": "粉丝\u{1}", "n": [1.5, -2, null]}}))
            },
        }
    }

    #[test]
    fn messages_and_sessions_write_what_serde_writes() {
        for k in 0..6 {
            same(&message(k));
            same(&session(k));
        }
    }

    #[test]
    fn pages_and_envelopes_write_what_serde_writes() {
        let page = MessagePage {
            messages: Some((0..4).map(message).collect()),
            has_more: 1,
            min_seqno: 0,
            max_seqno: u64::MAX,
            e_infos: Some(vec![EmojiInfo {
                text: "[微笑]".into(),
                url: "https://i0.hdslb.com/bfs/emote/x.png".into(),
                size: 1,
                gif_url: None,
            }]),
        };
        same(&page);
        same(&Envelope::ok(page.clone()));
        let empty = MessagePage {
            messages: None,
            has_more: 0,
            min_seqno: u64::MAX,
            max_seqno: 0,
            e_infos: None,
        };
        same(&Envelope::ok(empty));
        let list = SessionList {
            session_list: Some((0..6).map(session).collect()),
            has_more: 1,
            anti_disturb_cleaning: false,
            is_address_list_empty: 0,
            system_msg: Some([("5".to_string(), 844424930131966)].into()),
            show_level: true,
        };
        same(&list);
        same(&Envelope::ok(list));
        let none = SessionList {
            session_list: None,
            has_more: 0,
            anti_disturb_cleaning: true,
            is_address_list_empty: 1,
            system_msg: None,
            show_level: false,
        };
        same(&Envelope::ok(none.clone()));
        let mut null_data = Envelope::ok(none.clone());
        null_data.data = Data::Null;
        null_data.msg = None;
        null_data.ttl = None;
        same(&null_data);
        let mut absent = Envelope::ok(none);
        absent.data = Data::Absent;
        absent.code = -101;
        absent.message = "账号未登录".into();
        same(&absent);
    }
}
