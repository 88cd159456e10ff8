//! A real Prometheus process scraping a tiny exporter the test controls.
//!
//! The exporter serves counters that grow at the rates the test sets (value = rate × seconds
//! since the exporter started, or since the series' own start), so every `rate()` Prometheus computes is known in advance.
//! Prometheus (Debian's `prometheus` binary) runs on a free loopback port with a temporary
//! directory and scrapes every second; it is killed when the harness is dropped.
//!
//! [`Harness::start_secure`] puts Prometheus' own web server behind TLS and basic auth
//! (`--web.config.file`): a CA and a server certificate for 127.0.0.1 made with the openssl
//! CLI, the password bcrypt-hashed. Its scrape of the exporter is unchanged (plain HTTP).

#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use feedroll_operator::analysis::PrometheusConnection;
use feedroll_operator::analysis::connection::{Credentials, Sensitive, Verify};

/// One exported series: `name{labels}` growing at `per_second`.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub per_second: f64,
    /// Value at start (counters that never move have rate 0).
    pub offset: f64,
    /// Seconds after the exporter started before the series is first exported (it starts at
    /// `offset` then).
    pub from_secs: f64,
}

impl Series {
    /// This series, first exported `after` the exporter started.
    pub fn starting_after(self, after: Duration) -> Series {
        Series {
            from_secs: after.as_secs_f64(),
            ..self
        }
    }
}

/// Series builder: `series("feed_http_requests_total", &[("status", "200")], 10.0)`.
pub fn series(name: &str, labels: &[(&str, &str)], per_second: f64) -> Series {
    Series {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        per_second,
        offset: 0.0,
        from_secs: 0.0,
    }
}

/// A latency histogram where every observation falls in the bucket ending at `upper`, at
/// `per_second` observations a second.
pub fn histogram(labels: &[(&str, &str)], upper: f64, per_second: f64) -> Vec<Series> {
    let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
    let mut out = Vec::new();
    for b in bounds {
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        let le = b.to_string();
        l.push(("le", &le));
        out.push(series(
            "feed_http_request_duration_seconds_bucket",
            &l,
            if b >= upper { per_second } else { 0.0 },
        ));
    }
    let mut l: Vec<(&str, &str)> = labels.to_vec();
    l.push(("le", "+Inf"));
    out.push(series(
        "feed_http_request_duration_seconds_bucket",
        &l,
        per_second,
    ));
    out.push(series(
        "feed_http_request_duration_seconds_count",
        labels,
        per_second,
    ));
    out.push(series(
        "feed_http_request_duration_seconds_sum",
        labels,
        per_second * upper,
    ));
    out
}

#[derive(Clone)]
struct Exporter {
    started: Instant,
    series: Arc<Mutex<Vec<Series>>>,
}

async fn metrics(State(e): State<Exporter>) -> String {
    let elapsed = e.started.elapsed().as_secs_f64();
    let series = e.series.lock().map(|s| s.clone()).unwrap_or_default();
    let mut out = String::new();
    for s in series.into_iter().filter(|s| s.from_secs <= elapsed) {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        out.push_str(&format!(
            "{}{{{}}} {}\n",
            s.name,
            labels.join(","),
            s.offset + s.per_second * (elapsed - s.from_secs)
        ));
    }
    out
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The TLS and basic-auth side of a [`Harness::start_secure`] Prometheus.
pub struct Secure {
    /// PEM of the CA that signed Prometheus' certificate.
    pub ca_file: PathBuf,
    /// PEM of another CA (signed nothing here).
    pub wrong_ca_file: PathBuf,
    /// The one basic-auth user.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// User and password of [`Harness::start_secure`].
pub const USER: &str = "feedroll";
/// See [`USER`].
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs `openssl` in `dir` with whitespace-separated `args`.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .output()
        .expect("run openssl (install it with `make deps`)");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key, unencrypted.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A self-signed CA `name.pem` / `name.key` in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &format!(
            "req -x509 {NEW_KEY} -keyout {name}.key -out {name}.pem -days 2 -subj /CN=feedroll-test-{name}"
        ),
    );
    dir.join(format!("{name}.pem"))
}

/// CA, wrong CA, server certificate for 127.0.0.1 and the web config in `dir`.
fn make_web_config(dir: &Path) -> (PathBuf, Secure) {
    let ca_file = make_ca(dir, "ca");
    let wrong_ca_file = make_ca(dir, "other-ca");
    openssl(
        dir,
        &format!("req {NEW_KEY} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext",
    );
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {USER}: '{hash}'\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    )
    .expect("write web.yml");
    (
        web,
        Secure {
            ca_file,
            wrong_ca_file,
            username: USER.to_owned(),
            password: PASSWORD.to_owned(),
        },
    )
}

/// Exporter + Prometheus. Dropping it kills Prometheus and removes its directory.
pub struct Harness {
    pub url: String,
    /// Set by [`Harness::start_secure`].
    pub secure: Option<Secure>,
    series: Arc<Mutex<Vec<Series>>>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Starts the exporter and a Prometheus scraping it every second, with `namespace="test"`
    /// added to every series (as Kubernetes service discovery would).
    pub async fn start(series: Vec<Series>) -> Harness {
        Self::launch(series, false).await
    }

    /// [`Harness::start`], with Prometheus' web server behind TLS (a test CA) and basic auth
    /// ([`USER`], [`PASSWORD`]); `url` is `https://127.0.0.1:PORT`.
    pub async fn start_secure(series: Vec<Series>) -> Harness {
        Self::launch(series, true).await
    }

    async fn launch(series: Vec<Series>, secure: bool) -> Harness {
        let shared = Arc::new(Mutex::new(series));
        let exporter = Exporter {
            started: Instant::now(),
            series: shared.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind exporter");
        let exporter_addr = listener.local_addr().expect("exporter address");
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(exporter);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: feed\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{exporter_addr}']\n        labels:\n          namespace: test\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let (web, secure) = if secure {
            let (web, s) = make_web_config(dir.path());
            (Some(web), Some(s))
        } else {
            (None, None)
        };
        let child = Command::new("prometheus")
            .args(web.map(|w| format!("--web.config.file={}", w.display())))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (install it with `make deps`)");
        let scheme = if secure.is_some() { "https" } else { "http" };
        let harness = Harness {
            url: format!("{scheme}://127.0.0.1:{port}"),
            secure,
            series: shared,
            child: Some(child),
            _dir: dir,
            server,
        };
        harness.wait_ready().await;
        harness
    }

    /// The connection with the right CA and credentials (plain for [`Harness::start`]).
    pub fn connection(&self) -> PrometheusConnection {
        let mut c = PrometheusConnection::plain(&self.url, Duration::from_secs(5));
        if let Some(s) = &self.secure {
            c.credentials = Credentials::Basic {
                username: Sensitive::new(s.username.clone()),
                password: Sensitive::new(s.password.clone()),
            };
            c.verify = Verify::CaBundle(std::fs::read(&s.ca_file).expect("read the CA"));
        }
        c
    }

    async fn wait_ready(&self) {
        let http = self.connection().http_client().expect("HTTP client");
        let client = prometheus_http_query::Client::from(http, &self.url).expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client.is_server_ready().await.unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus at {} not ready after 30s", self.url);
    }

    /// Replaces the exported series.
    pub fn set_series(&self, series: Vec<Series>) {
        if let Ok(mut s) = self.series.lock() {
            *s = series;
        }
    }

    /// Kills Prometheus now (the exporter keeps running).
    pub fn stop_prometheus(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_prometheus();
        self.server.abort();
    }
}
