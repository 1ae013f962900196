//! `opensports export | backup | restore | compact`: the durable log from the command line.
//!
//! `export` and `backup` read a running server over HTTP or HTTPS (`--url`, through ureq), or
//! the data dir directly when no server holds it. `restore` and `compact` are offline only.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use super::progress::Progress;
use crate::store::export::{self, Format};
use crate::store::{FILE_NAME, Seal, StoreError, open_db};

/// Where the log is read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A running server's URL (`http://127.0.0.1:8080`, `https://edge:8080`).
    Server(Server),
    /// A data dir no server is using.
    DataDir(PathBuf),
}

/// How to reach a running server.
#[derive(Debug, Clone)]
pub struct Server {
    pub url: String,
    /// Admin key (export and backup are admin operations).
    pub key: Option<String>,
    /// For `https://`: trust this PEM certificate (the server's `data_dir/tls/cert.pem`, or
    /// its CA) instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// Writes one game's events to `out` (or stdout).
pub fn export_cmd(
    source: &Source,
    seal: &Seal,
    game: &str,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| p.display().to_string())?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut progress = Progress::new("export");
    let fmt = if format == Format::Csv { "csv" } else { "jsonl" };
    let summary = match source {
        Source::Server(server) => {
            let path = format!("/v1/games/{game}/events?format={fmt}");
            let bytes = http_get_to(server, &path, &mut sink, &mut progress)?;
            format!("{bytes} bytes")
        }
        Source::DataDir(dir) => {
            let db = open_offline(dir)?;
            let n = export::export_game(&db, seal, game, format, &mut sink, &mut |d, t| {
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
pub fn backup_cmd(source: &Source, seal: &Seal, to: &Path) -> anyhow::Result<()> {
    let mut progress = Progress::new("backup");
    let summary = match source {
        Source::Server(server) => {
            let tmp = to.with_extension("partial");
            let mut file = std::fs::File::create(&tmp).with_context(|| tmp.display().to_string())?;
            let bytes = http_get_to(server, "/v1/backup", &mut file, &mut progress)?;
            file.sync_all()?;
            drop(file);
            let check = open_db(&tmp).map_err(anyhow::Error::from).and_then(|db| {
                export::verify(&db, seal)
                    .map_err(|e| anyhow::anyhow!("the backup received is inconsistent: {e}"))
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

pub fn restore_cmd(from: &Path, data_dir: &Path, force: bool, seal: &Seal) -> anyhow::Result<()> {
    let s = export::restore(from, data_dir, force, seal).map_err(anyhow::Error::msg)?;
    eprintln!("restored {} games, {} events into {}", s.games, s.events, data_dir.join(FILE_NAME).display());
    Ok(())
}

/// Rewrites every value of a stopped server's log under the key ring's newest key.
pub fn rekey_cmd(data_dir: &Path, seal: &Seal) -> anyhow::Result<()> {
    let Some(ring) = seal.ring() else {
        bail!("rekey needs the key ring: --key-file (or OPENSPORTS_KEY_FILE)")
    };
    drop(open_offline(data_dir)?);
    let mut progress = Progress::new("rekey");
    let done = crate::store::rekey::rekey(&data_dir.join(FILE_NAME), ring, &mut |n| {
        if n.is_multiple_of(4096) {
            progress.update(n as usize, 0)
        }
    })?;
    progress.finish(&format!(
        "{} values now under key {} ({} were not encrypted before)",
        done.values,
        ring.current(),
        done.were_plain
    ));
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
            anyhow::anyhow!("{e}; read it through the server with --url http://ADDR")
        }
        e => e.into(),
    })
}

/// GET `path` from the server and copy the body into `out`, with a progress line. Returns the
/// bytes copied.
pub(crate) fn http_get_to(
    server: &Server,
    path: &str,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> anyhow::Result<u64> {
    let base = server.url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url takes http://HOST:PORT or https://HOST:PORT, got {:?}", server.url);
    }
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(pem) = &server.ca_pem {
        let certs = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()
            .context("reading --ca-cert")?;
        if certs.is_empty() {
            bail!("--ca-cert holds no certificate");
        }
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    let agent: ureq::Agent =
        ureq::Agent::config_builder().tls_config(tls.build()).http_status_as_error(false).build().into();
    let url = format!("{base}{path}");
    let mut request = agent.get(&url);
    if let Some(key) = &server.key {
        request = request.header("Authorization", &format!("Bearer {key}"));
    }
    let mut response = request.call().with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    if status != 200 {
        let mut text = String::new();
        let _ = body.take(64 * 1024).read_to_string(&mut text);
        bail!("GET {url}: {status} {}", text.trim());
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
        progress.update(total as usize, 0);
    }
    Ok(total)
}
