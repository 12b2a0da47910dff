//! The client commands: read and write private messages as a user, against the official
//! service or a sixin server.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;
use sixin_client::proto::Session;
use sixin_client::{Client, Credentials, Direction, OutgoingMessage, SessionsQuery, UnreadQuery};

use crate::render::{format_ts, html_transcript, render_line};

/// Options of every client command.
#[derive(Args, Clone, Debug)]
pub struct ClientOpts {
    /// A sixin server (one base URL); default: the official hosts.
    #[arg(long, global = true, env = "SIXIN_SERVER")]
    pub server: Option<String>,
    /// A Netscape cookies.txt with SESSDATA, bili_jct and DedeUserID; default: the
    /// SESSDATA, bili_jct and DedeUserID environment variables.
    #[arg(long, global = true)]
    pub cookies: Option<PathBuf>,
    /// Print JSON instead of text (one object per line).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Unread counts.
    Unread,
    /// The session list as a table.
    Sessions {
        /// session_type: 1 users, 2 unfollowed, 3 groups, 4 all, 5 intercepted, 7 system, 8
        /// strangers, 9 followed.
        #[arg(long, default_value_t = 4)]
        r#type: u8,
        #[arg(long, default_value_t = 20)]
        size: u32,
    },
    /// A conversation's whole history, oldest first.
    History {
        talker: u64,
        /// TALKER is a fan group.
        #[arg(long)]
        group: bool,
        /// Only the newest N messages.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Send a text (or an image with --image).
    Send {
        talker: u64,
        text: Option<String>,
        #[arg(long)]
        image: Option<String>,
        #[arg(long)]
        group: bool,
    },
    /// Recall one of your messages (within the recall window).
    Recall {
        msg_key: u64,
        /// The conversation; found among recent sessions when omitted.
        #[arg(long)]
        talker: Option<u64>,
    },
    /// Mark a conversation read.
    Read {
        talker: u64,
        #[arg(long)]
        group: bool,
    },
    /// Print new messages as they arrive.
    Watch {
        /// Seconds between polls (default: 5 towards the official hosts, 1 towards a server).
        #[arg(long)]
        interval: Option<f64>,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        duration: Option<f64>,
        /// Poll even when the server streams new messages (a sixin server's
        /// `/sixin/v1/events`, followed by default).
        #[arg(long)]
        poll: bool,
    },
    /// Export conversations to JSON Lines and HTML, incrementally.
    Export {
        /// User talkers to export (use g:ID for a fan group).
        talkers: Vec<String>,
        /// Every conversation in the session list.
        #[arg(long)]
        all: bool,
        /// The directory for the files: <user|group>-ID.jsonl (one message a line, as received)
        /// and <user|group>-ID.html; created if missing. A re-run appends only what is new.
        #[arg(long)]
        out: PathBuf,
    },
}

fn client(opts: &ClientOpts) -> anyhow::Result<Client> {
    let creds = match &opts.cookies {
        Some(p) => {
            Credentials::from_cookies_file(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => Credentials::from_env()
            .context("no credentials: set SESSDATA/bili_jct/DedeUserID or use --cookies")?,
    };
    let mut b = Client::builder().credentials(creds);
    if let Some(s) = &opts.server {
        b = b.server(s);
    }
    Ok(b.build()?)
}

fn session_type(group: bool) -> u8 {
    if group {
        2
    } else {
        1
    }
}

/// Names for mids, resolved through user cards (unknown ones show as the mid).
struct Names {
    map: HashMap<u64, String>,
}

impl Names {
    async fn load(c: &Client, mids: impl IntoIterator<Item = u64>) -> Names {
        let mut want: Vec<u64> = mids.into_iter().filter(|m| *m != 0).collect();
        want.sort_unstable();
        want.dedup();
        let mut map = HashMap::new();
        for chunk in want.chunks(50) {
            if let Ok(cards) = c.user_cards(chunk).await {
                for card in cards {
                    map.insert(card.mid, card.name);
                }
            }
        }
        Names { map }
    }
    fn name(&self, mid: u64) -> String {
        match self.map.get(&mid) {
            Some(n) => format!("{n}({mid})"),
            None => mid.to_string(),
        }
    }
}

pub async fn run(cmd: ClientCommand, opts: &ClientOpts) -> anyhow::Result<()> {
    let c = client(opts)?;
    let out = &mut std::io::stdout().lock();
    match cmd {
        ClientCommand::Unread => {
            let u = c
                .single_unread(UnreadQuery {
                    unread_type: 0,
                    show_unfollow_list: true,
                    show_dustbin: true,
                })
                .await?;
            let g = c.my_group_unread().await?;
            if opts.json {
                let mut v = serde_json::to_value(&u)?;
                v["group_unread"] = g.unread_count.into();
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "followed:      {}", u.follow_unread)?;
                writeln!(out, "unfollowed:    {}", u.unfollow_unread)?;
                writeln!(
                    out,
                    "notifications: {}",
                    u.biz_msg_follow_unread + u.biz_msg_unfollow_unread
                )?;
                writeln!(out, "service:       {}", u.custom_unread)?;
                writeln!(
                    out,
                    "dustbin:       {}",
                    u.dustbin_unread + u.dustbin_push_msg
                )?;
                writeln!(out, "groups:        {}", g.unread_count)?;
            }
        }
        ClientCommand::Sessions { r#type, size } => {
            let list = c
                .get_sessions(SessionsQuery {
                    session_type: r#type,
                    size,
                    ..Default::default()
                })
                .await?;
            let sessions = list.session_list.unwrap_or_default();
            if opts.json {
                for s in &sessions {
                    writeln!(out, "{}", serde_json::to_string(s)?)?;
                }
                return Ok(());
            }
            let names = Names::load(
                &c,
                sessions
                    .iter()
                    .filter(|s| s.session_type == 1)
                    .map(|s| s.talker_id),
            )
            .await;
            writeln!(
                out,
                "{:<28} {:>6} {:>7}  {:<20}  last message",
                "talker", "type", "unread", "time"
            )?;
            for s in &sessions {
                let who = if let Some(a) = &s.account_info {
                    format!("{}({})", a.name, s.talker_id)
                } else if s.session_type == 2 {
                    format!("{}(g:{})", s.group_name, s.talker_id)
                } else {
                    names.name(s.talker_id)
                };
                let last = s
                    .last_msg
                    .as_ref()
                    .map(|m| crate::render::render_content(m.msg_type, &m.content, m.msg_status))
                    .unwrap_or_default();
                let last: String = last.chars().take(40).collect();
                let pin = if s.top_ts > 0 { "📌" } else { "" };
                let kind = if s.session_type == 2 {
                    "group"
                } else if s.system_msg_type > 0 {
                    "system"
                } else {
                    "user"
                };
                writeln!(
                    out,
                    "{} {:>6} {:>7}  {:<20}  {pin}{}",
                    crate::render::pad(&who, 28),
                    kind,
                    s.unread_count,
                    format_ts(s.session_ts / 1_000_000),
                    last.replace('\n', " ")
                )?;
            }
            if list.has_more == 1 {
                writeln!(out, "… more sessions (raise --size)")?;
            }
        }
        ClientCommand::History {
            talker,
            group,
            limit,
        } => {
            let mut pager = c.history(talker, session_type(group), Direction::Backward);
            let mut msgs: Vec<Value> = Vec::new();
            while let Some(page) = pager.next_raw_page().await? {
                msgs.extend(page);
                if limit.is_some_and(|l| msgs.len() >= l) {
                    break;
                }
            }
            if let Some(l) = limit {
                msgs.truncate(l);
            }
            msgs.reverse();
            if opts.json {
                for m in &msgs {
                    writeln!(out, "{m}")?;
                }
                return Ok(());
            }
            let names = Names::load(&c, msgs.iter().filter_map(|m| m["sender_uid"].as_u64())).await;
            for m in &msgs {
                writeln!(out, "{}", render_line(m, &|mid| names.name(mid)))?;
            }
        }
        ClientCommand::Send {
            talker,
            text,
            image,
            group,
        } => {
            let mut m = match (text, image) {
                (Some(t), None) => OutgoingMessage::text(talker, &t),
                (None, Some(url)) => OutgoingMessage::image(talker, &url),
                _ => bail!("give either TEXT or --image URL"),
            };
            if group {
                m = m.to_group();
            }
            let r = c.send(&m).await?;
            if opts.json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else {
                writeln!(out, "sent: msg_key {}", r.msg_key)?;
            }
        }
        ClientCommand::Recall { msg_key, talker } => {
            let talker = match talker {
                Some(t) => t,
                None => find_talker_of(&c, msg_key).await?,
            };
            let r = c.recall(talker, msg_key).await?;
            if opts.json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else {
                writeln!(out, "recalled {msg_key} (recall msg_key {})", r.msg_key)?;
            }
        }
        ClientCommand::Read { talker, group } => {
            c.update_ack(talker, session_type(group), None).await?;
            writeln!(out, "marked read")?;
        }
        ClientCommand::Watch {
            interval,
            duration,
            poll,
        } => {
            let duration = duration.map(Duration::from_secs_f64);
            if !poll && !c.is_official() {
                match c.events(None).await {
                    Ok(events) => return follow(&c, events, duration, opts.json, out).await,
                    // Not a server with the stream: poll.
                    Err(sixin_client::Error::Http {
                        status: 404 | 405, ..
                    }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let every = interval
                .map(Duration::from_secs_f64)
                .unwrap_or(if c.is_official() {
                    Duration::from_secs(5)
                } else {
                    Duration::from_secs(1)
                });
            watch(&c, every, duration, opts.json, out).await?;
        }
        ClientCommand::Export {
            talkers,
            all,
            out: dir,
        } => {
            export(&c, &talkers, all, &dir, opts.json, out).await?;
        }
    }
    Ok(())
}

/// The conversation of one of the caller's recent messages (the recall window is short).
async fn find_talker_of(c: &Client, msg_key: u64) -> anyhow::Result<u64> {
    let me = c.mid()?;
    let list = c
        .get_sessions(SessionsQuery {
            session_type: 1,
            size: 50,
            ..Default::default()
        })
        .await?;
    for s in list.session_list.unwrap_or_default() {
        let page = c
            .fetch_session_msgs(sixin_client::FetchQuery {
                talker_id: s.talker_id,
                session_type: 1,
                size: 50,
                begin_seqno: None,
                end_seqno: None,
            })
            .await?;
        if page
            .messages
            .unwrap_or_default()
            .iter()
            .any(|m| m.msg_key == msg_key && m.sender_uid == me)
        {
            return Ok(s.talker_id);
        }
    }
    bail!("msg_key {msg_key} is not among your recent messages; give --talker")
}

/// Polls `new_sessions`, then reads each changed conversation forward from the last seqno seen.
async fn watch(
    c: &Client,
    every: Duration,
    duration: Option<Duration>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Where each conversation stood when watching began: only what comes after is printed.
    let mut w = Watcher {
        seen: HashMap::new(),
        since: 0,
        names: Names {
            map: HashMap::new(),
        },
    };
    for s in all_sessions(c, 4)
        .await?
        .into_iter()
        .chain(all_sessions(c, 5).await?)
    {
        w.seen.insert((s.session_type, s.talker_id), s.max_seqno);
        w.since = w.since.max(s.session_ts);
    }
    eprintln!(
        "watching {} conversations for new messages (Ctrl-C to stop)",
        w.seen.len()
    );
    loop {
        match w.poll(c, json, out).await {
            Ok(()) => {}
            // A lost login won't come back; anything else (network, back-off) may.
            Err(e)
                if matches!(
                    e.downcast_ref::<sixin_client::Error>(),
                    Some(sixin_client::Error::Api { code: -101, .. })
                ) =>
            {
                return Err(e)
            }
            Err(e) => eprintln!("watch: {e:#} (trying again)"),
        }
        let left = match duration {
            Some(d) if started.elapsed() >= d => return Ok(()),
            Some(d) => d - started.elapsed(),
            None => every,
        };
        tokio::time::sleep(every.min(left)).await;
    }
}

/// Follows the server's stream of new messages until `duration` is over.
async fn follow(
    c: &Client,
    mut events: sixin_client::Events,
    duration: Option<Duration>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut names = Names {
        map: HashMap::new(),
    };
    eprintln!("watching for new messages as the server stores them (Ctrl-C to stop)");
    loop {
        let e = match deadline {
            Some(at) => match tokio::time::timeout_at(at, events.next()).await {
                Ok(e) => e?,
                Err(_) => return Ok(()),
            },
            None => events.next().await?,
        };
        let m = serde_json::to_value(&e.msg)?;
        names
            .print(c, (e.session_type, e.talker_id), &m, json, out)
            .await?;
    }
}

impl Names {
    /// Prints one message of the session `(session_type, talker)`: its JSON, or a line.
    async fn print(
        &mut self,
        c: &Client,
        (session_type, talker): (u8, u64),
        m: &serde_json::Value,
        json: bool,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        if json {
            writeln!(out, "{m}")?;
        } else {
            let sender = m["sender_uid"].as_u64().unwrap_or(0);
            if sender != 0 && !self.map.contains_key(&sender) {
                let more = Names::load(c, [sender]).await;
                self.map.extend(more.map);
            }
            let place = if session_type == 2 {
                format!("g:{talker}")
            } else {
                talker.to_string()
            };
            writeln!(out, "<{place}> {}", render_line(m, &|mid| self.name(mid)))?;
        }
        out.flush()?;
        Ok(())
    }
}

struct Watcher {
    /// The newest seqno printed (or present at the start) per conversation.
    seen: HashMap<(u8, u64), u64>,
    /// The newest `session_ts` seen: `new_sessions` is asked for what changed after it.
    since: i64,
    names: Names,
}

impl Watcher {
    async fn poll(&mut self, c: &Client, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
        let fresh = c.new_sessions(self.since, 100).await?;
        let mut newest = self.since;
        for s in fresh.session_list.unwrap_or_default() {
            let key = (s.session_type, s.talker_id);
            // A conversation not listed at the start (new, or hidden then) starts after what
            // was read in it: hiding a session marks it read, a new one starts at 0.
            let from = self.seen.get(&key).copied().unwrap_or(s.ack_seqno);
            let mut pager = c.history(s.talker_id, s.session_type, Direction::ForwardFrom(from));
            let mut msgs = Vec::new();
            while let Some(page) = pager.next_raw_page().await? {
                msgs.extend(page);
            }
            for m in msgs {
                let seq = m["msg_seqno"].as_u64().unwrap_or(0);
                let last = self.seen.entry(key).or_insert(0);
                *last = (*last).max(seq);
                self.names
                    .print(c, (s.session_type, s.talker_id), &m, json, out)
                    .await?;
            }
            self.seen.entry(key).or_insert(from);
            // Only once the conversation is caught up, so a failed poll is repeated.
            newest = newest.max(s.session_ts);
        }
        self.since = newest;
        Ok(())
    }
}

/// Every session of a list (`session_type` as in `get_sessions`), page by page: pinned ones
/// head the first page, later pages continue below the oldest unpinned one.
async fn all_sessions(c: &Client, session_type: u8) -> anyhow::Result<Vec<Session>> {
    let mut out: Vec<Session> = Vec::new();
    let mut end_ts = None;
    loop {
        let list = c
            .get_sessions(SessionsQuery {
                session_type,
                size: 100,
                end_ts,
                ..Default::default()
            })
            .await?;
        let sessions = list.session_list.unwrap_or_default();
        let next = sessions
            .iter()
            .filter(|s| s.top_ts == 0)
            .map(|s| s.session_ts)
            .min();
        for s in sessions {
            if !out
                .iter()
                .any(|o| o.session_type == s.session_type && o.talker_id == s.talker_id)
            {
                out.push(s);
            }
        }
        match next {
            Some(ts) if list.has_more == 1 && end_ts != Some(ts) => end_ts = Some(ts),
            _ => return Ok(out),
        }
    }
}

/// A conversation to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Target {
    session_type: u8,
    talker: u64,
}

impl Target {
    fn stem(&self) -> String {
        match self.session_type {
            2 => format!("group-{}", self.talker),
            _ => format!("user-{}", self.talker),
        }
    }
}

fn parse_target(s: &str) -> anyhow::Result<Target> {
    let (session_type, id) = match s.strip_prefix("g:") {
        Some(g) => (2, g),
        None => (1, s),
    };
    Ok(Target {
        session_type,
        talker: id
            .parse()
            .with_context(|| format!("not a talker id: {s}"))?,
    })
}

/// Reads an export file, dropping a trailing partial line (an interrupted run) so appending
/// resumes cleanly. Returns the messages and the last seqno.
fn read_jsonl(path: &Path) -> anyhow::Result<(Vec<Value>, u64)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e.into()),
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    if complete.len() != text.len() {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(complete.len() as u64)?;
        f.sync_all()?;
    }
    let mut msgs = Vec::new();
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        msgs.push(
            serde_json::from_str::<Value>(line)
                .with_context(|| format!("corrupt line in {}", path.display()))?,
        );
    }
    let last = msgs
        .iter()
        .filter_map(|m| m["msg_seqno"].as_u64())
        .max()
        .unwrap_or(0);
    Ok((msgs, last))
}

async fn export(
    c: &Client,
    talkers: &[String],
    all: bool,
    dir: &Path,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if talkers.is_empty() && !all {
        bail!("name the talkers to export, or use --all");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut targets: Vec<Target> = talkers
        .iter()
        .map(|t| parse_target(t))
        .collect::<anyhow::Result<_>>()?;
    if all {
        // Everything listed, and the intercepted conversations (the dustbin) too.
        for s in all_sessions(c, 4)
            .await?
            .into_iter()
            .chain(all_sessions(c, 5).await?)
        {
            let t = Target {
                session_type: s.session_type,
                talker: s.talker_id,
            };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    let me = c.mid().unwrap_or(0);
    let mut failed = Vec::new();
    for t in targets {
        match export_one(c, t, me, dir).await {
            Ok((added, total)) if json => writeln!(
                out,
                "{}",
                serde_json::json!({
                    "conversation": t.stem(), "talker_id": t.talker, "session_type": t.session_type,
                    "new": added, "total": total,
                    "jsonl": dir.join(format!("{}.jsonl", t.stem())), "html": dir.join(format!("{}.html", t.stem())),
                })
            )?,
            Ok((added, total)) => writeln!(out, "{}: {} new, {} in all", t.stem(), added, total)?,
            Err(e) => {
                // The others are still worth exporting; this one resumes on the next run.
                eprintln!("{}: {e:#}", t.stem());
                failed.push(t.stem());
            }
        }
        out.flush()?;
    }
    if !failed.is_empty() {
        bail!("not exported: {}", failed.join(", "));
    }
    Ok(())
}

/// Brings one conversation's export up to date; returns (messages added, messages in all).
async fn export_one(c: &Client, t: Target, me: u64, dir: &Path) -> anyhow::Result<(usize, usize)> {
    let jsonl = dir.join(format!("{}.jsonl", t.stem()));
    let (mut msgs, last) = read_jsonl(&jsonl)?;
    let detail = c.session_detail(t.talker, t.session_type).await.ok();
    let total_hint = detail.as_ref().map_or(0, |s| s.max_seqno);
    let bar = indicatif::ProgressBar::new(total_hint.saturating_sub(last));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} messages")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(t.stem());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&jsonl)?;
    let mut pager = c.history(t.talker, t.session_type, Direction::ForwardFrom(last));
    let mut added = 0usize;
    while let Some(page) = pager.next_raw_page().await? {
        let mut buf = String::new();
        for m in &page {
            buf.push_str(&serde_json::to_string(m)?);
            buf.push('\n');
        }
        // One page per write, synced before the next request: an interrupted export loses
        // at most the page in flight, and the next run picks up after the last whole line.
        file.write_all(buf.as_bytes())?;
        file.sync_data()?;
        added += page.len();
        bar.inc(page.len() as u64);
        msgs.extend(page);
    }
    bar.finish_and_clear();
    let names = Names::load(
        c,
        msgs.iter()
            .filter_map(|m| m["sender_uid"].as_u64())
            .chain([t.talker]),
    )
    .await;
    let title = if t.session_type == 2 {
        match detail.map(|d| d.group_name).filter(|n| !n.is_empty()) {
            Some(name) => format!("粉丝团 {name}(g:{})", t.talker),
            None => format!("粉丝团 g:{}", t.talker),
        }
    } else {
        format!("与 {} 的私信", names.name(t.talker))
    };
    let html = html_transcript(&title, me, &msgs, &|mid| names.name(mid));
    let html_path = dir.join(format!("{}.html", t.stem()));
    let tmp = dir.join(format!(".{}.html.tmp", t.stem()));
    std::fs::write(&tmp, html)?;
    std::fs::rename(&tmp, &html_path)?;
    Ok((added, msgs.len()))
}
