//! `netref`: serve the lab, make one call, or attach a REPL.
//!
//! ```text
//! netref serve [--listen HOST:PORT | --unix PATH | --stdio] [--secret-file FILE] [--allow-exec]
//! netref call TARGET PATH [ARG...]
//! netref repl [TARGET]
//! netref run SCRIPT [TARGET] [-- ARGS]
//! netref ls nats://HOST:PORT
//! ```
//!
//! TARGET is `HOST[:PORT]` (port 18861 by default; also `tcp://HOST:PORT` and `:PORT`),
//! `unix:PATH`, `nats://HOST:PORT/SERVICE` (an instance found in the NATS registry; needs
//! the `nats` feature), or a command whose stdio speaks netref: `cmd:PROGRAM [ARG...]`, or
//! any TARGET with a space (`"ssh host netref serve --stdio"`). Logs go to stderr (`-v`,
//! `-vv`, or `NETREF_LOG`), coloured only on a terminal.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod call;
#[cfg(unix)]
mod editor;
mod ls;
mod repl;
mod run;
mod serve;
mod target;

/// Object-proxy RPC: serve the lab, make one call, or attach a REPL.
#[derive(Debug, Parser)]
#[command(name = "netref", version, about)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); NETREF_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the lab, a demo root object (127.0.0.1:18861 by default).
    Serve(serve::Args),
    /// Make one call and print its result as JSON.
    Call(call::Args),
    /// Evaluate expressions against a peer's objects (the in-process lab by default).
    Repl(repl::Args),
    /// Run a script file (the REPL's language) against a peer (the in-process lab by default).
    Run(run::Args),
    /// List the live instances in a NATS registry: service, address, version, age.
    Ls(ls::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netref: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Call(args) => runtime.block_on(call::run(args)),
        Command::Repl(args) => repl::run(args, &runtime),
        Command::Run(args) => run::run(args, &runtime),
        Command::Ls(args) => runtime.block_on(ls::run(args)),
    };
    // Do not wait for tasks still blocked (a stdin reader, a callback in flight).
    runtime.shutdown_background();
    code
}

/// Logs to stderr only: stdout carries results.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("NETREF_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal: not in a pipe, a file or a CI log.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
