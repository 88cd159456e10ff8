//! Load drivers.
//!
//! * [`closed_loop`]: `conns` connections, each sends its next request as soon as the previous
//!   answer arrived (maximum throughput; latency is that of a saturated server).
//! * [`open_loop`]: a fixed arrival rate. Request `k` is *due* at `start + k / rate` and is sent
//!   on connection `k mod conns`; its latency is measured from the time it was due, not from
//!   when it could be sent, so a stalled server is charged for every request queued behind the
//!   stall (the coordinated-omission correction of wrk2). Requests still unsent after the grace
//!   period are counted as errors with the latency they had accumulated by then.
//! * [`run_all`]: sends a fixed list of requests over `conns` connections (data loading).
//!
//! The `_observed` variants also hand every answer's status, warm-up included, to an observer
//! with the request's [`Req::tag`] (what the server did with each request, e.g. which users'
//! feeds it answered and so cached).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::client::{ClientError, Conn, Req};
use crate::stats::{Summary, summarize};

/// Why a driver failed as a whole.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The target could not be reached at all.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A request answered with an error status where every request must succeed.
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
    /// A worker task panicked or was cancelled.
    #[error("worker failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What a driver observed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Throughput and latency of the measured window.
    pub summary: Summary,
    /// Bytes of response bodies received in the measured window.
    pub body_bytes: u64,
    /// Requests answered over the whole run, warm-up included (for CPU per request).
    pub sent: u64,
    /// Latency of the measured requests by HTTP status (0 = no answer): e.g. the 503s a
    /// shedding server refused apart from the 200s it served.
    pub by_status: BTreeMap<u16, Summary>,
}

#[derive(Default)]
struct WorkerLog {
    micros: Vec<u64>,
    /// Status of each `micros` sample (0 = no answer).
    statuses: Vec<u16>,
    ok: u64,
    errors: u64,
    bytes: u64,
    sent: u64,
}

impl WorkerLog {
    fn merge(logs: Vec<WorkerLog>) -> WorkerLog {
        let mut all = WorkerLog::default();
        for l in logs {
            all.micros.extend(l.micros);
            all.statuses.extend(l.statuses);
            all.ok += l.ok;
            all.errors += l.errors;
            all.bytes += l.bytes;
            all.sent += l.sent;
        }
        all
    }
}

/// Waits for the workers and summarises their merged logs over the measured `duration`.
async fn outcome(
    tasks: Vec<tokio::task::JoinHandle<WorkerLog>>,
    duration: Duration,
) -> Result<Outcome, DriverError> {
    let mut logs = Vec::with_capacity(tasks.len());
    for t in tasks {
        logs.push(t.await?);
    }
    let log = WorkerLog::merge(logs);
    let seconds = duration.as_secs_f64();
    Ok(Outcome {
        by_status: by_status(&log.micros, &log.statuses, seconds),
        summary: summarize(log.micros, log.ok, log.errors, seconds),
        body_bytes: log.bytes,
        sent: log.sent,
    })
}

/// Summaries of the samples grouped by status (2xx counted ok, others errors).
fn by_status(micros: &[u64], statuses: &[u16], seconds: f64) -> BTreeMap<u16, Summary> {
    let mut groups: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for (us, status) in micros.iter().zip(statuses) {
        groups.entry(*status).or_default().push(*us);
    }
    groups
        .into_iter()
        .map(|(status, samples)| {
            let n = samples.len() as u64;
            let (ok, errors) = if (200..300).contains(&status) {
                (n, 0)
            } else {
                (0, n)
            };
            (status, summarize(samples, ok, errors, seconds))
        })
        .collect()
}

async fn connect_retry(addr: SocketAddr, deadline: Instant) -> Option<Conn> {
    loop {
        if let Ok(c) = Conn::connect(addr).await {
            return Some(c);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closed loop for `warmup + duration`; only requests started after the warm-up are measured.
/// `next(k)` builds the `k`-th request (k counts over all connections).
pub async fn closed_loop<F>(
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    next: F,
) -> Result<Outcome, DriverError>
where
    F: Fn(u64) -> Req + Send + Sync + 'static,
{
    closed_loop_observed(addr, conns, warmup, duration, next, |_, _| {}).await
}

/// [`closed_loop`], calling `answered(tag, status)` for every request the server answered.
pub async fn closed_loop_observed<F, A>(
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    next: F,
    answered: A,
) -> Result<Outcome, DriverError>
where
    F: Fn(u64) -> Req + Send + Sync + 'static,
    A: Fn(u64, u16) + Send + Sync + 'static,
{
    // Fail fast when the target is down.
    drop(Conn::connect(addr).await?);
    let next = Arc::new(next);
    let answered = Arc::new(answered);
    let seq = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns.max(1) {
        let next = next.clone();
        let answered = answered.clone();
        let seq = seq.clone();
        tasks.push(tokio::spawn(async move {
            let mut log = WorkerLog::default();
            let mut conn = connect_retry(addr, end).await;
            while let Some(c) = conn.as_mut() {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let req = next(seq.fetch_add(1, Ordering::Relaxed));
                let result = c.send(&req).await;
                let measured = t0 >= measure_from;
                let failed = match result {
                    Ok(r) => {
                        answered(req.tag, r.status);
                        log.sent += 1;
                        if measured {
                            log.micros.push(t0.elapsed().as_micros() as u64);
                            log.statuses.push(r.status);
                            log.bytes += r.body.len() as u64;
                            if (200..300).contains(&r.status) {
                                log.ok += 1;
                            } else {
                                log.errors += 1;
                            }
                        }
                        false
                    }
                    Err(_) => {
                        if measured {
                            log.errors += 1;
                        }
                        true
                    }
                };
                if failed {
                    conn = connect_retry(addr, end).await;
                }
            }
            log
        }));
    }
    outcome(tasks, duration).await
}

/// Open loop at `rate` requests per second for `warmup + duration` over `conns` connections;
/// only requests due after the warm-up are measured. Latency runs from the due time.
pub async fn open_loop<F>(
    addr: SocketAddr,
    rate: f64,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    next: F,
) -> Result<Outcome, DriverError>
where
    F: Fn(u64) -> Req + Send + Sync + 'static,
{
    open_loop_observed(addr, rate, conns, warmup, duration, next, |_, _| {}).await
}

/// [`open_loop`], calling `answered(tag, status)` for every request the server answered.
pub async fn open_loop_observed<F, A>(
    addr: SocketAddr,
    rate: f64,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    next: F,
    answered: A,
) -> Result<Outcome, DriverError>
where
    F: Fn(u64) -> Req + Send + Sync + 'static,
    A: Fn(u64, u16) + Send + Sync + 'static,
{
    drop(Conn::connect(addr).await?);
    let next = Arc::new(next);
    let answered = Arc::new(answered);
    let conns = conns.max(1);
    let total = ((warmup + duration).as_secs_f64() * rate).floor() as u64;
    let warm_count = (warmup.as_secs_f64() * rate).floor() as u64;
    let grace = Duration::from_secs(10);
    // Start a little in the future so that every connection is open before the first request.
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(Conn::connect(addr).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let cutoff = start + warmup + duration + grace;
    let mut tasks = Vec::with_capacity(conns);
    for (w, conn) in opened.into_iter().enumerate() {
        let next = next.clone();
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let mut log = WorkerLog::default();
            let mut conn = Some(conn);
            let mut k = w as u64;
            while k < total {
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                let measured = k >= warm_count;
                tokio::time::sleep_until(due.into()).await;
                if Instant::now() >= cutoff {
                    // Never sent: charge the wait it had already suffered.
                    if measured {
                        log.micros.push(due.elapsed().as_micros() as u64);
                        log.statuses.push(0);
                        log.errors += 1;
                    }
                    k += conns as u64;
                    continue;
                }
                if conn.is_none() {
                    conn = connect_retry(addr, cutoff).await;
                }
                let req = next(k);
                let result = match conn.as_mut() {
                    Some(c) => c.send(&req).await,
                    None => Err(ClientError::Connect {
                        addr,
                        source: std::io::Error::other("cannot reconnect"),
                    }),
                };
                if let Ok(r) = &result {
                    answered(req.tag, r.status);
                }
                if measured {
                    log.micros.push(due.elapsed().as_micros() as u64);
                    log.statuses.push(result.as_ref().map_or(0, |r| r.status));
                }
                match result {
                    Ok(r) => {
                        log.sent += 1;
                        if measured {
                            log.bytes += r.body.len() as u64;
                            if (200..300).contains(&r.status) {
                                log.ok += 1;
                            } else {
                                log.errors += 1;
                            }
                        }
                    }
                    Err(_) => {
                        if measured {
                            log.errors += 1;
                        }
                        conn = None;
                    }
                }
                k += conns as u64;
            }
            log
        }));
    }
    outcome(tasks, duration).await
}

/// Most times [`run_all`] resends a request the server shed (503 with `Retry-After`).
const MAX_RETRIES: u32 = 10;

/// Sends every request of `reqs` once over `conns` connections; a request shed with 503 and
/// `Retry-After` is resent after that wait (as a well-behaved client does, at most
/// [`MAX_RETRIES`] times); any other non-2xx answer fails the whole run (used for loading data
/// and priming caches, where every request must land).
pub async fn run_all(
    addr: SocketAddr,
    conns: usize,
    reqs: Vec<Req>,
) -> Result<Outcome, DriverError> {
    let reqs = Arc::new(reqs);
    let index = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns.max(1) {
        let reqs = reqs.clone();
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            let mut log = WorkerLog::default();
            let mut conn = Conn::connect(addr).await?;
            loop {
                let i = index.fetch_add(1, Ordering::Relaxed);
                let Some(req) = reqs.get(i) else { break };
                let t0 = Instant::now();
                let mut reply = conn.send(req).await?;
                let mut retries = 0;
                while let (503, Some(secs)) = (reply.status, reply.retry_after)
                    && retries < MAX_RETRIES
                {
                    retries += 1;
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    reply = conn.send(req).await?;
                }
                if !(200..300).contains(&reply.status) {
                    return Err(DriverError::Status {
                        method: req.method.to_string(),
                        path: req.path.clone(),
                        status: reply.status,
                        body: String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                            .into_owned(),
                    });
                }
                log.micros.push(t0.elapsed().as_micros() as u64);
                log.statuses.push(reply.status);
                log.ok += 1;
                log.sent += 1;
                log.bytes += reply.body.len() as u64;
            }
            Ok::<_, DriverError>(log)
        }));
    }
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await??);
    }
    let log = WorkerLog::merge(logs);
    let seconds = started.elapsed().as_secs_f64();
    Ok(Outcome {
        by_status: by_status(&log.micros, &log.statuses, seconds),
        summary: summarize(log.micros, log.ok, log.errors, seconds),
        body_bytes: log.bytes,
        sent: log.sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summarised_by_status() {
        let groups = by_status(&[1000, 2000, 50_000, 3000], &[503, 503, 200, 0], 2.0);
        let shed = &groups[&503];
        assert_eq!((shed.ok, shed.errors, shed.max_ms), (0, 2, 2.0));
        let served = &groups[&200];
        assert_eq!((served.ok, served.errors, served.rps), (1, 0, 0.5));
        assert_eq!(groups[&0].errors, 1, "no answer");
        assert_eq!(groups.len(), 3);
    }

    /// A loopback server answering `/ok/{n}` with 200 and anything else with 503.
    async fn server() -> SocketAddr {
        use axum::http::{StatusCode, Uri};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(|uri: Uri| async move {
            if uri.path().starts_with("/ok/") {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// The tags the observer saw, split by status.
    type Seen = Arc<std::sync::Mutex<Vec<(u64, u16)>>>;

    fn split(seen: &Seen) -> (Vec<u64>, Vec<u64>) {
        let seen = seen.lock().expect("lock").clone();
        let by = |ok: bool| {
            let mut tags: Vec<u64> = seen
                .iter()
                .filter(|(_, s)| (*s == 200) == ok)
                .map(|(t, _)| *t)
                .collect();
            tags.sort_unstable();
            tags.dedup();
            tags
        };
        (by(true), by(false))
    }

    /// Request `k`: for tag `k mod 4`, served when the tag is even, shed when odd.
    fn request(k: u64) -> Req {
        let tag = k % 4;
        let path = if tag.is_multiple_of(2) {
            "/ok/"
        } else {
            "/shed/"
        };
        Req::get(format!("{path}{tag}")).tagged(tag)
    }

    #[tokio::test]
    async fn observers_see_every_answer_with_its_tag() {
        let addr = server().await;
        let ms = Duration::from_millis;

        let seen: Seen = Arc::default();
        let log = seen.clone();
        let out = closed_loop_observed(addr, 2, ms(20), ms(80), request, move |tag, status| {
            log.lock().expect("lock").push((tag, status));
        })
        .await
        .expect("closed loop");
        assert_eq!(split(&seen), (vec![0, 2], vec![1, 3]));
        // Warm-up answers are observed too: every answer, not only the measured ones.
        assert_eq!(seen.lock().expect("lock").len() as u64, out.sent);

        let seen: Seen = Arc::default();
        let log = seen.clone();
        let out = open_loop_observed(addr, 200.0, 2, ms(20), ms(80), request, move |tag, s| {
            log.lock().expect("lock").push((tag, s));
        })
        .await
        .expect("open loop");
        assert_eq!(split(&seen), (vec![0, 2], vec![1, 3]));
        assert_eq!(seen.lock().expect("lock").len() as u64, out.sent);
    }
}
