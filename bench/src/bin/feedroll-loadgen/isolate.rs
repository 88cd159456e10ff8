//! `feedroll-loadgen keys` and `feedroll-loadgen isolation`: the key-isolation phase (issue 14),
//! run by `scripts/bench.sh` against a feed-server started with `--api-keys`.
//!
//! 1. *cached feed (auth)*: the cached-feed phase of `run` again, every request with the victim's
//!    key, for the cost of authentication against the open-mode phase of the same bench run;
//! 2. *victim alone*: the victim key at a steady modest rate (open loop) over primed users;
//! 3. *victim + flood*: the same, while the flooder key sends many times its limit from several
//!    connections (open loop).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use feedroll_bench::client::{Req, bearer};
use feedroll_bench::driver::{self, Outcome};
use feedroll_bench::isolation::{
    self, CpuWindow, Flood, Isolation, MAX_P99_RATIO, MAX_REFUSED_P99_MS,
};
use feedroll_bench::keys::{self, BenchKey, Limit};
use feedroll_bench::procfs;
use feedroll_bench::stats::Summary;
use feedroll_bench::zipf::Zipf;
use serde::Serialize;

use super::{Goal, feed_path, goals_table, secs, verdict};

/// Name of the key that floods (also its `key` label in feed-server's metrics).
const FLOODER: &str = "bench-flooder";
/// Name of the key whose latency is watched.
const VICTIM: &str = "bench-victim";

/// `feedroll-loadgen keys`: writes the keys file and the secrets.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The feed-server `--api-keys` file to write (digests only).
    #[arg(long)]
    file: PathBuf,
    /// Where the keys themselves go (JSON, for `isolation --secrets`; keep it private).
    #[arg(long)]
    secrets: PathBuf,
    /// The flooder's limit, requests/s (its burst is one second's worth).
    #[arg(long, default_value_t = 50.0)]
    flood_limit: f64,
    /// The victim's limit, requests/s (far above what it sends).
    #[arg(long, default_value_t = 100_000.0)]
    victim_limit: f64,
}

/// Generates two random keys: the keys file holds their digests, `secrets` the keys.
pub fn write_keys(args: &KeysArgs) -> anyhow::Result<()> {
    let limit = |rps: f64| Limit {
        requests_per_second: rps,
        burst: (rps.ceil() as u32).max(1),
    };
    let mut rng = rand::rng();
    let generated = [
        BenchKey::generate(&mut rng, FLOODER, limit(args.flood_limit)),
        BenchKey::generate(&mut rng, VICTIM, limit(args.victim_limit)),
    ];
    write_private(&args.secrets, &serde_json::to_vec_pretty(&generated)?)?;
    std::fs::write(&args.file, keys::keys_file(&generated))
        .with_context(|| format!("writing {}", args.file.display()))
}

/// Writes a file readable by its owner only (it holds keys).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// `feedroll-loadgen isolation`.
#[derive(Debug, Args)]
pub struct IsolationArgs {
    /// feed-server address (started with the `--api-keys` file of `keys`).
    #[arg(long)]
    pub url: String,
    /// feed-server PID (CPU per request).
    #[arg(long)]
    server_pid: u32,
    /// The secrets written by `keys`.
    #[arg(long)]
    secrets: PathBuf,
    /// `results.json` of the open-mode `run` of the same bench (for the cost of authentication).
    #[arg(long)]
    open_results: Option<PathBuf>,
    /// Primed users the requests go to (Zipf), as `run --hot-users`.
    #[arg(long, default_value_t = 1_000)]
    hot_users: usize,
    /// Zipf exponent over the hot users, as `run --zipf-s`.
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// Connections of the closed-loop cached phase with a key, as `run --conns`.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Unmeasured lead-in of each phase, seconds.
    #[arg(long, default_value_t = 3.0)]
    warmup_secs: f64,
    /// Measured window of each phase, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// The victim's steady rate, req/s (open loop).
    #[arg(long, default_value_t = 200.0)]
    victim_rate: f64,
    /// The victim's connections.
    #[arg(long, default_value_t = 4)]
    victim_conns: usize,
    /// The flooder's offered rate, req/s (open loop; its limit is in the keys file).
    #[arg(long, default_value_t = 2_000.0)]
    flood_rate: f64,
    /// The flooder's connections.
    #[arg(long, default_value_t = 8)]
    flood_conns: usize,
    /// Results as JSON.
    #[arg(long)]
    out: PathBuf,
    /// Results as Markdown.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Fail unless every phase produced numbers (the smoke test; asserts no timing).
    #[arg(long)]
    check: bool,
}

/// What authentication costs on the cached path: the same phase open and with a key.
#[derive(Debug, Default, Serialize)]
struct AuthCost {
    /// The cached phase with the victim's key.
    auth: Summary,
    /// Server CPU µs per request, with a key.
    auth_cpu_us_per_req: f64,
    /// The open-mode cached phase of the same bench run, if its results were given.
    open_rps: Option<f64>,
    /// Its server CPU µs per request.
    open_cpu_us_per_req: Option<f64>,
}

/// Results of the isolation run.
#[derive(Debug, Serialize)]
struct IsolationResults {
    date: String,
    auth_cost: AuthCost,
    isolation: Isolation,
    goals: Vec<Goal>,
}

fn read_secrets(path: &Path) -> anyhow::Result<(BenchKey, BenchKey)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let keys: Vec<BenchKey> =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let find = |name: &str| {
        keys.iter()
            .find(|k| k.name == name)
            .cloned()
            .with_context(|| format!("{} has no key {name:?}", path.display()))
    };
    Ok((find(FLOODER)?, find(VICTIM)?))
}

/// The open-mode cached phase's req/s and server CPU µs/req from `run`'s results.
fn open_cached(path: &Path) -> anyhow::Result<(f64, f64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    let phase = v["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "cached feed"))
        .with_context(|| format!("{} has no cached feed phase", path.display()))?;
    let rps = phase["summary"]["rps"].as_f64().unwrap_or(0.0);
    let cpu = phase["server_cpu_us_per_req"].as_f64().unwrap_or(0.0);
    Ok((rps, cpu))
}

/// Server CPU over a window that started at `(cpu, at)`.
fn window(pid: u32, start: (f64, Instant)) -> CpuWindow {
    CpuWindow {
        cpu_secs: procfs::cpu_seconds(pid).unwrap_or(0.0) - start.0,
        wall_secs: start.1.elapsed().as_secs_f64(),
    }
}

fn mark(pid: u32) -> (f64, Instant) {
    (procfs::cpu_seconds(pid).unwrap_or(0.0), Instant::now())
}

fn log(name: &str, s: &Summary) {
    eprintln!(
        "loadgen: {name:<22} {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
        s.rps, s.p50_ms, s.p99_ms, s.errors
    );
}

/// Runs the three phases and writes the results.
pub async fn run(args: IsolationArgs, server: SocketAddr) -> anyhow::Result<()> {
    let (flooder, victim) = read_secrets(&args.secrets)?;
    let (victim_auth, flooder_auth) = (bearer(&victim.secret), bearer(&flooder.secret));
    let hot = args.hot_users.max(1);
    let zipf = Arc::new(Zipf::new(hot, args.zipf_s));
    let request = |auth: Arc<str>| {
        let z = zipf.clone();
        move |_k: u64| {
            Req::get(feed_path(z.sample(&mut rand::rng()))).with_authorization(auth.clone())
        }
    };
    let (warm, dur) = (secs(args.warmup_secs), secs(args.duration_secs));

    let prime = (0..hot)
        .map(|r| Req::get(feed_path(r)).with_authorization(victim_auth.clone()))
        .collect();
    driver::run_all(server, 8, prime)
        .await
        .context("priming the hot users with the victim's key")?;

    // (1) The cached phase with a key.
    let start = mark(args.server_pid);
    let out = driver::closed_loop(server, args.conns, warm, dur, request(victim_auth.clone()))
        .await
        .context("cached phase with a key")?;
    let cpu = window(args.server_pid, start);
    log("cached feed (auth)", &out.summary);
    let mut auth_cost = AuthCost {
        auth_cpu_us_per_req: cpu.cpu_secs * 1e6 / out.sent.max(1) as f64,
        auth: out.summary,
        ..AuthCost::default()
    };
    if let Some(path) = &args.open_results {
        match open_cached(path) {
            Ok((rps, cpu)) => {
                auth_cost.open_rps = Some(rps);
                auth_cost.open_cpu_us_per_req = Some(cpu);
            }
            Err(e) => eprintln!("loadgen: no open-mode cached phase to compare with: {e:#}"),
        }
    }

    // (2) The victim alone.
    let victim_phase = || {
        driver::open_loop(
            server,
            args.victim_rate,
            args.victim_conns,
            warm,
            dur,
            request(victim_auth.clone()),
        )
    };
    let start = mark(args.server_pid);
    let alone = victim_phase().await.context("victim alone")?;
    let cpu_alone = window(args.server_pid, start);
    log("victim alone", &alone.summary);

    // (3) The victim beside the flood.
    let start = mark(args.server_pid);
    let flood_phase = driver::open_loop(
        server,
        args.flood_rate,
        args.flood_conns,
        warm,
        dur,
        request(flooder_auth),
    );
    let (flooded, flood_out): (Outcome, Outcome) =
        tokio::try_join!(victim_phase(), flood_phase).context("victim beside the flood")?;
    let cpu_flooded = window(args.server_pid, start);
    log("victim + flood", &flooded.summary);
    log("flood", &flood_out.summary);

    let flood = Flood {
        rate: args.flood_rate,
        limit: flooder.limit.requests_per_second,
    };
    let iso = isolation::isolation(
        &alone,
        &flooded,
        &flood_out,
        flood,
        (cpu_alone, cpu_flooded),
    );
    let results = IsolationResults {
        date: Utc::now().to_rfc3339(),
        goals: goals(&iso, &auth_cost),
        auth_cost,
        isolation: iso,
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("{}", args.out.display()))?;
    let md = markdown(&results, &args);
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("{}", path.display()))?;
    }
    println!("{md}");
    if args.check {
        check(&results)?;
    }
    Ok(())
}

fn goals(i: &Isolation, auth: &AuthCost) -> Vec<Goal> {
    let mut goals = vec![
        Goal {
            goal: format!(
                "victim key p99 beside a flood at {:.0}× another key's limit",
                i.flood_rate / i.flood_limit.max(f64::MIN_POSITIVE)
            ),
            target: format!("≤ {MAX_P99_RATIO}× its p99 alone, no error"),
            measured: format!(
                "{:.2}× ({:.2} ms vs {:.2} ms alone; {} errors)",
                i.p99_ratio,
                i.victim_flooded.p99_ms,
                i.victim_alone.p99_ms,
                i.victim_flooded.errors
            ),
            met: i.victim_unaffected(),
        },
        Goal {
            goal: "rate-limited (429) answers p99".into(),
            target: format!("< {MAX_REFUSED_P99_MS} ms"),
            measured: format!(
                "{:.2} ms ({:.1}% of the flood refused)",
                i.refused.p99_ms,
                i.refused_share * 100.0
            ),
            met: i.refusals_cheap(),
        },
    ];
    if let Some(open) = auth.open_cpu_us_per_req {
        goals.push(Goal {
            goal: "authentication cost, cached feed (informational)".into(),
            target: "reported".into(),
            measured: format!(
                "{:+.0} µs server CPU/req ({:.0} with a key vs {open:.0} open)",
                auth.auth_cpu_us_per_req - open,
                auth.auth_cpu_us_per_req
            ),
            met: true,
        });
    }
    goals
}

fn markdown(r: &IsolationResults, args: &IsolationArgs) -> String {
    let i = &r.isolation;
    let a = &r.auth_cost;
    let opt = |v: Option<f64>| v.map_or_else(|| "?".into(), |v| format!("{v:.0}"));
    let mut s = format!(
        "\nKey isolation ({}): victim {:.0} req/s open loop over {} conns; flooder limited to \
         {:.0} req/s, offering {:.0} req/s over {} conns; cached feeds of {} primed users.\n\n",
        r.date,
        args.victim_rate,
        args.victim_conns,
        i.flood_limit,
        i.flood_rate,
        args.flood_conns,
        args.hot_users
    );
    s.push_str("| key isolation | victim p50 / p99 ms alone | victim p50 / p99 ms beside the flood | p99 ratio | victim errors | flood refused (429) | 429 p50 / p99 ms | flood admitted | flood other | server CPU µs per flood request |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    s.push_str(&format!(
        "| cached feed | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}× | {} | {:.1}% | {:.2} / {:.2} | {} | {} | {} |\n",
        i.victim_alone.p50_ms,
        i.victim_alone.p99_ms,
        i.victim_flooded.p50_ms,
        i.victim_flooded.p99_ms,
        i.p99_ratio,
        i.victim_flooded.errors,
        i.refused_share * 100.0,
        i.refused.p50_ms,
        i.refused.p99_ms,
        i.flood_admitted,
        i.flood_other,
        opt(i.server_cpu_us_per_flood_req)
    ));
    s.push_str("\n| authentication | req/s | server CPU µs/req |\n| --- | ---: | ---: |\n");
    s.push_str(&format!(
        "| cached feed, open mode (`run`) | {} | {} |\n| cached feed, `Authorization: Bearer` | {:.0} | {:.0} |\n",
        opt(a.open_rps),
        opt(a.open_cpu_us_per_req),
        a.auth.rps,
        a.auth_cpu_us_per_req
    ));
    s.push('\n');
    s.push_str(&goals_table(&r.goals));
    s
}

/// Smoke check: every phase produced numbers (no timing asserted).
fn check(r: &IsolationResults) -> anyhow::Result<()> {
    let i = &r.isolation;
    let mut problems = Vec::new();
    for (name, s) in [
        ("cached feed (auth)", &r.auth_cost.auth),
        ("victim alone", &i.victim_alone),
        ("victim + flood", &i.victim_flooded),
    ] {
        if s.ok == 0 || s.p50_ms <= 0.0 {
            problems.push(format!("phase {name:?} produced no numbers"));
        }
    }
    if i.refused.errors == 0 || i.refused.p50_ms <= 0.0 {
        problems.push("the flood was never refused with 429".into());
    }
    verdict("isolation check", problems)
}
