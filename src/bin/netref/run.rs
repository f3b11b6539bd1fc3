//! `netref run SCRIPT [TARGET] [-- ARGS]`: runs a script file against a target (the
//! in-process lab by default), with the REPL's language and built-ins.
//!
//! Results of `print` go to stdout, an uncaught error (with its position) to stderr. Exit
//! status: 0 when the script ran to its end (or called `quit()`), 1 on an uncaught error,
//! 2 when the connection could not be made or was lost.

use std::path::PathBuf;
use std::process::ExitCode;

use netref::repl::Outcome;
use netref::Value;
use tokio::runtime::Runtime;

use crate::repl::{open, LabSetup};
use crate::target::ConnectOpts;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The script file (Rhai, as in the REPL).
    script: PathBuf,
    /// Where to attach: as for `netref repl`. Default: start the lab in this process.
    target: Option<String>,
    #[command(flatten)]
    connect: ConnectOpts,
    /// In-process lab only: add `exec(command, on_line)`.
    #[arg(long, conflicts_with = "target")]
    allow_exec: bool,
    /// In-process lab only: the directory `files` works in.
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    sandbox: Option<PathBuf>,
    /// The script's arguments: the variable `args`, a list of strings.
    #[arg(last = true)]
    args: Vec<String>,
}

pub(crate) fn run(args: Args, runtime: &Runtime) -> ExitCode {
    let script = args.script.display().to_string();
    if let Err(e) = std::fs::metadata(&args.script) {
        eprintln!("netref run: cannot read {script}: {e}");
        return ExitCode::from(2);
    }
    let lab = LabSetup {
        allow_exec: args.allow_exec,
        sandbox: args.sandbox.clone(),
    };
    let opened = runtime.block_on(open(args.target.as_deref(), &args.connect, &lab, false));
    let (session, attached) = match opened {
        Ok(x) => x,
        Err(message) => {
            eprintln!("netref run: {message}");
            return ExitCode::from(2);
        }
    };
    session.set_error_output(|line: &str| eprintln!("{line}"));
    session.set_var(
        "args",
        Value::List(args.args.iter().cloned().map(Value::Str).collect()),
    );
    let outcome = runtime.block_on(session.run_file(&script));
    let lost = session.connection().is_closed();
    runtime.block_on(async {
        session.close().await;
        if let Some(attached) = attached {
            attached.close().await;
        }
    });
    match outcome {
        Outcome::Ok | Outcome::Quit => ExitCode::SUCCESS,
        _ if lost => {
            eprintln!("netref run: the connection was lost");
            ExitCode::from(2)
        }
        _ => ExitCode::from(1),
    }
}
