//! Every JSON example of the upstream documentation deserializes into sixin's wire types and
//! serializes back to the same JSON value: no field and no digit lost.

use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use sixin_proto::content::Content;
use sixin_proto::json::WriteJson;
use sixin_proto::*;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/upstream-examples")
}

fn read(name: &str) -> String {
    let text = std::fs::read_to_string(examples_dir().join(name)).expect(name);
    if name == "response-fetch_session_msgs.json" {
        // The published example has a trailing comma after the last message (see INDEX.md).
        let fixed = text.replacen("\n\n      },\n    ],", "\n\n      }\n    ],", 1);
        assert_ne!(
            fixed, text,
            "the known trailing comma is gone; update this fix-up"
        );
        return fixed;
    }
    text
}

fn round_trip<T: DeserializeOwned + Serialize>(name: &str) {
    let text = read(name);
    let original: Value = serde_json::from_str(&text).expect(name);
    let typed: Envelope<T> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back, original, "{name} lost something in a round trip");
}

/// The JSON sixin writes directly for pages of messages and sessions (`sixin_proto::json`) is
/// what serde writes, byte for byte, for the documented examples.
fn direct_json_is_serdes<T: DeserializeOwned + Serialize + WriteJson>(name: &str) {
    let typed: Envelope<T> = serde_json::from_str(&read(name)).unwrap();
    let mut direct = Vec::new();
    typed.write_json(&mut direct).unwrap();
    let serde = serde_json::to_vec(&typed).unwrap();
    assert_eq!(
        String::from_utf8(direct).unwrap(),
        String::from_utf8(serde).unwrap(),
        "{name}"
    );
}

#[test]
fn direct_json_of_documented_pages() {
    direct_json_is_serdes::<SessionList>("response-get_sessions.json");
    direct_json_is_serdes::<SessionList>("response-new_sessions.json");
    direct_json_is_serdes::<Session>("response-session_detail.json");
    direct_json_is_serdes::<MessagePage>("response-fetch_session_msgs.json");
}

#[test]
fn responses_round_trip() {
    round_trip::<SingleUnread>("response-single_unread.json");
    round_trip::<GroupUnread>("response-my_group_unread.json");
    round_trip::<SessionList>("response-get_sessions.json");
    round_trip::<SessionList>("response-new_sessions.json");
    round_trip::<Session>("response-session_detail.json");
    round_trip::<IsLimit>("response-is_limit.json");
    round_trip::<MsgDnd>("response-get_msg_dnd.json");
    round_trip::<SessionSettings>("response-get_session_ss.json");
    for f in [
        "response-update_ack.json",
        "response-remove_session.json",
        "response-set_top.json",
        "response-set_msg_dnd.json",
        "response-set_push_ss.json",
        "response-update_intercept.json",
        "response-batch_update_dustbin_ack.json",
        "response-batch_rm_dustbin.json",
    ] {
        round_trip::<Empty>(f);
    }
    round_trip::<MessagePage>("response-fetch_session_msgs.json");
    round_trip::<InfoWeb>("response-infoweb.json");
    round_trip::<SendResult>("response-send_msg-1.json");
    round_trip::<SendResult>("response-send_msg-2.json");
    round_trip::<SendResult>("response-send_msg-3.json");
}

#[test]
fn every_response_file_is_covered() {
    let covered = 21;
    let n = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with("response-")
        })
        .count();
    assert_eq!(
        n, covered,
        "a new response example needs a round trip above"
    );
}

#[test]
fn big_numbers_are_exact() {
    let page: Envelope<MessagePage> =
        serde_json::from_str(&read("response-fetch_session_msgs.json")).unwrap();
    let page = page.data.into_option().unwrap();
    let msgs = page.messages.unwrap();
    assert_eq!(msgs[0].msg_key, 7104537732714964358);
    assert_eq!(msgs[1].msg_key, 7104186240789226795);
    let empty = MessagePage {
        messages: None,
        has_more: 0,
        min_seqno: EMPTY_MIN_SEQNO,
        max_seqno: 0,
        e_infos: None,
    };
    let text = serde_json::to_string(&empty).unwrap();
    assert!(
        text.contains("\"min_seqno\":18446744073709551615"),
        "{text}"
    );
}

#[test]
fn contents_round_trip() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(t) = name
            .strip_prefix("content-msg_type-")
            .and_then(|s| s.strip_suffix(".json"))
        else {
            continue;
        };
        let msg_type: u32 = t.parse().unwrap();
        let text = read(&name);
        let original: Value = serde_json::from_str(&text).unwrap();
        let parsed = Content::parse(msg_type, &text).unwrap_or_else(|| panic!("{name}"));
        assert!(
            !matches!(parsed, Content::Other(_)),
            "{name} did not parse as its own type"
        );
        let back: Value = serde_json::from_str(&parsed.to_json()).unwrap();
        assert_eq!(back, original, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 14);
}
