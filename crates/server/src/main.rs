//! The `etcd` binary: etcd's flags, `ETCD_*` variables and config file; one member.
//!
//! Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 1 when the member could not start
//! or stopped on a fatal error, 2 for a bad command line or configuration.

use std::process::ExitCode;

use etcd_server::config::{Invocation, ServerConfig, ETCD_VERSION};
use etcd_server::server::listen_addr;
use etcd_server::{grpc, logging, EtcdServer};

/// mimalloc instead of the system allocator: the request path allocates small buffers at
/// a high rate, and glibc's malloc was the largest single cost in profiles of `put`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cfg = match ServerConfig::from_args(
        std::env::args_os().map(|a| a.to_string_lossy().into_owned()),
    ) {
        Ok(Invocation::Run(cfg)) => *cfg,
        Ok(Invocation::Version) => {
            println!("etcd Version: {ETCD_VERSION}");
            println!("Git SHA: etcd-rs");
            println!("Go Version: (none: etcd-rs {})", env!("CARGO_PKG_VERSION"));
            println!(
                "Go OS/Arch: {}/{}",
                std::env::consts::OS,
                std::env::consts::ARCH
            );
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("etcd: {err}");
            return ExitCode::from(2);
        }
    };
    logging::init(cfg.log_format, cfg.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("etcd-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("etcd: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "etcd stopped");
            eprintln!("etcd: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: ServerConfig) -> Result<(), String> {
    let mut listeners = Vec::new();
    for url in &cfg.listen_client_urls {
        let addr = listen_addr(url)?;
        listeners.push(grpc::bind(addr).await?);
    }
    let server = EtcdServer::start(cfg.clone())
        .await
        .map_err(|e| format!("cannot start the member: {e}"))?;
    let shared = server.shared();
    let mut serving = tokio::task::JoinSet::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(address = %addr, "serving client traffic");
        }
        serving.spawn(grpc::serve(shared.clone(), listener));
    }
    let mut stopping = shared.stopping();
    let result = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("received a stop signal; stopping the member");
            Ok(())
        }
        _ = stopping.wait_for(|s| *s) => {
            Err(shared.fatal_error().unwrap_or_else(|| "member stopped".into()))
        }
        Some(res) = serving.join_next() => match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err),
            Err(err) => Err(err.to_string()),
        },
    };
    server.stop().await;
    serving.shutdown().await;
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
