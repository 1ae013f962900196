//! The providers' HTTP client: HTTP/1.1 with kept-alive connections (webhooks, FCM, Web Push)
//! and HTTP/2 over TLS with one multiplexed connection per host (APNs, which speaks nothing
//! else). `https` trusts the web PKI's roots plus `push.ca_file`.
//!
//! A device's URL comes from the network: unless `push.allow_private_endpoints`, an address
//! that is loopback, private, link-local or otherwise not public is refused at connect time
//! (after name resolution, so a name pointing inside is refused too).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::{http1, http2};
use hyper::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

use super::Outcome;

/// Longest response body read (a provider's error document).
const MAX_BODY: usize = 64 * 1024;
/// Idle HTTP/1.1 connections kept per host.
const IDLE_PER_HOST: usize = 64;

/// A provider's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// `Retry-After` in seconds, when given as seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
    }
}

/// An attempt at a provider that answers with the status alone (webhooks, Web Push): 2xx
/// accepted; 404 / 410 gone; 429 / 5xx again later (`Retry-After` honoured); another status
/// refused; no answer again later.
pub fn outcome(sent: Result<Reply, String>) -> Outcome {
    match sent {
        Ok(reply) => match reply.status {
            200..=299 => Outcome::Accepted,
            404 | 410 => Outcome::Gone,
            429 | 500..=599 => {
                Outcome::Retry { reason: format!("http {}", reply.status), after_secs: reply.retry_after() }
            }
            s => Outcome::Rejected(format!("http {s}")),
        },
        Err(e) => Outcome::Retry { reason: e, after_secs: None },
    }
}

pub struct Http {
    tls: tokio_rustls::TlsConnector,
    tls_h2: tokio_rustls::TlsConnector,
    allow_private: bool,
    idle: Mutex<HashMap<String, Vec<http1::SendRequest<Body>>>>,
    h2: tokio::sync::Mutex<HashMap<String, http2::SendRequest<Body>>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("allow_private", &self.allow_private).finish_non_exhaustive()
    }
}

impl Http {
    /// `ca_pem`: extra trust roots (PEM certificates), for staging and tests.
    pub fn new(ca_pem: Option<&[u8]>, allow_private: bool) -> Result<Http, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(pem) = ca_pem {
            let mut rd = pem;
            for cert in rustls_pemfile_certs(&mut rd)? {
                roots.add(cert).map_err(|e| format!("push.ca_file: {e}"))?;
            }
        }
        let config = |alpn: &[&[u8]]| -> Result<Arc<rustls::ClientConfig>, String> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        Ok(Http {
            tls: config(&[b"http/1.1"])?.into(),
            tls_h2: config(&[b"h2"])?.into(),
            allow_private,
            idle: Mutex::default(),
            h2: tokio::sync::Mutex::default(),
        })
    }

    /// Sends `req` (its URI a path; `url` says where) over HTTP/1.1, reusing an idle
    /// connection to the same host when there is one.
    pub async fn send(&self, url: &url::Url, mut req: Request<Body>) -> Result<Reply, String> {
        let origin = url.origin().ascii_serialization();
        *req.uri_mut() = path_and_query(url).parse().map_err(|e| format!("url: {e}"))?;
        req.headers_mut()
            .insert(hyper::header::HOST, url.authority().parse().map_err(|e| format!("url: {e}"))?);
        let idle = self.idle.lock().get_mut(&origin).and_then(|v| v.pop());
        let mut sender = match idle {
            Some(s) if s.is_ready() => s,
            _ => self.connect_h1(url).await?,
        };
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let reply = read(resp).await?;
        if !sender.is_closed() {
            let mut idle = self.idle.lock();
            let pool = idle.entry(origin).or_default();
            if pool.len() < IDLE_PER_HOST {
                pool.push(sender);
            }
        }
        Ok(reply)
    }

    /// Sends `req` over HTTP/2 (TLS, ALPN `h2`) on the host's one connection, opened on first
    /// use and again after it closes.
    pub async fn send_h2(&self, url: &url::Url, mut req: Request<Body>) -> Result<Reply, String> {
        let origin = url.origin().ascii_serialization();
        *req.uri_mut() = url.as_str().parse().map_err(|e| format!("url: {e}"))?;
        let mut sender = {
            let mut conns = self.h2.lock().await;
            match conns.get(&origin) {
                Some(s) if !s.is_closed() => s.clone(),
                _ => {
                    let s = self.connect_h2(url).await?;
                    conns.insert(origin, s.clone());
                    s
                }
            }
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        read(resp).await
    }

    async fn tcp(&self, url: &url::Url) -> Result<tokio::net::TcpStream, String> {
        let host = url.host_str().ok_or("no host")?;
        let port = url.port_or_known_default().ok_or("no port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("resolve {host}: {e}"))?
            .collect();
        let mut last = format!("{host}: no address");
        for a in addrs {
            if !self.allow_private && !public(a.ip()) {
                last = format!("{host} is {}, not a public address (push.allow_private_endpoints)", a.ip());
                continue;
            }
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = format!("connect {a}: {e}"),
            }
        }
        Err(last)
    }

    async fn connect_h1(&self, url: &url::Url) -> Result<http1::SendRequest<Body>, String> {
        let tcp = self.tcp(url).await?;
        if url.scheme() == "https" {
            let tls = self.tls.connect(server_name(url)?, tcp).await.map_err(|e| format!("tls: {e}"))?;
            handshake_h1(TokioIo::new(tls)).await
        } else {
            handshake_h1(TokioIo::new(tcp)).await
        }
    }

    async fn connect_h2(&self, url: &url::Url) -> Result<http2::SendRequest<Body>, String> {
        if url.scheme() != "https" {
            return Err("HTTP/2 endpoints must be https".into());
        }
        let tcp = self.tcp(url).await?;
        let tls = self.tls_h2.connect(server_name(url)?, tcp).await.map_err(|e| format!("tls: {e}"))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err("the endpoint did not agree to HTTP/2 (ALPN h2)".into());
        }
        let (sender, conn) =
            http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

fn rustls_pemfile_certs(rd: &mut &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(rd)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("push.ca_file: {e}"))
}

fn server_name(url: &url::Url) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let host = url.host_str().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())
}

fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

async fn handshake_h1<T>(io: T) -> Result<http1::SendRequest<Body>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let (parts, body) = resp.into_parts();
    let body = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
}

/// Whether `ip` is a public unicast address.
pub fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::public;

    #[test]
    fn inside_addresses_are_not_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!public(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["8.8.8.8", "2606:4700::1111"] {
            assert!(public(outside.parse().unwrap()), "{outside}");
        }
    }
}
