//! A seconds-long run of `sixin bench`, so the benchmark cannot rot. It checks the report's
//! shape and that every workload ran without errors; it asserts nothing about speed.

use std::process::Command;

#[test]
fn small_bench_run_reports_every_workload() {
    let dir = std::env::temp_dir().join(format!("sixin-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sixin"))
        .args([
            "bench",
            "--database",
            &format!("sqlite://{}/bench.db", dir.display()),
            "--messages",
            "3000",
            "--conversations",
            "60",
            "--sessions",
            "40",
            "--seconds",
            "0.5",
            "--warmup",
            "0.25",
            "--concurrency",
            "4",
            "--group-members",
            "30",
            "--report",
            report.to_str().unwrap(),
        ])
        .env("SIXIN_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["seeded_messages"], 3000);
    assert_eq!(v["seeded_conversations"], 60);
    assert_eq!(v["hub_sessions"], 40);
    assert_eq!(v["backend"], "sqlite");
    assert_eq!(v["group_members"], 30);
    assert_eq!(v["seconds_per_workload"], 0.5);
    assert_eq!(v["warmup_seconds"], 0.25);
    let names: Vec<&str> = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "healthz",
            "send_msg",
            "fetch_session_msgs",
            "get_sessions",
            "new_sessions",
            "single_unread",
            "group_send",
            "group_fetch",
            "group_unread",
            "healthz_end"
        ]
    );
    for w in v["workloads"].as_array().unwrap() {
        assert!(w["requests"].as_u64().unwrap() > 0, "{w}");
        assert_eq!(w["errors"], 0, "{w}");
        assert!(
            w["p99_ms"].as_f64().unwrap() >= w["p50_ms"].as_f64().unwrap(),
            "{w}"
        );
        // CPU per request, of the server and of the generator, read from /proc.
        assert!(w["server_cpu_us"].as_f64().unwrap() > 0.0, "{w}");
        assert!(w["client_cpu_us"].as_f64().unwrap() > 0.0, "{w}");
    }
    // The ceiling is the mean of the first and the last healthz run; ratios divide by it.
    let ws = v["workloads"].as_array().unwrap();
    let first = ws[0]["rps"].as_f64().unwrap();
    let last = ws[ws.len() - 1]["rps"].as_f64().unwrap();
    let ceiling = v["ceiling_rps"].as_f64().unwrap();
    assert!((ceiling - (first + last) / 2.0).abs() < 1e-6, "{ceiling}");
    for w in ws {
        let ratio = w["ratio_to_healthz"].as_f64().unwrap();
        assert!(
            (ratio - w["rps"].as_f64().unwrap() / ceiling).abs() < 1e-9,
            "{w}"
        );
    }
    assert!(v["server_peak_rss_mb"].as_f64().unwrap() > 0.0);
    // The table is printed too.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("workload"), "{stdout}");
    assert!(
        stdout.lines().next().unwrap().ends_with("srv µs   gen µs"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--reuse` takes the workloads' users from the flags, so it refuses flags that do not
/// describe the seeded database, and runs with the ones that do.
#[test]
fn reuse_refuses_another_shape() {
    let dir = std::env::temp_dir().join(format!("sixin-bench-reuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/bench.db", dir.display());
    let run = |extra: &[&str], sessions: &str, conversations: &str| {
        let mut args = vec![
            "bench",
            "--database",
            &db,
            "--messages",
            "600",
            "--conversations",
            conversations,
            "--sessions",
            sessions,
            "--seconds",
            "0.2",
            "--warmup",
            "0",
            "--concurrency",
            "2",
            "--group-members",
            "0",
            "--workloads",
            "send_msg",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_sixin"))
            .args(&args)
            .env("SIXIN_LOG", "warn")
            .output()
            .unwrap()
    };
    let seeded = run(&[], "20", "30");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    for (sessions, conversations) in [("10", "30"), ("30", "30"), ("20", "29"), ("20", "31")] {
        let out = run(&["--reuse"], sessions, conversations);
        assert!(!out.status.success(), "{sessions} {conversations}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{db} was seeded with other --conversations or --sessions than \
                 {conversations} and {sessions}: pass the values it was seeded with"
            )),
            "{err}"
        );
    }
    let reused = run(&["--reuse"], "20", "30");
    assert!(
        reused.status.success(),
        "{}",
        String::from_utf8_lossy(&reused.stderr)
    );
    assert!(
        String::from_utf8_lossy(&reused.stderr).contains("# reusing the seeded database"),
        "{}",
        String::from_utf8_lossy(&reused.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
