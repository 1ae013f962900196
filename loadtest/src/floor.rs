//! The floor baseline: a naive relay with no processing. QUIC uni streams → one
//! `tokio::sync::broadcast` (capacity 65,536) → every WebSocket, which feeds everything queued
//! and flushes once (design.md's floor, as `../shared/anchor-bench`'s `quic_relay`). It speaks
//! just enough of the protocol for the same publishers and subscribers: hello/welcome, a cumulative
//! ack per read of the stream, `subscribed` after any `sub` (it ignores patterns and sends everything), and
//! `msg` frames with a per-game seq.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use opensports_proto::codec::{self, Codec};
use opensports_proto::control::Control;
use opensports_server::ingest::frame::read_frame;
use tokio::sync::{Mutex, broadcast};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// How long a started frame may take (the same default as the server's).
const FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Addresses and the certificate fingerprint of a running floor relay.
#[derive(Debug)]
pub struct Floor {
    pub quic_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub fingerprint: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Floor {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(serde::Deserialize)]
struct Ids {
    game: String,
    seq: u64,
    ts: i64,
}

pub async fn start(data_dir: &std::path::Path) -> anyhow::Result<Floor> {
    let cfg =
        opensports_server::config::ServerConfig { data_dir: data_dir.to_path_buf(), ..Default::default() };
    let tls = opensports_server::ingest::tls::load_or_generate(&cfg)?;
    let server_config = opensports_server::ingest::tls::server_config(&tls, 1024)?;
    let endpoint = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (quic_addr, http_addr) = (endpoint.local_addr()?, tcp.local_addr()?);
    let (tx, _) = broadcast::channel::<Utf8Bytes>(1 << 16);
    let seqs = Arc::new(std::sync::Mutex::new(HashMap::<String, u64>::new()));

    let quic_tx = tx.clone();
    let quic = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let (tx, seqs) = (quic_tx.clone(), seqs.clone());
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((mut send, mut recv)) = conn.accept_bi().await else { return };
                let mut buf = Vec::new();
                if !matches!(
                    read_frame(&mut recv, 16 * 1024, &mut buf, FRAME_TIMEOUT).await,
                    Ok(Some(Codec::Json))
                ) {
                    return;
                }
                let mut out = Vec::new();
                let welcome =
                    Control::Welcome { server: "floor".into(), max_frame: 65_536, max_streams: 1024 };
                if codec::write_json_frame(&mut out, &welcome).is_err() || send.write_all(&out).await.is_err()
                {
                    return;
                }
                let send = Arc::new(Mutex::new(send));
                while let Ok(uni) = conn.accept_uni().await {
                    let (tx, seqs, send) = (tx.clone(), seqs.clone(), send.clone());
                    tokio::spawn(async move {
                        let (mut buf, mut out) = (Vec::new(), Vec::new());
                        // Many frames per read, and one cumulative ack per read's worth (what
                        // the server's ack after a group commit amounts to).
                        let mut uni = tokio::io::BufReader::with_capacity(64 * 1024, uni);
                        while let Ok(Some(_)) = read_frame(&mut uni, 65_536, &mut buf, FRAME_TIMEOUT).await {
                            let Ok(ids) = serde_json::from_slice::<Ids>(&buf) else { continue };
                            let seq = {
                                let mut s = seqs.lock().unwrap_or_else(|e| e.into_inner());
                                let n = s.entry(ids.game.clone()).or_insert(0);
                                *n += 1;
                                *n
                            };
                            let frame = format!(
                                r#"{{"op":"msg","topic":"game/{}/state","seq":{seq},"ts":{},"data":{}}}"#,
                                ids.game,
                                ids.ts,
                                String::from_utf8_lossy(&buf)
                            );
                            let _ = tx.send(Utf8Bytes::from(frame));
                            if !uni.buffer().is_empty() {
                                continue;
                            }
                            out.clear();
                            let ack = Control::Ack { game: ids.game, seq: ids.seq };
                            if codec::write_json_frame(&mut out, &ack).is_ok() {
                                let _ = send.lock().await.write_all(&out).await;
                            }
                        }
                    });
                }
            });
        }
    });

    let ws = tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let _ = stream.set_nodelay(true);
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                // The subscriber's `sub`: answer it, then relay everything.
                let topics = match ws.next().await {
                    Some(Ok(Message::Text(t))) => serde_json::from_str::<serde_json::Value>(&t)
                        .ok()
                        .map(|v| v["topics"].clone())
                        .unwrap_or_default(),
                    _ => return,
                };
                let ok = serde_json::json!({"op": "subscribed", "topics": topics}).to_string();
                if ws.send(Message::text(ok)).await.is_err() {
                    return;
                }
                // As design.md's floor: feed everything already queued, then flush once.
                loop {
                    let first = match rx.recv().await {
                        Ok(frame) => Message::Text(frame),
                        Err(broadcast::error::RecvError::Lagged(n)) => lagged(n),
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if ws.feed(first).await.is_err() {
                        return;
                    }
                    loop {
                        let next = match rx.try_recv() {
                            Ok(frame) => Message::Text(frame),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => lagged(n),
                            Err(_) => break,
                        };
                        if ws.feed(next).await.is_err() {
                            return;
                        }
                    }
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(Floor { quic_addr, http_addr, fingerprint: tls.fingerprint, tasks: vec![quic, ws] })
}

/// The floor's notice that a subscriber fell `n` messages behind the broadcast ring.
fn lagged(n: u64) -> Message {
    Message::text(format!(r#"{{"op":"lagged","dropped":{n}}}"#))
}
