//! A Server-Sent Events client over a raw socket (chunked bodies, `id`/`data` lines), for
//! the tests that read `GET /v1/sse`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// One raw HTTP/1.1 request with extra header lines; the connection, the status and the
/// response head (lower-cased) are returned, the body left unread.
pub async fn request(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (TcpStream, u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    (s, status, head, raw[split..].to_vec())
}

/// A whole (non-streaming) response: status, head and body.
pub async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut h = headers.to_vec();
    h.push(("Connection", "close"));
    let (mut s, status, head, mut body) = request(addr, path, &h).await;
    s.read_to_end(&mut body).await.unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    (status, head, body)
}

/// One Server-Sent Event: its `id` (if any) and its `data` parsed as JSON.
#[derive(Debug)]
pub struct Sse {
    pub id: Option<String>,
    pub data: serde_json::Value,
}

/// Reads an SSE response body (chunked) event by event.
#[derive(Debug)]
pub struct SseReader {
    conn: TcpStream,
    /// Raw bytes not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked text not yet split into events.
    text: String,
    /// The last (zero-length) chunk was read: the response is over.
    ended: bool,
}

impl SseReader {
    pub async fn open(
        addr: std::net::SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<SseReader, (u16, String)> {
        let (mut conn, status, head, raw) = request(addr, path, headers).await;
        if status != 200 {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let have = raw.len().min(len);
            let mut body = raw;
            body.resize(len, 0);
            conn.read_exact(&mut body[have..]).await.unwrap();
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        Ok(SseReader { conn, raw, text: String::new(), ended: false })
    }

    pub async fn next(&mut self) -> Sse {
        self.next_or_end().await.expect("the stream ended")
    }

    /// The next event, or `None` once the stream ended.
    pub async fn next_or_end(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(v.trim_start()).unwrap());
                    }
                }
                match data {
                    Some(data) => return Some(Sse { id, data }),
                    None => continue, // a keep-alive comment
                }
            }
            if self.dechunk() {
                continue;
            }
            if self.ended {
                return None;
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.conn.read(&mut buf))
                .await
                .expect("an event in time")
                .unwrap();
            if n == 0 {
                return None;
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// Moves whole chunks from `raw` to `text`; whether any moved.
    fn dechunk(&mut self) -> bool {
        let mut moved = false;
        while let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..eol]).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                self.ended = true;
                self.raw.clear();
                return moved;
            }
            if self.raw.len() < eol + 2 + n + 2 {
                break;
            }
            self.text.push_str(std::str::from_utf8(&self.raw[eol + 2..eol + 2 + n]).unwrap());
            self.raw.drain(..eol + 2 + n + 2);
            moved = true;
        }
        moved
    }

    /// Reads until the publication of `topic` with seq `seq`; returns every event read.
    pub async fn until_seq(&mut self, seq: u64) -> Vec<Sse> {
        // Up to the first event with `seq`, then to the end of its chunk (the event with an id).
        let mut got = Vec::new();
        let mut seen = false;
        loop {
            let e = self.next().await;
            seen |= e.data["seq"].as_u64() == Some(seq);
            let done = seen && e.id.is_some();
            got.push(e);
            if done {
                return got;
            }
        }
    }
}
