//! The bench's binaries as `scripts/bench.sh` runs them (this test also makes `cargo test` build
//! them, so `make test`'s smoke benchmark takes them from the test build with `--bin-dir`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use feedroll_bench::keys::{BenchKey, digest};

const LOADGEN: &str = env!("CARGO_BIN_EXE_feedroll-loadgen");
const BASELINE: &str = env!("CARGO_BIN_EXE_feedroll-static-baseline");

/// Kills the child when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let out = Command::new(LOADGEN)
        .args(["ports", "--count", "1"])
        .output()
        .expect("feedroll-loadgen ports");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a port number")
}

fn get(port: u16, path: &str) -> Option<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    Some((head, raw[split + 4..].to_vec()))
}

#[test]
fn keys_writes_digests_for_the_server_and_the_keys_for_the_bench_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, secrets) = (
        dir.path().join("api-keys.json"),
        dir.path().join("secrets.json"),
    );
    let out = Command::new(LOADGEN)
        .arg("keys")
        .arg("--file")
        .arg(&file)
        .arg("--secrets")
        .arg(&secrets)
        .output()
        .expect("feedroll-loadgen keys");
    assert!(out.status.success(), "{out:?}");

    let keys: Vec<BenchKey> =
        serde_json::from_slice(&std::fs::read(&secrets).expect("secrets")).expect("JSON");
    assert_eq!(keys.len(), 2);
    let mode = std::fs::metadata(&secrets)
        .expect("secrets")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the keys are readable by others: {mode:o}");

    let text = std::fs::read_to_string(&file).expect("keys file");
    let file: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for key in &keys {
        assert!(!text.contains(&key.secret), "a key in the server's file");
        let entry = file["keys"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["name"] == key.name.as_str()))
            .unwrap_or_else(|| panic!("{} missing from {text}", key.name));
        assert_eq!(entry["sha256"], digest(&key.secret).as_str());
    }
}

#[test]
fn the_static_baseline_answers_every_get_with_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("payload.json");
    std::fs::write(&body, br#"{"items":[{"video_id":"v1"}]}"#).expect("payload");
    let port = free_port();
    let _server = Killed(
        Command::new(BASELINE)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--body")
            .arg(&body)
            .spawn()
            .expect("feedroll-static-baseline"),
    );
    let start = Instant::now();
    while get(port, "/readyz").is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (head, bytes) = get(port, "/v1/feed?user_id=u1").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    assert_eq!(bytes, br#"{"items":[{"video_id":"v1"}]}"#);
}
