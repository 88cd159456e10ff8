//! `feedroll-operator`: `crd` prints the CRD, `check` validates a FeedRollout and evaluates its
//! checks against Prometheus now, `run` (the controller) arrives with issue 4.

use std::process::ExitCode;

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
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crd => {
            print!("{}", feedroll_crds::schema::crd_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => feedroll_operator::cli::check::run(args).await,
        Command::Run => {
            anyhow::bail!(
                "`feedroll-operator run` (the controller) is not implemented yet: see issue 4"
            )
        }
    }
}
