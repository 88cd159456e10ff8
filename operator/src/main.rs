//! `feedroll-operator`: `crd` prints the CRD, `check` validates a FeedRollout and evaluates its
//! checks against Prometheus now, `run` (the controller) arrives with issue 4.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use feedroll_operator::cli::{Cli, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    feedroll_operator::tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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
        Command::Run => anyhow::bail!(
            "`feedroll-operator run` (the controller) is not implemented yet: it arrives with issue 4"
        ),
    }
}
