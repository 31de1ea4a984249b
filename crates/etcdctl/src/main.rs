//! The `etcdctl` binary: parses etcdctl's command line, runs the command, prints
//! `Error: <message>` on stderr and exits with etcdctl's code when it fails.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use etcd_ctl::cli::{usage_error_message, Cli};
use etcd_ctl::{emit_err, run};

fn main() -> ExitCode {
    let raw_args: Vec<OsString> = std::env::args_os().collect();
    // etcdctl 3.5 runs its v3 API unless ETCDCTL_API asks for another.
    if let Some(api) = std::env::var_os("ETCDCTL_API") {
        if !api.is_empty() && api != "3" {
            emit_err(&format!(
                "unsupported API version: {}\n",
                api.to_string_lossy()
            ));
            return ExitCode::from(1);
        }
    }
    let cli = match Cli::try_parse_from(&raw_args) {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                // `etcdctl lease`: etcdctl prints the group's usage and succeeds.
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand => {
                    print_help_of(&raw_args);
                    ExitCode::SUCCESS
                }
                _ => {
                    emit_err(&format!("Error: {}\n", usage_error_message(&e)));
                    ExitCode::from(1)
                }
            };
        }
    };
    if cli.command.is_none() {
        let _ = Cli::command().print_help();
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            emit_err(&format!("Error: cannot start the runtime: {e}\n"));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli, raw_args));
    // Interactive watches may still read stdin on a thread of their own: do not wait.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(message) = &e.message {
                emit_err(&format!("Error: {message}\n"));
            }
            ExitCode::from(e.code.code())
        }
    }
}

/// Prints the help of the deepest command named in `raw_args` (on stdout).
fn print_help_of(raw_args: &[OsString]) {
    let mut command = Cli::command();
    for arg in raw_args.iter().skip(1) {
        let Some(name) = arg.to_str() else { break };
        if name.starts_with('-') {
            continue;
        }
        match command.find_subcommand(name) {
            Some(sub) => command = sub.clone(),
            None => break,
        }
    }
    let _ = command.print_help();
}
