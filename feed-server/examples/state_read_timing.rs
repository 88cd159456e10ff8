//! Times reading a heavy user's state from Redis (BENCHMARKS.md, "A heavy user's state"): the
//! bench world's most active user has ~4,500 affinity fields (creators and tags), and every
//! ranking of that user reads and decodes them all.
//!
//! `cargo run --release -p feed-server --example state_read_timing` starts its own
//! `redis-server` (on `PATH`) on a free loopback port, writes one user's affinities (4,000
//! creators and 40 tags, each added at two times a day apart, and a tenth of them also 64
//! half-lives and a day earlier, in the era before), then reads the state 2,000 times on a
//! single-threaded runtime and prints this process's CPU per read (the client's work: reply
//! parsing and decoding; Redis's own CPU is not in it) and a checksum of the decoded affinities,
//! equal between two versions that agree. It does so for each `--user-sums-format`: the
//! affinities as hash fields (`fields`), then as one user's sums log (`log`).

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Duration;

use feed_server::learning::{AFFINITY_HALF_LIFE_SECS, DecayedAdd, Deltas};
use feed_server::store::redis_conn::RedisTarget;
use feed_server::store::redis_store::RedisSettings;
use feed_server::store::user_sums::UserSumsFormat;
use feed_server::store::{IngestMetrics, IngestSettings, RedisStore, Store};

const CREATORS: usize = 4_000;
const TAGS: usize = 40;
const READS: usize = 2_000;

/// This process's user + system CPU time so far, in seconds (`/proc/self/stat`, clock ticks of
/// 10 ms: the reads run long enough for that to be fine).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    (tick(11) + tick(12)) / 100.0
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _redis = Redis(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()?,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (format, name) in [
        (UserSumsFormat::Fields, "fields"),
        (UserSumsFormat::Log, "log"),
    ] {
        runtime.block_on(time_reads(port, format, name))?;
    }
    Ok(())
}

/// Writes the heavy user's affinities in `format` and times reading them back.
async fn time_reads(port: u16, format: UserSumsFormat, name: &str) -> anyhow::Result<()> {
    let store = RedisStore::connect(&RedisSettings {
        target: RedisTarget::Single(format!("redis://127.0.0.1:{port}/").into()),
        prefix: format!("timing-{name}:"),
        timeout: Duration::from_secs(5),
        shared_cache: Duration::from_secs(1),
    })?
    .with_ingest(
        IngestSettings {
            user_sums_format: format,
            ..IngestSettings::default()
        },
        IngestMetrics::unregistered(),
    );
    let now = chrono::Utc::now().timestamp() as f64;
    let mut adds = Vec::new();
    let fields = (0..CREATORS)
        .map(|c| format!("c:creator{c}"))
        .chain((0..TAGS).map(|t| format!("t:t{t}")));
    for (i, field) in fields.enumerate() {
        let weight = 1.0 + (i % 7) as f64;
        for ts in [now - 86_400.0, now] {
            adds.push(DecayedAdd {
                field: field.clone(),
                weight,
                ts,
            });
        }
        if i % 10 == 0 {
            let era_before = now - 64.0 * AFFINITY_HALF_LIFE_SECS - 86_400.0;
            adds.push(DecayedAdd {
                field,
                weight,
                ts: era_before,
            });
        }
    }
    let mut deltas = Deltas::default();
    deltas.affinity.insert("heavy".into(), adds);
    // Redis may still be starting: retry the first write for a few seconds.
    let mut tries = 0;
    while let Err(e) = store.apply(&deltas).await {
        tries += 1;
        anyhow::ensure!(tries < 50, "cannot write to redis-server: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let state = store.user_state("heavy", now).await?;
    let checksum: f64 = state
        .affinity
        .creators
        .values()
        .chain(state.affinity.tags.values())
        .map(|d| d.value_at(now, AFFINITY_HALF_LIFE_SECS))
        .sum();
    let fields = state.affinity.creators.len() + state.affinity.tags.len();
    let start = cpu_secs();
    for _ in 0..READS {
        let state = store.user_state("heavy", now).await?;
        anyhow::ensure!(state.affinity.creators.len() == CREATORS, "short read");
    }
    let per_read = (cpu_secs() - start) / READS as f64;
    println!(
        "{name}: {fields} affinity fields; {READS} reads: {:.0} µs of this process's CPU per read; checksum {checksum:.6}",
        per_read * 1e6
    );
    Ok(())
}
