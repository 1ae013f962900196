//! `--trace-ratio`: an OTLP/HTTP sink in the load test's process, so a traced server has a
//! collector to send to. It reads each request (headers, then `Content-Length` bytes),
//! answers `200` with an empty body and counts requests and bytes; it does not decode (the
//! tests check the encoding against the OpenTelemetry definitions: tests/tests/telemetry.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

/// Starts the sink on loopback; returns its base URL and its counts.
pub fn start() -> anyhow::Result<(String, Arc<Counts>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let c = c.clone();
            std::thread::spawn(move || serve(conn, &c));
        }
    });
    Ok((url, counts))
}

/// Kept-alive HTTP/1.1: one request after another until the client closes.
fn serve(conn: TcpStream, counts: &Counts) {
    let Ok(mut out) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        counts.requests.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if out
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
            )
            .is_err()
        {
            return;
        }
    }
}
