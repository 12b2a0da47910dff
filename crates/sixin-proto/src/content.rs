//! Content objects (`content` of a message is the JSON text of one of these).
//!
//! Each struct names the fields sixin reads and keeps every other field in `extra`, so a content
//! text parsed and written back loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const TEXT: u32 = 1;
pub const IMAGE: u32 = 2;
pub const RECALL: u32 = 5;
pub const CUSTOM_EMOJI: u32 = 6;
pub const SHARE: u32 = 7;
pub const MINI_APP: u32 = 9;
pub const NOTIFICATION: u32 = 10;
pub const VIDEO_PUSH: u32 = 11;
pub const ARTICLE_PUSH: u32 = 12;
pub const IMAGE_CARD: u32 = 13;
pub const OTHER_SHARE: u32 = 14;
pub const FOLLOW_CARDS: u32 = 16;
pub const SYSTEM_TIP: u32 = 18;
pub const AI: u32 = 19;

/// msg_type 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub content: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 2 (and 6, custom emoji).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u64>,
    #[serde(rename = "imageType", default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<u8>,
    /// Kilobytes, fractional upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 5: the content is the target `msg_key`, as a bare number or a numeric string.
pub fn parse_recall_target(content: &str) -> Option<u64> {
    let t = content.trim();
    if let Some(k) = crate::params::parse_u64(t) {
        return Some(k);
    }
    match serde_json::from_str::<Value>(t).ok()? {
        Value::String(s) => crate::params::parse_u64(&s),
        // Some clients wrap it like a text message.
        Value::Object(o) => match o.get("content")? {
            Value::String(s) => crate::params::parse_u64(s),
            Value::Number(n) => n.as_u64(),
            _ => None,
        },
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// One line of a system tip (msg_type 18).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TipItem {
    pub text: String,
    pub color_day: String,
    pub color_nig: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_url: Option<String>,
}

/// msg_type 18: `content` is itself the JSON text of an array of [`TipItem`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemTip {
    pub content: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SystemTip {
    pub fn items(&self) -> Result<Vec<TipItem>, serde_json::Error> {
        serde_json::from_str(&self.content)
    }
    pub fn from_items(items: &[TipItem]) -> SystemTip {
        SystemTip {
            content: serde_json::to_string(items).unwrap_or_default(),
            extra: Map::new(),
        }
    }
}

/// msg_types 301–306: fan-group system messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSystem {
    pub group_id: u64,
    pub content: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 7: a shared video, article, etc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub headline: String,
    #[serde(default)]
    pub id: Value,
    #[serde(default)]
    pub source: Value,
    #[serde(default)]
    pub thumb: String,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bvid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 10: notification card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub jump_text: String,
    #[serde(default)]
    pub jump_uri: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 11: video push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoPush {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub cover: String,
    #[serde(default)]
    pub rid: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bvid: Option<String>,
    #[serde(default)]
    pub desc: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 12: article push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticlePush {
    #[serde(default)]
    pub rid: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub author: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 13: image card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageCard {
    #[serde(default)]
    pub pic_url: String,
    #[serde(default)]
    pub jump_url: String,
    #[serde(default)]
    pub title: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_types 9 (mini app) and 14 (other share): a titled link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkCard {
    #[serde(default)]
    pub title: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// msg_type 16: the cards pushed when someone follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowCards {
    #[serde(default)]
    pub main_title: String,
    #[serde(default)]
    pub reply_content: String,
    #[serde(default)]
    pub sub_cards: Vec<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A content object of any type.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(Text),
    Image(Image),
    Recall(u64),
    Share(Share),
    Notification(Notification),
    VideoPush(VideoPush),
    ArticlePush(ArticlePush),
    ImageCard(ImageCard),
    Link(LinkCard),
    FollowCards(FollowCards),
    SystemTip(SystemTip),
    Group(GroupSystem),
    /// Types sixin does not model (or content that does not match its type), kept as JSON.
    Other(Value),
}

impl Content {
    /// Parses `content` as the object of `msg_type`. Content that does not fit its type is
    /// returned as [`Content::Other`] (or `None` when it is not JSON at all).
    pub fn parse(msg_type: u32, content: &str) -> Option<Content> {
        fn as_<T: for<'de> Deserialize<'de>>(s: &str) -> Option<T> {
            serde_json::from_str(s).ok()
        }
        let typed = match msg_type {
            TEXT | AI => as_(content).map(Content::Text),
            IMAGE | CUSTOM_EMOJI => as_(content).map(Content::Image),
            RECALL => parse_recall_target(content).map(Content::Recall),
            SHARE => as_(content).map(Content::Share),
            NOTIFICATION => as_(content).map(Content::Notification),
            VIDEO_PUSH => as_(content).map(Content::VideoPush),
            ARTICLE_PUSH => as_(content).map(Content::ArticlePush),
            IMAGE_CARD => as_(content).map(Content::ImageCard),
            MINI_APP | OTHER_SHARE => as_(content).map(Content::Link),
            FOLLOW_CARDS => as_(content).map(Content::FollowCards),
            SYSTEM_TIP => as_(content).map(Content::SystemTip),
            301..=306 => as_(content).map(Content::Group),
            _ => None,
        };
        typed.or_else(|| as_::<Value>(content).map(Content::Other))
    }

    /// The content text of this object.
    pub fn to_json(&self) -> String {
        let r = match self {
            Content::Text(v) => serde_json::to_string(v),
            Content::Image(v) => serde_json::to_string(v),
            Content::Recall(k) => Ok(k.to_string()),
            Content::Share(v) => serde_json::to_string(v),
            Content::Notification(v) => serde_json::to_string(v),
            Content::VideoPush(v) => serde_json::to_string(v),
            Content::ArticlePush(v) => serde_json::to_string(v),
            Content::ImageCard(v) => serde_json::to_string(v),
            Content::Link(v) => serde_json::to_string(v),
            Content::FollowCards(v) => serde_json::to_string(v),
            Content::SystemTip(v) => serde_json::to_string(v),
            Content::Group(v) => serde_json::to_string(v),
            Content::Other(v) => serde_json::to_string(v),
        };
        r.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_targets() {
        assert_eq!(
            parse_recall_target("7345551441311046575"),
            Some(7345551441311046575)
        );
        assert_eq!(parse_recall_target("\"42\""), Some(42));
        assert_eq!(parse_recall_target("{\"content\":\"1\"}"), Some(1));
        assert_eq!(parse_recall_target("abc"), None);
        assert_eq!(parse_recall_target("-1"), None);
        assert_eq!(parse_recall_target("+5"), None);
        assert_eq!(parse_recall_target("\"+5\""), None);
        assert_eq!(parse_recall_target("18446744073709551616"), None);
    }

    #[test]
    fn tip_items_round_trip() {
        let items = vec![TipItem {
            text: "x".into(),
            color_day: "#9499A0".into(),
            color_nig: "#9499A0".into(),
            jump_url: None,
        }];
        let tip = SystemTip::from_items(&items);
        assert_eq!(tip.items().unwrap(), items);
    }
}
