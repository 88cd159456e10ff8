//! The `feed-server` binary: `--demo` prints ready-to-paste examples, SIGTERM drains and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_mode_serves_a_personalised_feed_and_sigterm_exits_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_feed-server"))
        .args([
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn feed-server");
    // stdout is read on its own thread, so a server that never prints (or hangs) fails the test
    // at a deadline instead of blocking it.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            let _ = child.kill();
            panic!("no example line naming /metrics within 120 s; printed:\n{printed}");
        };
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("/metrics") {
            break;
        }
    }
    assert!(
        printed.contains(&format!(
            "curl -s 'http://127.0.0.1:{port}/v1/feed?user_id=user-1"
        )),
        "{printed}"
    );

    let get = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-f",
                "--max-time",
                "10",
                &format!("http://127.0.0.1:{port}{path}"),
            ])
            .output()
            .expect("curl");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while get("/readyz").is_none() {
        assert!(Instant::now() < deadline, "demo server never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = get("/v1/feed?user_id=user-1&limit=5").expect("feed answers once ready");
    let feed: serde_json::Value = serde_json::from_str(&body).expect("json feed");
    assert_eq!(feed["items"].as_array().map(Vec::len), Some(5), "{feed}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    // Logs are JSON lines on stdout; the last one says the server stopped after draining.
    // The child has exited: its stdout is closed and the reader thread ends the channel.
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let messages: Vec<&str> = logs.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages.contains(&"shutdown requested; draining in-flight requests"),
        "{messages:?}"
    );
    assert_eq!(
        messages.last(),
        Some(&"feed-server stopped"),
        "{messages:?}"
    );
    // No --api-keys: the open-mode warning, once.
    // (Logged at start, before the examples: in `printed`.)
    let open_warnings = printed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .chain(logs.iter().cloned())
        .filter(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no --api-keys"))
        })
        .count();
    assert_eq!(open_warnings, 1, "{messages:?}");
}

/// Kills the child with SIGTERM and returns its JSON log lines.
fn stop_and_read_logs(child: std::process::Child) -> Vec<serde_json::Value> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn with_api_keys_the_log_names_the_key_never_the_secret_and_no_open_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("api-keys.yaml");
    // printf %s ci-reader-SECRET-0123456789 | sha256sum
    std::fs::write(
        &keys,
        "keys:\n  - name: ci-reader\n    sha256: 5ddfa2855e92f8410b745e79a9e08c42877199182e313e614a5c94fe0d1fe7c9\n    scopes: [read]\n    limit: {requestsPerSecond: 100, burst: 100}\n",
    )
    .expect("write keys");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = Command::new(env!("CARGO_BIN_EXE_feed-server"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--warmup-users",
            "0",
        ])
        .arg("--api-keys")
        .arg(&keys)
        // Every request's response logged, inside its span.
        .env("RUST_LOG", "info,feed_server::http::observe=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn feed-server");
    let curl = |key: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", &format!("authorization: Bearer {key}")])
            .arg(format!("http://127.0.0.1:{port}/v1/feed?user_id=u"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl("ci-reader-SECRET-0123456789") != "200" {
        assert!(Instant::now() < deadline, "never served the known key");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl("unknown-SECRET-key"), "401");
    let logs = stop_and_read_logs(child);
    let text: Vec<String> = logs.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().all(|l| !l.contains("SECRET")),
        "a key in the logs: {text:#?}"
    );
    assert!(
        logs.iter().any(|l| l["span"]["key"] == "ci-reader"),
        "no request span names the key: {text:#?}"
    );
    assert!(
        !text.iter().any(|l| l.contains("no --api-keys")),
        "open-mode warning with keys"
    );
}
