//! The `rollout-guard` binary: install the crypto provider, start logging, dispatch.

use clap::Parser;
use rollout_guard::cli::{Cli, Command, LogFormat};
use rollout_guard::{audit, devcerts, explain, lint, server};

fn main() {
    // One provider for the whole process (kube's client and the server both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let log_writer = init_tracing(cli.log_format);
    rollout_guard::model::rollout::set_argo_version(cli.argo_rollouts_version);
    let code = match cli.command {
        Command::Lint { paths, output } => lint::run(
            &paths,
            output,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
        Command::DevCerts { out, force, sans } => devcerts::run(&out, &sans, force),
        Command::Audit {
            kubeconfig,
            namespaces,
            output,
        } => block_on(audit::run(
            kubeconfig.as_deref(),
            &namespaces,
            output,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Explain {
            target,
            manifests,
            kubeconfig,
            output,
        } => block_on(explain::run(
            &target,
            &manifests,
            kubeconfig.as_deref(),
            output,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Serve(args) => match args.check() {
            Ok(()) => serve(args.into_config()),
            Err(problem) => {
                eprintln!("error: {problem}");
                2
            }
        },
    };
    // `exit` runs no destructors: flush the log lines still queued first.
    drop(log_writer);
    std::process::exit(code);
}

fn serve(config: server::ServeConfig) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return 1;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "rollout-guard serve stopped");
            1
        }
    }
}

/// Runs a client command (audit, explain) to its exit code on a small runtime.
fn block_on(command: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("rollout-guard: cannot start the async runtime: {e}");
            2
        }
    }
}

/// Logs go to stderr through a background thread, so that a request never waits for a write to
/// stderr (a slow pipe, a full disk, a terminal). Lossy by design: when the queue is full the
/// line is dropped rather than the request delayed.
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("rollout-guard-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    rollout_guard::metrics::follow_log_drops(move || dropped.dropped_lines() as u64);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}

/// Lines waiting for stderr before new ones are dropped (a few MiB at most).
const LOG_QUEUE_LINES: usize = 16_384;
