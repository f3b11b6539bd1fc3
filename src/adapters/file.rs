//! A local file lent by reference.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::adapters::Iter;
use crate::error::{Error, ErrorKind, Result};
use crate::object::Obj;
use crate::value::Value;

/// A local file lent by reference, with Python-like methods.
///
/// Text modes (`"r"`, `"w"`, `"a"`, `"r+"` …) read and write strings; binary modes (with
/// `b`) read and write bytes. Blocking file I/O runs in the handler; keep files local
/// (not network mounts) for a responsive connection.
pub struct File {
    name: String,
    mode: String,
    binary: bool,
    state: Arc<Mutex<Option<BufReader<std::fs::File>>>>,
}

fn io_err(e: std::io::Error) -> Error {
    Error::Remote(crate::RemoteError {
        kind: ErrorKind::Failed,
        type_name: "std::io::Error".into(),
        message: e.to_string(),
        chain: Vec::new(),
    })
}

fn closed() -> Error {
    Error::remote(ErrorKind::Failed, "i/o operation on a closed file")
}

impl File {
    /// Opens `path` with a Python-style `mode`: `r`, `w`, `a`, `x` with optional `+` and `b`.
    pub fn open(path: impl AsRef<Path>, mode: &str) -> std::io::Result<File> {
        let path = path.as_ref();
        let mut o = std::fs::OpenOptions::new();
        let plus = mode.contains('+');
        match mode.chars().find(|c| "rwax".contains(*c)) {
            Some('r') | None => o.read(true).write(plus),
            Some('w') => o.write(true).create(true).truncate(true).read(plus),
            Some('a') => o.append(true).create(true).read(plus),
            Some(_) => o.write(true).create_new(true).read(plus),
        };
        let f = o.open(path)?;
        Ok(File {
            name: path.display().to_string(),
            mode: mode.to_owned(),
            binary: mode.contains('b'),
            state: Arc::new(Mutex::new(Some(BufReader::new(f)))),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut BufReader<std::fs::File>) -> Result<T>) -> Result<T> {
        let mut guard = self.state.lock();
        match guard.as_mut() {
            Some(r) => f(r),
            None => Err(closed()),
        }
    }

    fn to_value(&self, bytes: Vec<u8>) -> Result<Value> {
        if self.binary {
            Ok(Value::Bytes(bytes))
        } else {
            String::from_utf8(bytes)
                .map(Value::Str)
                .map_err(|e| Error::remote(ErrorKind::Failed, format!("not utf-8 text: {e}")))
        }
    }
}

fn read_line(r: &mut BufReader<std::fs::File>) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).map_err(io_err)?;
    Ok(line)
}

/// A file lent by reference.
#[crate::expose]
impl File {
    /// Reads up to `size` bytes (everything to the end when absent or negative).
    #[exposed]
    fn read(&self, size: Option<i64>) -> Result<Value> {
        let bytes = self.with(|r| {
            let mut buf = Vec::new();
            match size {
                Some(n) if n >= 0 => {
                    r.by_ref()
                        .take(n as u64)
                        .read_to_end(&mut buf)
                        .map_err(io_err)?;
                }
                _ => {
                    r.read_to_end(&mut buf).map_err(io_err)?;
                }
            }
            Ok(buf)
        })?;
        self.to_value(bytes)
    }

    /// Reads one line, with its newline; an empty result means the end of the file.
    #[exposed]
    fn readline(&self) -> Result<Value> {
        let line = self.with(read_line)?;
        self.to_value(line)
    }

    /// Reads all remaining lines.
    #[exposed]
    fn readlines(&self) -> Result<Vec<Value>> {
        let lines = self.with(|r| {
            let mut out = Vec::new();
            loop {
                let line = read_line(r)?;
                if line.is_empty() {
                    return Ok(out);
                }
                out.push(line);
            }
        })?;
        lines.into_iter().map(|l| self.to_value(l)).collect()
    }

    /// Writes `data` (a string, or bytes) and returns how many bytes were written.
    #[exposed]
    fn write(&self, data: Value) -> Result<usize> {
        let bytes = match data {
            Value::Str(s) => s.into_bytes(),
            Value::Bytes(b) => b,
            other => {
                return Err(Error::remote(
                    ErrorKind::BadArguments,
                    format!("write takes a str or bytes, not {}", other.type_name()),
                ))
            }
        };
        self.with(|r| {
            // Drop any read-ahead so the write lands at the logical position.
            let pos = r.stream_position().map_err(io_err)?;
            r.seek(SeekFrom::Start(pos)).map_err(io_err)?;
            r.get_mut().write_all(&bytes).map_err(io_err)?;
            Ok(bytes.len())
        })
    }

    /// Moves to `offset` relative to `whence` (0 start, 1 current, 2 end); returns the new
    /// position.
    #[exposed]
    fn seek(&self, offset: i64, whence: Option<u8>) -> Result<u64> {
        let to = match whence.unwrap_or(0) {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| {
                Error::remote(ErrorKind::BadArguments, "negative offset from the start")
            })?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            w => {
                return Err(Error::remote(
                    ErrorKind::BadArguments,
                    format!("whence must be 0, 1 or 2, not {w}"),
                ))
            }
        };
        self.with(|r| r.seek(to).map_err(io_err))
    }

    /// The current position.
    #[exposed]
    fn tell(&self) -> Result<u64> {
        self.with(|r| r.stream_position().map_err(io_err))
    }

    /// Flushes written data to the operating system.
    #[exposed]
    fn flush(&self) -> Result<()> {
        self.with(|r| r.get_mut().flush().map_err(io_err))
    }

    /// Closes the file; later operations fail.
    #[exposed]
    fn close(&self) {
        self.state.lock().take();
    }

    /// True once closed.
    #[exposed(property)]
    fn closed(&self) -> bool {
        self.state.lock().is_none()
    }

    /// The path the file was opened with.
    #[exposed(property)]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The mode the file was opened with.
    #[exposed(property)]
    fn mode(&self) -> String {
        self.mode.clone()
    }

    /// An iterator over the remaining lines.
    #[exposed]
    fn iter(&self) -> Obj<Iter> {
        let state = self.state.clone();
        let binary = self.binary;
        let lines = std::iter::from_fn(move || {
            let mut guard = state.lock();
            let r = guard.as_mut()?;
            match read_line(r) {
                Ok(l) if l.is_empty() => None,
                Ok(l) if binary => Some(Ok(Value::Bytes(l))),
                Ok(l) => Some(
                    String::from_utf8(l)
                        .map(Value::Str)
                        .map_err(|e| Error::remote(ErrorKind::Failed, e.to_string())),
                ),
                Err(e) => Some(Err(e)),
            }
        });
        Obj::new(Iter::from_results(lines))
    }
}
