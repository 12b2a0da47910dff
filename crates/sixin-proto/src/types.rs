//! Message and session objects and the `data` payloads of each endpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::emoji::EmojiInfo;

/// `min_seqno` of an empty history page.
pub const EMPTY_MIN_SEQNO: u64 = u64::MAX;

/// One message (私信主体对象).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub sender_uid: u64,
    pub receiver_type: u8,
    pub receiver_id: u64,
    pub msg_type: u32,
    /// The JSON text of the content object, exactly as stored.
    pub content: String,
    pub msg_seqno: u64,
    pub timestamp: i64,
    pub at_uids: Option<Vec<u64>>,
    pub msg_key: u64,
    pub msg_status: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys_cancel: Option<bool>,
    pub notify_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_face_version: Option<u8>,
    pub msg_source: u32,
}

/// `account_info` of a system account's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub name: String,
    pub pic_url: String,
}

/// One user's view of one conversation (会话对象).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub talker_id: u64,
    pub session_type: u8,
    pub at_seqno: u64,
    pub top_ts: i64,
    pub group_name: String,
    pub group_cover: String,
    pub is_follow: u8,
    pub is_dnd: u8,
    pub ack_seqno: u64,
    pub ack_ts: i64,
    pub session_ts: i64,
    pub unread_count: u64,
    pub last_msg: Option<Message>,
    pub group_type: u8,
    pub can_fold: u8,
    pub status: u8,
    pub max_seqno: u64,
    pub new_push_msg: u8,
    pub setting: u8,
    pub is_guardian: u8,
    pub is_intercept: u8,
    pub is_trust: u8,
    pub system_msg_type: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_info: Option<AccountInfo>,
    pub live_status: u8,
    pub biz_msg_unread_count: u64,
    pub user_label: Option<serde_json::Value>,
}

/// `data` of `single_unread`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleUnread {
    pub unfollow_unread: u64,
    pub follow_unread: u64,
    pub unfollow_push_msg: u64,
    pub dustbin_push_msg: u64,
    pub dustbin_unread: u64,
    pub biz_msg_unfollow_unread: u64,
    pub biz_msg_follow_unread: u64,
    pub custom_unread: u64,
}

/// `data` of `my_group_unread`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupUnread {
    pub unread_count: u64,
}

/// `data` of `get_sessions` and `new_sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    pub session_list: Option<Vec<Session>>,
    pub has_more: u8,
    pub anti_disturb_cleaning: bool,
    pub is_address_list_empty: u8,
    /// `{"<system_msg_type>": mid}`, only when system sessions exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_msg: Option<BTreeMap<String, u64>>,
    pub show_level: bool,
}

/// `data` of `fetch_session_msgs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Option<Vec<Message>>,
    pub has_more: u8,
    pub min_seqno: u64,
    pub max_seqno: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_infos: Option<Vec<EmojiInfo>>,
}

/// `key_hit_infos` of a send answer: `{}` when no rule matched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyHitInfos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toast: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_text: Option<Vec<serde_json::Value>>,
}

/// `data` of `send_msg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResult {
    pub msg_key: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_infos: Option<Vec<EmojiInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hit_infos: Option<KeyHitInfos>,
}

/// `data: {}` of the write endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `data` of `is_limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsLimit {
    pub is_limit: u8,
    pub report_limit: u8,
}

/// One `{id, setting}` of `get_msg_dnd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DndSetting {
    pub id: u64,
    pub setting: u8,
}

/// `data` of `get_msg_dnd`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgDnd {
    pub uid_settings: Vec<DndSetting>,
    pub group_settings: Vec<DndSetting>,
}

/// `data` of `get_session_ss`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    pub follow_status: u32,
    pub special: u8,
    pub push_setting: u8,
    pub show_push_setting: u8,
}

/// `wbi_img` of `nav`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WbiImg {
    pub img_url: String,
    pub sub_url: String,
}

/// `level_info` of `nav`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelInfo {
    pub current_level: u8,
    pub current_min: u64,
    pub current_exp: u64,
    pub next_exp: serde_json::Value,
}

/// `data` of `/x/web-interface/nav`. Logged out, only `isLogin` and `wbi_img` are present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nav {
    #[serde(rename = "isLogin")]
    pub is_login: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_info: Option<LevelInfo>,
    pub wbi_img: WbiImg,
}

/// `data` of `/x/space/myinfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MyInfo {
    pub mid: u64,
    pub name: String,
    pub sex: String,
    pub face: String,
    pub sign: String,
    pub rank: u32,
    pub level: u8,
    pub jointime: i64,
    pub moral: u32,
    pub silence: u8,
    pub email_status: u8,
    pub tel_status: u8,
    pub identification: u8,
    pub birthday: i64,
    pub is_tourist: u8,
    pub is_fake_account: u8,
    pub pin_prompting: u8,
    pub is_deleted: u8,
    pub coins: f64,
    pub following: u64,
    pub follower: u64,
}

/// One entry of `/account/v1/user/cards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCard {
    pub mid: u64,
    pub name: String,
    pub face: String,
    pub sign: String,
    pub rank: u32,
    pub level: u8,
    pub silence: u8,
}

/// `vip` of `/x/im/user_infos`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipInfo {
    #[serde(rename = "type")]
    pub vip_type: u8,
    pub status: u8,
}

/// One entry of `/x/im/user_infos`: a card plus vip, pendant and official.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImUserInfo {
    #[serde(flatten)]
    pub card: UserCard,
    pub vip: VipInfo,
    pub pendant: serde_json::Value,
    pub official: serde_json::Value,
}

/// `data` of `/x/im/feed/infoweb` (kept as JSON values: sixin does not serve video data).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InfoWeb {
    #[serde(default)]
    pub archive: Vec<serde_json::Value>,
    #[serde(default)]
    pub article: Vec<serde_json::Value>,
    #[serde(default)]
    pub pgc: Vec<serde_json::Value>,
}

/// `old_up_assistant_door` of `get_sys_setting`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldUpAssistantDoor {
    pub show_old_up_door: u8,
    pub title: String,
    pub sub_title: String,
}

/// `data` of `get_sys_setting`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SysSetting {
    pub is_create_group_available: u8,
    pub is_auto_reply_available: u8,
    pub vc_hint_title: String,
    pub vc_hint_title_button: String,
    pub vc_hint_detail: String,
    pub vc_hint_detail_button: String,
    pub auto_reply_html: String,
    pub is_receive_unfollow_wl: u8,
    pub is_voyage: u8,
    pub is_auto_reply_recommend_available: u8,
    pub is_discuss_style_im_page: u8,
    pub discuss_unread_style_im_page: u8,
    pub old_up_assistant_door: OldUpAssistantDoor,
    pub is_new_up_assistant_effective: u8,
    pub is_archive_gray: bool,
    pub session_cfg: BTreeMap<String, serde_json::Value>,
    pub migrate_session_api: bool,
    pub game_msg: serde_json::Map<String, serde_json::Value>,
    pub auto_reply_msg_desc: String,
    pub huahuo_group_icon_new: String,
    pub huahuo_group_icon_dark_new: String,
    pub im_disabled_input_hint: String,
}
