//! The `benchmark` binary: parses etcd's tools/benchmark flags, runs the load, prints
//! the report on stdout. Exit code 0 after a run (failed requests are in the report),
//! 1 when the run could not start (bad flags, unreachable endpoint), 2 for usage errors.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use etcd_benchmark::cli::Cli;
use etcd_benchmark::{execute, render};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("benchmark: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(&cli)) {
        Ok(outcome) => {
            let text = render(&outcome, cli.global.format(), cli.global.precise);
            let mut stdout = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) is not worth a panic.
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("benchmark: {e}");
            ExitCode::FAILURE
        }
    }
}
