//! `sixin bench`: seeds a database directly, starts a server on it (or loads one given), and
//! drives concurrent HTTP load over loopback, workload by workload. Reports throughput,
//! latency percentiles, the ratio to the `/healthz` ceiling of the same run and the server's
//! peak RSS, as a table and as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use sixin_server::ids::KeyGen;
use sixin_server::Config;

const ADMIN_TOKEN: &str = "sixin-bench-admin";
/// The seeded users: one hub with many sessions, then its peers.
const HUB: u64 = 1_000_000_000;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Database to seed and serve (`sqlite://PATH` or `postgres://...`).
    #[arg(long, default_value = "sqlite://./sixin-bench/bench.db")]
    pub database: String,
    /// Messages to seed, spread evenly over the conversations.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// One-to-one conversations to seed.
    #[arg(long, default_value_t = 1_000)]
    pub conversations: u64,
    /// Sessions of the hub user (the `get_sessions` workload's user); at most `conversations`.
    #[arg(long, default_value_t = 1_000)]
    pub sessions: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds each workload runs unmeasured first, so that it is measured in its steady
    /// state: with the pages it reads in memory, not as the previous workload left them.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Comma-separated workloads (default: all): healthz, send_msg, fetch_session_msgs,
    /// get_sessions, new_sessions, single_unread.
    #[arg(long)]
    pub workloads: Option<String>,
    /// `process` (default) or `power` (fsync before answering).
    #[arg(long, default_value = "process")]
    pub durability: String,
    /// Write the JSON report to this file too.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Keep an already seeded database instead of refusing to run on it.
    #[arg(long)]
    pub reuse: bool,
    /// Members of the fan group of the group workloads (0: no group workloads).
    #[arg(long, default_value_t = 10_000)]
    pub group_members: u64,
}

#[derive(Debug, Clone, Serialize)]
struct WorkloadReport {
    name: String,
    requests: u64,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    ratio_to_healthz: Option<f64>,
    /// CPU time the server process spent per answered request, in µs (all its threads,
    /// user and system). Unlike req/s it does not move with what else the machine runs.
    server_cpu_us: Option<f64>,
    /// The same for the load generator (this process).
    client_cpu_us: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Value,
    database: String,
    backend: String,
    durability: String,
    seeded_messages: u64,
    seeded_conversations: u64,
    hub_sessions: u64,
    group_members: u64,
    seed_seconds: f64,
    concurrency: usize,
    seconds_per_workload: f64,
    warmup_seconds: f64,
    /// The mean of `healthz` (first) and `healthz_end` (last): what ratios divide by.
    ceiling_rps: f64,
    workloads: Vec<WorkloadReport>,
    server_peak_rss_mb: Option<f64>,
    server_rss_mb: Option<f64>,
}

const ALL: [&str; 9] = [
    "healthz",
    "send_msg",
    "fetch_session_msgs",
    "get_sessions",
    "new_sessions",
    "single_unread",
    "group_send",
    "group_fetch",
    "group_unread",
];
const GROUP_WORKLOADS: [&str; 3] = ["group_send", "group_fetch", "group_unread"];

fn peers(n: u64) -> impl Iterator<Item = u64> {
    (1..=n).map(|k| HUB + k)
}

/// The seeded conversations: the hub with its first `sessions` peers, then peer pairs.
fn conversation_pairs(args: &BenchArgs) -> Vec<(u64, u64)> {
    let hub_sessions = args.sessions.min(args.conversations);
    let mut pairs: Vec<(u64, u64)> = peers(hub_sessions).map(|p| (HUB, p)).collect();
    let mut next = HUB + hub_sessions + 1;
    while (pairs.len() as u64) < args.conversations {
        pairs.push((next, next + 1));
        next += 2;
    }
    pairs
}

async fn seed(args: &BenchArgs, config: &Config) -> anyhow::Result<f64> {
    let started = Instant::now();
    let store = sixin_server::store::open(config)
        .await
        .context("opening the bench database")?;
    if store.user_count().await? > 0 {
        if args.reuse {
            check_seeded_shape(store.as_ref(), args).await?;
            eprintln!("# reusing the seeded database {}", args.database);
            return Ok(0.0);
        }
        bail!(
            "{} already holds users; remove it or pass --reuse",
            args.database
        );
    }
    let pairs = conversation_pairs(args);
    let mut mids: Vec<u64> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    mids.extend(peers(args.group_members));
    mids.sort_unstable();
    mids.dedup();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    store.seed_users(&mids, now_ms).await?;
    let clock_ms = now_ms - 86_400_000;
    let instance = format!("bench-{}", std::process::id());
    let node = store.lease_node_id(&instance, now_ms, 600_000).await?;
    let keys = Arc::new(KeyGen::new(node));
    let per = args.messages / args.conversations.max(1);
    let extra = args.messages % args.conversations.max(1);
    let bar = indicatif::ProgressBar::new(args.messages);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "seeding [{bar:30}] {pos}/{len} messages ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for (k, (a, b)) in pairs.iter().enumerate() {
        let n = per + u64::from((k as u64) < extra);
        let start_us = (clock_ms + k as i64) * 1000;
        let keys = keys.clone();
        store
            .seed_conversation(*a, *b, n, start_us, &move || keys.next(clock_ms))
            .await?;
        bar.inc(n);
    }
    bar.finish_and_clear();
    // A real database has statistics; a freshly bulk-loaded one needs them before planning.
    store.analyze().await?;
    Ok(started.elapsed().as_secs_f64())
}

/// With `--reuse`, the workloads take their users and conversations from the flags, so the
/// flags must describe what the database holds: a database seeded with `--sessions 10000`
/// reused with the default of 1,000 would send to a tenth of the hub's peers. Checked through
/// the seeded pairs at the edges: the hub's last peer and the one after it, the last pair of
/// peers and the one after it.
async fn check_seeded_shape(
    store: &dyn sixin_server::store::Store,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let pairs = conversation_pairs(args);
    let hub_last = pairs.iter().take_while(|(a, _)| *a == HUB).last();
    let mut expected = Vec::new();
    if let Some(&(hub, peer)) = hub_last {
        expected.push((hub, peer, true));
        expected.push((hub, peer + 1, false));
    }
    if let Some(&(a, b)) = pairs.last().filter(|(a, _)| *a != HUB) {
        expected.push((a, b, true));
        expected.push((b + 1, b + 2, false));
    }
    for (owner, talker, seeded) in expected {
        let found = !store
            .talkers_with_sessions(owner, &[talker])
            .await?
            .is_empty();
        if found != seeded {
            bail!(
                "{} was seeded with other --conversations or --sessions than {} and {}: \
                 pass the values it was seeded with",
                args.database,
                args.conversations,
                args.sessions
            );
        }
    }
    Ok(())
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(args: &BenchArgs) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &args.database,
        ])
        .env("SIXIN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SIXIN_SENDS_PER_SECOND", "1000000000")
        .env("SIXIN_DAILY_SENDS_TO_STRANGERS", "1000000000")
        .env("SIXIN_DURABILITY", &args.durability)
        .env("SIXIN_MAX_CONNECTIONS", "8")
        .env("SIXIN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let child = Child(child);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(url) = line.strip_prefix("# sixin listening on ") {
            return Ok((child, url.to_string()));
        }
    }
    bail!("the server exited before listening")
}

fn rss_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds a process has used (user + system, all threads), from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    // Ticks of USER_HZ, which is 100 on Linux whatever the kernel's own tick rate.
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are positional (utime is the
    // 14th field of the line, stime the 15th).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Runs one measured workload and adds what the server and the generator spent on it.
async fn measure(ctx: &Arc<Ctx>, name: &str, args: &BenchArgs, server: u32) -> WorkloadReport {
    let me = std::process::id();
    let before = (cpu_seconds(server), cpu_seconds(me));
    let mut r = run_workload(ctx.clone(), name, args.concurrency, args.seconds).await;
    let after = (cpu_seconds(server), cpu_seconds(me));
    let per_request = |a: Option<f64>, b: Option<f64>| {
        (r.requests > 0).then_some((b? - a?) * 1e6 / r.requests as f64)
    };
    r.server_cpu_us = per_request(before.0, after.0);
    r.client_cpu_us = per_request(before.1, after.1);
    r
}

#[derive(Clone)]
struct Login {
    mid: u64,
    cookie: String,
    csrf: String,
}

async fn login(http: &reqwest::Client, base: &str, mid: u64) -> anyhow::Result<Login> {
    let v: Value = http
        .post(format!("{base}/admin/v1/users/{mid}/logins"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let sess = v["SESSDATA"].as_str().context("login answer")?;
    Ok(Login {
        mid,
        cookie: format!("SESSDATA={sess}"),
        csrf: v["bili_jct"].as_str().unwrap_or_default().to_string(),
    })
}

/// A tiny deterministic PRNG per task (xorshift), so the load is reproducible and cheap.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    hub: Login,
    /// A member of the group other than its owner (the hub).
    member: Option<Login>,
    group_id: u64,
    group_max: u64,
    hub_sessions: u64,
    per_conversation: u64,
    idle_since: i64,
}

/// The hub sends `text` to `to` (a user for `receiver_type` 1, a fan group for 2).
async fn send(
    ctx: &Ctx,
    to: u64,
    receiver_type: u8,
    text: &str,
) -> reqwest::Result<reqwest::Response> {
    let form = [
        ("msg[sender_uid]", ctx.hub.mid.to_string()),
        ("msg[receiver_id]", to.to_string()),
        ("msg[receiver_type]", receiver_type.to_string()),
        ("msg[msg_type]", "1".into()),
        ("msg[dev_id]", "B3BE8D5A-0E6B-4C3F-9C25-5C5D2B1A7E11".into()),
        ("msg[timestamp]", "1700000000".into()),
        ("msg[content]", json!({ "content": text }).to_string()),
        ("csrf", ctx.hub.csrf.clone()),
    ];
    ctx.http
        .post(format!("{}/web_im/v1/web_im/send_msg", ctx.base))
        .header("Cookie", &ctx.hub.cookie)
        .form(&form)
        .send()
        .await
}

/// One request of a workload; Ok(true) when it succeeded (HTTP 200 and code 0).
async fn one(ctx: &Ctx, name: &str, rng: &mut Rng) -> anyhow::Result<bool> {
    let c = &ctx.http;
    let resp = match name {
        "healthz" => c.get(format!("{}/healthz", ctx.base)).send().await?,
        "send_msg" => {
            let to = HUB + 1 + rng.below(ctx.hub_sessions.max(1));
            send(ctx, to, 1, "bench").await?
        }
        "fetch_session_msgs" => {
            let talker = HUB + 1 + rng.below(ctx.hub_sessions.max(1));
            let end = 1 + rng.below(ctx.per_conversation.max(1)) + 1;
            c.get(format!(
                "{}/svr_sync/v1/svr_sync/fetch_session_msgs?talker_id={talker}&session_type=1&size=20&end_seqno={end}",
                ctx.base
            ))
            .header("Cookie", &ctx.hub.cookie)
            .send()
            .await?
        }
        "get_sessions" => {
            c.get(format!(
                "{}/session_svr/v1/session_svr/get_sessions?session_type=1&size=20",
                ctx.base
            ))
            .header("Cookie", &ctx.hub.cookie)
            .send()
            .await?
        }
        "new_sessions" => {
            c.get(format!(
                "{}/session_svr/v1/session_svr/new_sessions?begin_ts={}&size=20",
                ctx.base, ctx.idle_since
            ))
            .header("Cookie", &ctx.hub.cookie)
            .send()
            .await?
        }
        "group_send" => send(ctx, ctx.group_id, 2, "bench group").await?,
        "group_fetch" => {
            let end = 2 + rng.below(ctx.group_max.max(1));
            c.get(format!(
                "{}/svr_sync/v1/svr_sync/fetch_session_msgs?talker_id={}&session_type=2&size=20&end_seqno={end}",
                ctx.base, ctx.group_id
            ))
            .header("Cookie", &ctx.hub.cookie)
            .send()
            .await?
        }
        "group_unread" => {
            let member = ctx.member.as_ref().context("no group member")?;
            c.get(format!(
                "{}/session_svr/v1/session_svr/my_group_unread",
                ctx.base
            ))
            .header("Cookie", &member.cookie)
            .send()
            .await?
        }
        "single_unread" => {
            c.get(format!(
                "{}/session_svr/v1/session_svr/single_unread",
                ctx.base
            ))
            .header("Cookie", &ctx.hub.cookie)
            .send()
            .await?
        }
        other => bail!("unknown workload {other}"),
    };
    if !resp.status().is_success() {
        return Ok(false);
    }
    let body = resp.bytes().await?;
    if name == "healthz" {
        return Ok(true);
    }
    // A success envelope starts with code 0; parsing the whole body would load the client.
    Ok(body.starts_with(b"{\"code\":0,"))
}

/// Runs a workload for `--warmup` seconds without keeping its figures.
async fn warm_up(ctx: &Arc<Ctx>, name: &str, args: &BenchArgs) {
    if args.warmup > 0.0 {
        run_workload(ctx.clone(), name, args.concurrency, args.warmup).await;
    }
}

async fn run_workload(
    ctx: Arc<Ctx>,
    name: &str,
    concurrency: usize,
    seconds: f64,
) -> WorkloadReport {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let ctx = ctx.clone();
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
            let mut lat: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match one(&ctx, &name, &mut rng).await {
                    Ok(true) => lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[idx]) / 1000.0
    };
    WorkloadReport {
        name: name.to_string(),
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        ratio_to_healthz: None,
        server_cpu_us: None,
        client_cpu_us: None,
    }
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0);
    json!({ "cpus": cpus, "cpu_model": model, "memory_gb": mem_gb, "os": std::env::consts::OS })
}

/// A fan group owned by the hub with `members` members in all, joined through the admin API
/// (so with their welcome messages, like a real group). Returns its id and newest seqno.
async fn seed_group(
    http: &reqwest::Client,
    base: &str,
    members: u64,
    concurrency: usize,
) -> anyhow::Result<(u64, u64)> {
    let started = Instant::now();
    let g: Value = http
        .post(format!("{base}/admin/v1/groups"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"owner": HUB, "name": "bench group"}))
        .send()
        .await?
        .json()
        .await?;
    let group_id = g["group_id"].as_u64().context("group answer")?;
    let joiners: Vec<u64> = peers(members.saturating_sub(1)).collect();
    let per = joiners.len().div_ceil(concurrency.clamp(1, 16));
    let mut tasks = Vec::new();
    for chunk in joiners.chunks(per.max(1)) {
        let http = http.clone();
        let base = base.to_string();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for mid in chunk {
                let r = http
                    .post(format!("{base}/admin/v1/groups/{group_id}/members"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({ "mid": mid }))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    anyhow::bail!("adding member {mid}: HTTP {}", r.status());
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let g: Value = http
        .get(format!("{base}/admin/v1/groups/{group_id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    eprintln!(
        "# fan group {group_id} with {} members ready in {:.1} s",
        g["members"],
        started.elapsed().as_secs_f64()
    );
    Ok((group_id, g["max_seqno"].as_u64().unwrap_or(0)))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let wanted: Vec<String> = match &args.workloads {
        Some(w) => w
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => ALL.iter().map(|s| s.to_string()).collect(),
    };
    for w in &wanted {
        if !ALL.contains(&w.as_str()) {
            bail!("unknown workload {w} (known: {})", ALL.join(", "));
        }
    }
    if args.conversations == 0 || args.messages < args.conversations {
        bail!("need at least one message per conversation");
    }
    let config = Config {
        database: args.database.clone(),
        durability: match args.durability.as_str() {
            "power" => sixin_server::config::Durability::Power,
            "process" => sixin_server::config::Durability::Process,
            other => bail!("durability must be process or power, not {other}"),
        },
        ..Config::default()
    };
    eprintln!(
        "# seeding {} messages in {} conversations",
        args.messages, args.conversations
    );
    let seed_seconds = seed(&args, &config).await?;
    eprintln!("# seeded in {seed_seconds:.1} s; starting the server");
    let (child, base) = spawn_server(&args)?;
    let pid = child.0.id();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let hub = login(&http, &base, HUB).await?;
    let hub_sessions = args.sessions.min(args.conversations);
    let wants_group =
        args.group_members > 0 && wanted.iter().any(|w| GROUP_WORKLOADS.contains(&w.as_str()));
    let (group_id, group_max, member) = if wants_group {
        let (g, max) = seed_group(&http, &base, args.group_members, args.concurrency).await?;
        (g, max, Some(login(&http, &base, HUB + 1).await?))
    } else {
        (0, 0, None)
    };
    let ctx = Arc::new(Ctx {
        http,
        base: base.clone(),
        hub,
        member,
        group_id,
        group_max,
        hub_sessions,
        per_conversation: args.messages / args.conversations,
        idle_since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros() as i64
            + 3_600_000_000,
    });
    let mut reports: Vec<WorkloadReport> = Vec::new();
    // The ceiling first, so every other workload has its ratio.
    let mut order: Vec<&str> = vec!["healthz"];
    order.extend(ALL.iter().copied().filter(|w| *w != "healthz"));
    for name in order {
        if !wanted.iter().any(|w| w == name) && name != "healthz" {
            continue;
        }
        if GROUP_WORKLOADS.contains(&name) && !wants_group {
            continue;
        }
        eprintln!(
            "# {name} for {:.1} s at {} connections (after {:.1} s unmeasured)",
            args.seconds, args.concurrency, args.warmup
        );
        warm_up(&ctx, name, &args).await;
        reports.push(measure(&ctx, name, &args, pid).await);
    }
    // The ceiling again at the end: the machine's speed drifts over a run, and the ceiling
    // is the mean of the two.
    if reports.len() > 1 {
        eprintln!(
            "# healthz (again) for {:.1} s at {} connections",
            args.seconds, args.concurrency
        );
        warm_up(&ctx, "healthz", &args).await;
        let mut again = measure(&ctx, "healthz", &args, pid).await;
        again.name = "healthz_end".into();
        reports.push(again);
    }
    let ceilings: Vec<f64> = reports
        .iter()
        .filter(|r| r.name.starts_with("healthz"))
        .map(|r| r.rps)
        .collect();
    let ceiling = ceilings.iter().sum::<f64>() / ceilings.len().max(1) as f64;
    for r in &mut reports {
        if ceiling > 0.0 {
            r.ratio_to_healthz = Some(r.rps / ceiling);
        }
    }
    let report = Report {
        machine: machine(),
        database: sixin_server::config::redact_url(&args.database),
        backend: if args.database.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
        .into(),
        durability: args.durability.clone(),
        seeded_messages: args.messages,
        seeded_conversations: args.conversations,
        hub_sessions,
        group_members: if wants_group { args.group_members } else { 0 },
        seed_seconds,
        concurrency: args.concurrency,
        seconds_per_workload: args.seconds,
        warmup_seconds: args.warmup,
        ceiling_rps: ceiling,
        workloads: reports,
        server_peak_rss_mb: rss_mb(pid, "VmHWM:"),
        server_rss_mb: rss_mb(pid, "VmRSS:"),
    };
    drop(child);
    println!(
        "{:<20} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "workload",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "ratio",
        "srv µs",
        "gen µs"
    );
    let us = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.0}"));
    for r in &report.workloads {
        println!(
            "{:<20} {:>9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>8} {:>8}",
            r.name,
            r.requests,
            r.errors,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.ratio_to_healthz
                .map_or("-".into(), |x| format!("{:.0}%", x * 100.0)),
            us(r.server_cpu_us),
            us(r.client_cpu_us)
        );
    }
    if let Some(p) = report.server_peak_rss_mb {
        println!("server peak RSS: {p:.1} MB");
    }
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
