//! The commands of the `opensports` binary beyond `serve`: `demo`, `sim`, `watch`.
//!
//! # Layout
//! - [`demo`]: server + simulated games on one command.
//! - [`sim`]: simulated games published to a server.
//! - [`watch`]: a terminal subscriber.
//! - [`keys`]: API keys on a data dir, offline.
//! - [`plugin`], [`kits`]: the plugin dev kit (Rust, TypeScript, Python).
//! - [`progress`]: a small progress line for long runs.

pub mod demo;
pub mod keys;
pub mod kits;
pub mod plugin;
pub mod progress;
pub mod replay;
pub mod report;
pub mod sim;
pub mod store;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;

use opensports_client::Trust;

/// Trust for a server whose data dir is local: pin the certificate found there.
pub fn trust_from_data_dir(data_dir: &Path) -> anyhow::Result<Trust> {
    let path = data_dir.join("tls").join("cert.pem");
    let pem = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!("{}: {e} (start the server once, or pass --fingerprint)", path.display())
    })?;
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Trust::Fingerprint(crate::ingest::tls::fingerprint(&der)))
}

/// The address to show a user for a listener bound to `addr` (0.0.0.0 → 127.0.0.1).
pub fn display_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}
