//! A redis-server that speaks only TLS (`--port 0 --tls-port`), with certificates the test makes
//! with the openssl CLI (a CA, a server certificate for 127.0.0.1/localhost, a client
//! certificate, and a second CA that signed none of them) and an ACL file: user [`USER`] with
//! [`PASSWORD`] may touch `feed:*` keys only, and the default user is off, so a client without
//! credentials is refused. `redis-cli --tls` is the second, independent client of the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use tempfile::TempDir;

use super::{free_port, run_redis};

/// The ACL user of the feed-server.
pub const USER: &str = "feed";
/// Its password.
pub const PASSWORD: &str = "s3cret-redis-pw";

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

/// `name.pem`/`name.key` signed by `ca.pem` with the extensions `ext`.
fn issue(dir: &Path, name: &str, ext: &str) {
    openssl(
        dir,
        &format!("req {NEW_KEY} -keyout {name}.key -out {name}.csr -subj /CN=feedroll-test-{name}"),
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days 2 -extfile {name}.ext"
        ),
    );
}

/// Whether redis-server asks clients for a certificate (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked.
    No,
    /// A client certificate signed by the CA is required.
    Required,
}

/// The TLS redis-server, its files and data directory; killed on drop.
pub struct TlsRedis {
    pub port: u16,
    dir: TempDir,
    auth: ClientAuth,
    child: Option<Child>,
}

impl TlsRedis {
    /// Makes the certificates and ACL file, starts redis-server and waits until it listens.
    pub fn start(auth: ClientAuth) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &format!(
                    "req -x509 {NEW_KEY} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN=feedroll-test-{ca}"
                ),
            );
        }
        issue(
            d,
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        issue(
            d,
            "client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        std::fs::write(
            d.join("users.acl"),
            format!("user default off\nuser {USER} on >{PASSWORD} ~feed:* &feed:* +@all\n"),
        )
        .expect("write acl");
        let mut server = Self {
            port: free_port(),
            dir,
            auth,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let auth = match self.auth {
            ClientAuth::No => "no",
            ClientAuth::Required => "yes",
        };
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0", "--bind", "127.0.0.1", "--save", ""])
            .args(["--tls-port", &self.port.to_string()])
            .arg("--tls-cert-file")
            .arg(d.join("server.pem"))
            .arg("--tls-key-file")
            .arg(d.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(d.join("ca.pem"))
            .args(["--tls-auth-clients", auth])
            .arg("--aclfile")
            .arg(d.join("users.acl"))
            .arg("--dir")
            .arg(d);
        self.child = Some(run_redis(command, self.port));
    }

    /// A file of the test's PKI: `ca.pem`, `other-ca.pem`, `client.pem`, `client.key`, ….
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rediss://user:password@127.0.0.1:port/0`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("rediss://{user}:{password}@127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli --tls` as [`USER`] (with the client certificate) and returns its
    /// output: a client independent of the feed-server's.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_as(
            &["--user", USER, "--pass", PASSWORD, "--no-auth-warning"],
            args,
        )
    }

    /// Runs `redis-cli --tls` with the credential flags `credentials` (may be empty).
    pub fn cli_as(&self, credentials: &[&str], args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["--tls", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("--cacert")
            .arg(self.file("ca.pem"))
            .arg("--cert")
            .arg(self.file("client.pem"))
            .arg("--key")
            .arg(self.file("client.key"))
            .args(credentials)
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
            + &String::from_utf8_lossy(&out.stderr)
    }

    /// Kills the server and starts it again on the same port (data is not kept).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
