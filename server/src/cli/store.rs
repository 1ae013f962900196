//! `opensports export | backup | restore | compact`: the durable log from the command line.
//!
//! `export` and `backup` read a running server over HTTP (`--server`), or the data dir
//! directly when no server holds it. `restore` and `compact` are offline only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::progress::Progress;
use crate::store::export::{self, Format};
use crate::store::{FILE_NAME, StoreError, open_db};

/// Where the log is read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A running server's HTTP address, e.g. `http://127.0.0.1:8080`, and an admin key
    /// (export and backup are admin operations).
    Server(String, Option<String>),
    /// A data dir no server is using.
    DataDir(PathBuf),
}

/// Writes one game's events to `out` (or stdout).
pub fn export_cmd(source: &Source, game: &str, format: Format, out: Option<&Path>) -> anyhow::Result<()> {
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| p.display().to_string())?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut progress = Progress::new("export");
    let fmt = if format == Format::Csv { "csv" } else { "jsonl" };
    let summary = match source {
        Source::Server(url, key) => {
            let bytes = http_get_to(
                url,
                key.as_deref(),
                &format!("/v1/games/{game}/events?format={fmt}"),
                &mut sink,
                &mut progress,
            )?;
            format!("{bytes} bytes")
        }
        Source::DataDir(dir) => {
            let db = open_offline(dir)?;
            let n = export::export_game(&db, game, format, &mut sink, &mut |d, t| {
                progress.update(d as usize, t as usize)
            })?
            .with_context(|| format!("no game {game:?} in {}", dir.join(FILE_NAME).display()))?;
            format!("{n} events")
        }
    };
    sink.flush()?;
    progress.finish(&format!("{game}: {summary} written"));
    Ok(())
}

/// Writes a consistent copy of the log to `to`.
pub fn backup_cmd(source: &Source, to: &Path) -> anyhow::Result<()> {
    let mut progress = Progress::new("backup");
    let summary = match source {
        Source::Server(url, key) => {
            let tmp = to.with_extension("partial");
            let mut file = std::fs::File::create(&tmp).with_context(|| tmp.display().to_string())?;
            let bytes = http_get_to(url, key.as_deref(), "/v1/backup", &mut file, &mut progress)?;
            file.sync_all()?;
            drop(file);
            let check = open_db(&tmp).map_err(anyhow::Error::from).and_then(|db| {
                export::verify(&db).map_err(|e| anyhow::anyhow!("the backup received is inconsistent: {e}"))
            })?;
            std::fs::rename(&tmp, to)?;
            format!("{} games, {} events ({bytes} bytes)", check.games, check.events)
        }
        Source::DataDir(dir) => {
            let db = open_offline(dir)?;
            let s = export::backup(&db, to, &mut |d, t| progress.update(d as usize, t as usize))?;
            format!("{} games, {} events", s.games, s.events)
        }
    };
    progress.finish(&format!("{summary} backed up to {}", to.display()));
    Ok(())
}

pub fn restore_cmd(from: &Path, data_dir: &Path, force: bool) -> anyhow::Result<()> {
    let s = export::restore(from, data_dir, force).map_err(anyhow::Error::msg)?;
    eprintln!("restored {} games, {} events into {}", s.games, s.events, data_dir.join(FILE_NAME).display());
    Ok(())
}

pub fn compact_cmd(data_dir: &Path) -> anyhow::Result<()> {
    let (before, after) = export::compact(data_dir).map_err(anyhow::Error::msg)?;
    eprintln!("compacted {}: {before} -> {after} bytes", data_dir.join(FILE_NAME).display());
    Ok(())
}

fn open_offline(dir: &Path) -> anyhow::Result<redb::Database> {
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        bail!("no event log at {} (wrong --data-dir?)", path.display());
    }
    open_db(&path).map_err(|e| match e {
        StoreError::Locked { .. } => {
            anyhow::anyhow!("{e}; read it through the server with --server http://ADDR")
        }
        e => e.into(),
    })
}

/// GET `path` from `url` (http://host:port) as HTTP/1.0, so the body is plain bytes up to
/// the close, and copies the body into `out`. Returns the bytes copied.
fn http_get_to(
    url: &str,
    key: Option<&str>,
    path: &str,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> anyhow::Result<u64> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    if host.contains('/') || url.starts_with("https://") {
        bail!("--server takes http://HOST:PORT, got {url:?}");
    }
    let mut tcp = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n")?;
    let mut r = BufReader::new(tcp);
    let mut status = String::new();
    r.read_line(&mut status)?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    if !status.contains(" 200 ") {
        let mut body = String::new();
        let _ = r.read_to_string(&mut body);
        bail!("{host}{path}: {} {}", status.trim(), body.trim());
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
        progress.update(total as usize, 0);
    }
    Ok(total)
}
