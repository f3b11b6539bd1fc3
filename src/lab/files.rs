//! The lab's `files`: a sandbox directory whose files are lent by reference.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::bad_args;
use crate::adapters::File;
use crate::error::{Error, ErrorKind, Result};
use crate::object::Obj;

/// A sandbox directory whose files can be opened by name.
pub struct Files {
    pub(super) dir: PathBuf,
    /// Removed on drop (a temporary sandbox this lab created).
    owned: bool,
}

impl Files {
    pub(super) fn open_dir(dir: PathBuf, owned: bool) -> std::io::Result<Files> {
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        Ok(Files { dir, owned })
    }

    pub(super) fn temporary() -> std::io::Result<Files> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("netref-lab-{}-{n}", std::process::id()));
        Files::open_dir(dir, true)
    }

    /// The path of `name` inside the sandbox, or a refusal when it would leave it.
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let rel = Path::new(name);
        let plain = !name.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(bad_args(format!(
                "refused: `{name}` is not a plain relative name inside the sandbox"
            )));
        }
        let full = self.dir.join(rel);
        // Symbolic links could still point outside: check what the path really names.
        let real = match full.canonicalize() {
            Ok(p) => p,
            Err(_) => match full.parent().map(Path::canonicalize) {
                Some(Ok(parent)) => parent.join(full.file_name().unwrap_or_default()),
                _ => {
                    return Err(bad_args(format!(
                        "no directory for `{name}` in the sandbox"
                    )))
                }
            },
        };
        if !real.starts_with(&self.dir) {
            return Err(bad_args(format!("refused: `{name}` leaves the sandbox")));
        }
        Ok(real)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(super) fn io_failed(e: std::io::Error) -> Error {
    Error::Remote(crate::RemoteError {
        kind: ErrorKind::Failed,
        type_name: "std::io::Error".into(),
        message: e.to_string(),
        chain: Vec::new(),
    })
}

/// A sandbox directory: names are relative and never leave it.
#[crate::expose]
impl Files {
    /// Opens `name` with a Python-style `mode` (`r` by default; `w`, `a`, `x`, `+`, `b`)
    /// and lends the file by reference.
    #[exposed]
    fn open(&self, name: String, mode: Option<String>) -> Result<Obj<File>> {
        let path = self.resolve(&name)?;
        let mode = mode.unwrap_or_else(|| "r".to_owned());
        if !mode.chars().all(|c| "rwaxb+t".contains(c)) {
            return Err(bad_args(format!("unknown file mode {mode:?}")));
        }
        let file = File::open(&path, &mode).map_err(io_failed)?;
        Ok(Obj::new(file))
    }

    /// The names of the files in the sandbox, sorted.
    #[exposed]
    fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_failed)? {
            let entry = entry.map_err(io_failed)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// True when `name` exists in the sandbox.
    #[exposed]
    fn exists(&self, name: String) -> Result<bool> {
        Ok(self.resolve(&name)?.exists())
    }

    /// Deletes the file `name`.
    #[exposed]
    fn remove(&self, name: String) -> Result<()> {
        let path = self.resolve(&name)?;
        std::fs::remove_file(path).map_err(io_failed)
    }
}
