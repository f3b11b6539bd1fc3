//! `netref ls nats://HOST:PORT`: the live instances in a NATS registry, one line each.

use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The NATS server whose registry to list: nats://HOST:PORT (a /SERVICE suffix lists
    /// that service only).
    registry: String,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    match list(&args.registry).await {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("netref ls: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(feature = "nats")]
async fn list(registry: &str) -> Result<Vec<String>, String> {
    use netref::nats::{self, Nats};
    let (url, service) = crate::target::parse_nats(registry)?;
    let client = Nats::connect(&url).await.map_err(|e| e.to_string())?;
    let mut instances = match &service {
        Some(s) => nats::discover(&client, s).await,
        None => nats::discover_all(&client).await,
    }
    .map_err(|e| e.to_string())?;
    instances.sort_by(|a, b| (&a.service, a.started).cmp(&(&b.service, b.started)));
    if instances.is_empty() {
        eprintln!("netref ls: no live instances in the registry of {url}");
    }
    Ok(instances
        .iter()
        .map(|i| {
            let version = if i.version.is_empty() {
                "-"
            } else {
                &i.version
            };
            format!(
                "{} {} {} {} id={} load={}",
                i.service,
                i.address,
                version,
                age(i.age()),
                i.id,
                i.load
            )
        })
        .collect())
}

#[cfg(not(feature = "nats"))]
async fn list(_registry: &str) -> Result<Vec<String>, String> {
    Err("this netref was built without the `nats` feature".into())
}

/// `42s`, `3m05s`, `2h07m`, `4d03h`.
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        use std::time::Duration;
        let age = |s| super::age(Duration::from_secs(s));
        assert_eq!(age(42), "42s");
        assert_eq!(age(185), "3m05s");
        assert_eq!(age(7620), "2h07m");
        assert_eq!(age(4 * 86_400 + 3 * 3600), "4d03h");
    }
}
