//! The lab's `exec`, only in a lab built with `allow_exec`: commands on the serving machine,
//! their output streamed to a callback.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::files::io_failed;
use super::{bad_args, Lab};
use crate::error::Result;
use crate::object::{Invocation, MemberInfo, Object, Reply, TypeInfo};
use crate::proxy::Proxy;
use crate::value::Value;

/// Runs commands (only in a lab built with [`LabOptions::allow_exec`]).
pub(super) struct Exec {
    pub(super) dir: PathBuf,
}

/// Commands on the serving machine.
#[crate::expose(no_proxy)]
impl Exec {
    /// Runs `command` (a string for the shell, or a list `[program, args...]`) in the
    /// sandbox, calls `on_line(line)` for each line it prints (stdout and stderr), and
    /// returns its exit code (nil when killed by a signal). Cancelling the call kills it.
    #[exposed]
    async fn exec(&self, command: Value, on_line: Proxy) -> Result<Option<i32>> {
        let argv: Vec<String> = match command {
            Value::Str(s) if cfg!(windows) => vec!["cmd".into(), "/C".into(), s],
            Value::Str(s) => vec!["sh".into(), "-c".into(), s],
            Value::List(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s),
                    other => Err(bad_args(format!(
                        "command arguments must be strings, not {}",
                        other.type_name()
                    ))),
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(bad_args(format!(
                    "command must be a string or a list of strings, not {}",
                    other.type_name()
                )))
            }
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(bad_args("empty command"));
        };
        run_streaming(program, args, &self.dir, on_line).await
    }
}

async fn run_streaming(
    program: &str,
    args: &[String],
    dir: &Path,
    on_line: Proxy,
) -> Result<Option<i32>> {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io_failed)?;
    // Both pipes feed one bounded queue, so lines reach the callback in about the order
    // they were printed and a slow callback slows the command instead of buffering.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let pump = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let tx = tx.clone();
        async move {
            let Some(pipe) = pipe else { return };
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            line.pop();
                        }
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if tx.send(text).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    let out = child
        .stdout
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let err = child
        .stderr
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let pumps = tokio::spawn(futures_join(pump(out), pump(err)));
    drop(tx);
    while let Some(line) = rx.recv().await {
        on_line.call((line,)).await?;
    }
    let _ = pumps.await;
    let status = child.wait().await.map_err(io_failed)?;
    Ok(status.code())
}

async fn futures_join<A, B>(a: A, b: B)
where
    A: std::future::Future<Output = ()>,
    B: std::future::Future<Output = ()>,
{
    tokio::join!(a, b);
}

/// The lab with `exec` added: the lab's members followed by `Exec`'s.
pub(super) struct WithExec {
    pub(super) lab: Arc<Lab>,
    pub(super) exec: Arc<Exec>,
}

impl WithExec {
    fn info(&self) -> &'static TypeInfo {
        static INFO: OnceLock<TypeInfo> = OnceLock::new();
        INFO.get_or_init(|| {
            let lab = self.lab.type_info();
            let members: Vec<MemberInfo> = lab
                .members
                .iter()
                .chain(self.exec.type_info().members)
                .map(|m| MemberInfo {
                    name: m.name,
                    kind: m.kind,
                    signature: m.signature,
                    doc: m.doc,
                })
                .collect();
            TypeInfo {
                name: lab.name,
                doc: lab.doc,
                // Built once per process; a few hundred bytes.
                members: Box::leak(members.into_boxed_slice()),
                call: None,
            }
        })
    }
}

impl Object for WithExec {
    fn type_info(&self) -> &'static TypeInfo {
        self.info()
    }

    fn invoke(self: Arc<Self>, member: usize, inv: Invocation) -> Reply {
        let n = self.lab.type_info().members.len();
        if member < n {
            self.lab.clone().invoke(member, inv)
        } else {
            self.exec.clone().invoke(member - n, inv)
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
