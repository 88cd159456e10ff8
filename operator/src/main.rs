//! `feedroll-operator`: `crd` prints the CRD, `check` validates a FeedRollout and evaluates its
//! checks against Prometheus now, `run` reconciles FeedRollouts (the controller).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use feedroll_operator::cli::{Cli, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    feedroll_operator::tls::install_crypto_provider();
    init_logs(&cli.command);
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Crd => {
            let yaml = feedroll_crds::schema::crd_yaml().context("generating the CRD")?;
            stdout.write_all(yaml.as_bytes())?;
            Ok(0)
        }
        Command::Check(args) => Ok(feedroll_operator::cli::check::run(&args, &mut stdout).await?),
        Command::Run(args) => {
            feedroll_operator::controller::run::run(args)
                .await
                .context("feedroll-operator run")?;
            Ok(0)
        }
    }
}

/// Logs to stderr: for `run`, JSON (or text with `--log-format text`) at `info` unless
/// `RUST_LOG` says otherwise; for the CLI commands, text at `warn`.
fn init_logs(command: &Command) {
    use feedroll_operator::controller::run::LogFormat;
    let filter = |default: &str| {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
    };
    match command {
        Command::Run(args) if args.log_format == LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter("info"))
            .with_writer(std::io::stderr)
            .init(),
        Command::Run(_) => tracing_subscriber::fmt()
            .with_env_filter(filter("info"))
            .with_writer(std::io::stderr)
            .init(),
        _ => tracing_subscriber::fmt()
            .with_env_filter(filter("warn"))
            .with_writer(std::io::stderr)
            .init(),
    }
}
