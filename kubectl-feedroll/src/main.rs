//! `kubectl-feedroll`: the binary kubectl runs for `kubectl feedroll …` (see the crate README).

mod run;

use std::process::ExitCode;

use clap::Parser;
use kubectl_feedroll::cli::Cli;
use kubectl_feedroll::exit::Exit;
use run::{Terminal, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut term = Terminal::detect(&mut stdout);
    match run(cli, &mut term).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(Exit::Error.code())
        }
    }
}
