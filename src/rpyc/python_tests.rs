//! Byte-level agreement with the real `rpyc` 6.0.2 package: Python's brine and channel
//! output decode here and re-encode to the same bytes, and what this side writes Python
//! reads back to the same bytes. Python comes from `scripts/rpyc-venv.sh`, installed on first
//! use (the test fails, never skips, when it cannot be installed).

use std::process::Command;

use super::boxing::Boxed;
use super::brine::{self, Brine, Limits};
use super::frame;
use super::message::Message;

/// The venv's python, installing rpyc 6.0.2 on first use.
pub(crate) fn python() -> std::path::PathBuf {
    static PY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new("bash")
            .arg(format!("{root}/scripts/rpyc-venv.sh"))
            .output()
            .expect("run scripts/rpyc-venv.sh");
        assert!(
            out.status.success(),
            "scripts/rpyc-venv.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8 path");
        text.lines().last().expect("a python path").into()
    })
    .clone()
}

fn run_python(script: &str, stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn python_brine_decodes_and_reencodes_identically() {
    let script = r#"
from rpyc.core import brine
vals = [None, True, False, NotImplemented, Ellipsis, 0, -48, 159, 160, -49, 2**62, -2**63,
        2**64, -(10**200), 10**300, 1.5, -0.0, float('inf'), 3+4j, b"", b"a", b"abcd",
        b"x"*255, b"y"*256, "", "add", "h\u00e9llo \U0001F600", (), (1,), (1, 2, 3, 4),
        tuple(range(5)), tuple(range(300)), slice(1, None, -1), frozenset([1]),
        ((("nested",),),), ("__main__.Calc", 94188668838560, 140381016635856)]
for v in vals:
    print(brine.dump(v).hex())
"#;
    let out = run_python(script, "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 36);
    for line in lines {
        let bytes = unhex(line);
        let v = brine::decode(&bytes, Limits::default()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(hex(&brine::to_bytes(&v)), line, "{v}");
    }
}

#[test]
fn python_reads_what_this_side_writes() {
    let vals = [
        Brine::Int(-1),
        Brine::Int(1 << 40),
        Brine::BigInt("123456789012345678901234567890".into()),
        Brine::Float(0.25),
        Brine::Complex(1.0, -1.0),
        Brine::str("ünïcode"),
        Brine::Bytes(vec![0; 1000]),
        Brine::Tuple((0..260).map(Brine::Int).collect()),
        Brine::Slice(Box::new([Brine::None, Brine::Int(3), Brine::None])),
        Brine::FrozenSet(vec![Brine::str("a")]),
        Boxed::Tuple(vec![Boxed::Value(Brine::Int(1)), Boxed::Value(Brine::None)]).to_brine(),
    ];
    let input: String = vals
        .iter()
        .map(|v| hex(&brine::to_bytes(v)) + "\n")
        .collect();
    let script = r#"
import sys
from rpyc.core import brine
for line in sys.stdin:
    v = brine.load(bytes.fromhex(line.strip()))
    assert brine.dumpable(v), v
    print(brine.dump(v).hex())
"#;
    let out = run_python(script, &input);
    assert_eq!(out, input);
}

#[test]
fn python_channel_frames_decode_compressed_or_not() {
    // Python's Channel writes through a stream; a stand-in stream collects the bytes.
    let script = r#"
from rpyc.core.channel import Channel
from rpyc.core import brine
class Sink:
    MAX_IO_CHUNK = 64000
    def __init__(self): self.data = b""
    def write(self, b): self.data += b
    def close(self): pass
s = Sink()
ch = Channel(s)
ch.send(b"\x01" + brine.dump((0, (3, (1, ())))))
ch.send(b"\x02" + brine.dump((1, (1, b"z" * 5000))))
print(s.data.hex())
"#;
    let bytes = unhex(out_line(&run_python(script, "")));
    let f1 = frame::split(&bytes, 1 << 20).unwrap().unwrap();
    assert!(!f1.compressed);
    let m1 = Message::decode(
        &frame::payload(&bytes, &f1, 1 << 20).unwrap(),
        Limits::default(),
    )
    .unwrap();
    assert!(matches!(
        m1,
        Message::Request {
            seq: 0,
            handler: 3,
            ..
        }
    ));
    let rest = &bytes[f1.len..];
    let f2 = frame::split(rest, 1 << 20).unwrap().unwrap();
    assert!(f2.compressed, "python compresses payloads over 3000 bytes");
    assert_eq!(f2.len, rest.len());
    let p2 = frame::payload(rest, &f2, 1 << 20).unwrap();
    let Message::Reply { seq: 1, value } = Message::decode(&p2, Limits::default()).unwrap() else {
        panic!("not the reply")
    };
    assert_eq!(
        Boxed::from_brine(value).unwrap(),
        Boxed::Value(Brine::Bytes(vec![b'z'; 5000]))
    );
    // And Python reads this side's compressed frame.
    let mut out = Vec::new();
    let mut payload = Vec::new();
    Message::Reply {
        seq: 9,
        value: Boxed::Value(Brine::Bytes(vec![b'q'; 4000])).to_brine(),
    }
    .encode(&mut payload);
    frame::encode(&payload, true, &mut out).unwrap();
    assert_eq!(out[4], 1);
    let script = r#"
import sys
from rpyc.core.channel import Channel
from rpyc.core import brine
class Source:
    MAX_IO_CHUNK = 64000
    def __init__(self, b): self.b = b
    def read(self, n):
        r, self.b = self.b[:n], self.b[n:]
        return r
ch = Channel(Source(bytes.fromhex(sys.stdin.read().strip())))
data = ch.recv()
print(data[0], brine.load(data[1:])[0], len(brine.load(data[1:])[1][1]))
"#;
    assert_eq!(run_python(script, &hex(&out)).trim(), "2 9 4000");
}

fn out_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default().trim()
}
