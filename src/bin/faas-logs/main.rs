//! `faas-logs`: reads the logs of OpenFaaS functions from any provider or gateway, with
//! faas-cli's `logs` flags and output, and what faas-cli lacks (a real instance filter,
//! an exit status that tells a broken stream, `--forever`, several functions merged by
//! time, text filters). `faas-logs serve` runs the log providers. `faas-logs --help`
//! lists it all.

#[cfg(feature = "cli")]
mod activations;
mod args;
mod collect;
#[cfg(feature = "cli")]
mod gateway;
#[cfg(feature = "cli")]
mod layout;
#[cfg(feature = "cli")]
mod level;
#[cfg(feature = "cli")]
mod logs;
#[cfg(feature = "cli")]
mod logs_args;
#[cfg(feature = "cli")]
mod print;
mod serve;
#[cfg(feature = "cli")]
mod stdin;
#[cfg(feature = "cli")]
mod template;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
#[cfg(feature = "cli")]
use logs::Failure;

/// jemalloc (feature `jemalloc`, in `cli`), with background threads that give freed
/// pages back to the system: after a thousand followers leave, `faas-logs serve` comes
/// back near where it started, where glibc's allocator keeps its peak. (The library
/// chooses no allocator for its users.)
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_from(collect::containerd_args(std::env::args_os().collect()));
    match cli.command {
        // A provider runs on every core; the client needs one thread.
        Some(Command::Serve(args)) => serve::run(*args),
        Some(Command::Collect(args)) => collect::run(*args),
        #[cfg(feature = "cli")]
        Some(Command::Logs(args)) => read(logs::run(*args)),
        #[cfg(feature = "cli")]
        Some(Command::Activations(args)) => read(activations::run(args)),
        #[cfg(feature = "cli")]
        None => read(logs::run(cli.logs)),
        #[cfg(not(feature = "cli"))]
        None => {
            eprintln!(
                "faas-logs: this build only serves logs (faas-logs serve); reading them \
                 needs the whole command: cargo install faas-logs --features cli"
            );
            ExitCode::from(2)
        }
    }
}

/// Runs a client command on a single-threaded runtime; a failure is printed as a
/// sentence.
#[cfg(feature = "cli")]
fn read(command: impl std::future::Future<Output = Result<(), Failure>>) -> ExitCode {
    let ran = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Error(format!("cannot start: {e}")))
        .and_then(|runtime| runtime.block_on(command));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            eprintln!("faas-logs: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Interrupted) => ExitCode::from(130),
    }
}
