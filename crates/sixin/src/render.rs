//! Turning messages into readable text and HTML.

use serde_json::Value;
use sixin_proto::content::{self, Content};

/// `2026-11-21 22:50:11Z` from Unix seconds (UTC).
pub fn format_ts(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Columns a character takes in a terminal: 2 for East Asian wide and full-width characters
/// and emoji, 0 for combining marks, 1 otherwise.
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Terminal columns a string takes.
pub fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// `s` padded with spaces to `width` terminal columns (left-aligned; longer strings as they are).
pub fn pad(s: &str, width: usize) -> String {
    let w = display_width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// A one-line rendering of a message's content.
pub fn render_content(msg_type: u32, content: &str, msg_status: u32) -> String {
    let body = match Content::parse(msg_type, content) {
        Some(Content::Text(t)) => t.content,
        Some(Content::Image(i)) => format!("[图片] {}", i.url),
        Some(Content::Recall(k)) => format!("[撤回了一条消息 {k}]"),
        Some(Content::Share(s)) => {
            let link = s
                .bvid
                .map(|b| format!(" https://www.bilibili.com/video/{b}"))
                .unwrap_or_default();
            format!("[分享] {}{link}", s.title)
        }
        Some(Content::Notification(n)) => {
            let jump = if n.jump_uri.is_empty() {
                String::new()
            } else {
                format!(" → {}", n.jump_uri)
            };
            format!("[通知] {}: {}{jump}", n.title, n.text)
        }
        Some(Content::VideoPush(v)) => {
            let link = v
                .bvid
                .map(|b| format!(" https://www.bilibili.com/video/{b}"))
                .unwrap_or_default();
            format!("[视频] {}{link}", v.title)
        }
        Some(Content::ArticlePush(a)) => format!(
            "[专栏] {} https://www.bilibili.com/read/cv{}",
            a.title, a.rid
        ),
        Some(Content::ImageCard(c)) => format!("[卡片] {} {}", c.title, c.jump_url),
        Some(Content::Link(l)) => format!("[链接] {}", l.title),
        Some(Content::FollowCards(f)) => format!("[关注推送] {}", f.reply_content),
        Some(Content::SystemTip(t)) => {
            let items = t.items().unwrap_or_default();
            let text: Vec<String> = items.into_iter().map(|i| i.text).collect();
            format!("[系统提示] {}", text.join(""))
        }
        Some(Content::Group(g)) => format!("[群消息] {}", g.content),
        Some(Content::Other(v)) => format!("[类型 {msg_type}] {v}"),
        None => format!("[类型 {msg_type}] {content}"),
    };
    if msg_status == 1 && msg_type != content::RECALL {
        format!("{body} (已撤回)")
    } else {
        body
    }
}

/// A message as one line: time, sender, content.
pub fn render_line(m: &Value, name_of: &dyn Fn(u64) -> String) -> String {
    let ts = m["timestamp"].as_i64().unwrap_or(0);
    let sender = m["sender_uid"].as_u64().unwrap_or(0);
    let who = if sender == 0 {
        "系统".to_string()
    } else {
        name_of(sender)
    };
    format!(
        "[{}] #{} {}: {}",
        format_ts(ts),
        m["msg_seqno"].as_u64().unwrap_or(0),
        who,
        render_content(
            m["msg_type"].as_u64().unwrap_or(0) as u32,
            m["content"].as_str().unwrap_or(""),
            m["msg_status"].as_u64().unwrap_or(0) as u32
        )
    )
}

pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A self-contained HTML transcript (inline style, no scripts, no external resources but the
/// images the messages point at).
pub fn html_transcript(
    title: &str,
    me: u64,
    messages: &[Value],
    name_of: &dyn Fn(u64) -> String,
) -> String {
    let mut body = String::new();
    for m in messages {
        let sender = m["sender_uid"].as_u64().unwrap_or(0);
        let msg_type = m["msg_type"].as_u64().unwrap_or(0) as u32;
        let content = m["content"].as_str().unwrap_or("");
        let status = m["msg_status"].as_u64().unwrap_or(0) as u32;
        let class = if sender == me {
            "msg me"
        } else if sender == 0 {
            "msg sys"
        } else {
            "msg"
        };
        let inner = match Content::parse(msg_type, content) {
            Some(Content::Image(i)) if i.url.starts_with("http") => format!(
                "<a href=\"{0}\"><img src=\"{0}\" alt=\"图片\" loading=\"lazy\"></a>{1}",
                escape_html(&i.url),
                if status == 1 { " (已撤回)" } else { "" }
            ),
            _ => escape_html(&render_content(msg_type, content, status)).replace('\n', "<br>"),
        };
        body.push_str(&format!(
            "<div class=\"{class}\"><div class=\"meta\">{} · {} · #{}</div><div class=\"body\">{inner}</div></div>\n",
            escape_html(&if sender == 0 { "系统".into() } else { name_of(sender) }),
            format_ts(m["timestamp"].as_i64().unwrap_or(0)),
            m["msg_seqno"].as_u64().unwrap_or(0),
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
body{{font-family:sans-serif;background:#f4f5f7;max-width:760px;margin:2em auto;color:#18191c}}\
.msg{{background:#fff;border-radius:8px;padding:.5em .8em;margin:.5em 0;max-width:80%}}\
.msg.me{{background:#e0f1ff;margin-left:auto}}.msg.sys{{background:none;color:#9499a0;text-align:center;max-width:100%}}\
.meta{{font-size:.75em;color:#9499a0}}img{{max-width:100%}}</style></head>\n<body><h1>{t}</h1>\n<p>{n} 条消息</p>\n{body}</body></html>\n",
        t = escape_html(title),
        n = messages.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_ts(1626181379), "2021-07-13 13:02:59Z");
        assert_eq!(format_ts(951782400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn contents() {
        assert_eq!(
            render_content(1, "{\"content\":\"hi[doge]\"}", 0),
            "hi[doge]"
        );
        assert_eq!(render_content(1, "{\"content\":\"hi\"}", 1), "hi (已撤回)");
        assert_eq!(
            render_content(2, "{\"url\":\"https://i0.hdslb.com/a.png\"}", 0),
            "[图片] https://i0.hdslb.com/a.png"
        );
        assert_eq!(
            render_content(5, "7345551441311046575", 0),
            "[撤回了一条消息 7345551441311046575]"
        );
        assert_eq!(
            render_content(18, "{\"content\":\"[{\\\"text\\\":\\\"对方主动回复或关注你前，最多发送1条消息\\\",\\\"color_day\\\":\\\"#9499A0\\\",\\\"color_nig\\\":\\\"#9499A0\\\"}]\"}", 0),
            "[系统提示] 对方主动回复或关注你前，最多发送1条消息"
        );
        assert_eq!(
            render_content(
                10,
                "{\"title\":\"T\",\"text\":\"X\",\"jump_uri\":\"https://b\"}",
                0
            ),
            "[通知] T: X → https://b"
        );
        assert_eq!(
            render_content(11, "{\"title\":\"V\",\"bvid\":\"BV1\",\"rid\":1}", 0),
            "[视频] V https://www.bilibili.com/video/BV1"
        );
        assert_eq!(
            escape_html("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(display_width("UP主小助手(1)"), 13);
        assert_eq!(pad("bob", 5), "bob  ");
        assert_eq!(pad("小助手", 7), "小助手 ");
        assert_eq!(pad("toolong", 3), "toolong");
    }
}
