//! QUIC publisher with acks and retry.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opensports_proto::codec::{self, Codec};
use opensports_proto::control::Control;
use opensports_proto::tracking::TrackingSample;
use opensports_proto::{Event, error_code};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::trust::{Trust, client_config};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("server refused the hello: {0}")]
    Refused(String),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("encoding the event: {0}")]
    Encode(String),
    #[error("timed out waiting for acks ({unacked} events un-acked)")]
    AckTimeout { unacked: usize },
}

/// Settings of a [`Publisher`].
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub addr: SocketAddr,
    /// Name checked against the certificate with [`Trust::CaPem`]. Default `localhost`.
    pub server_name: String,
    pub trust: Trust,
    pub token: String,
    /// Publisher name shown in the server's logs.
    pub name: String,
    /// Body codec for events. Default rkyv (the zero-copy path).
    pub codec: Codec,
    /// Most un-acked events held; `send` waits for acks beyond it. Default 65536.
    pub max_unacked: usize,
    /// Reconnect attempts after a lost connection before `send` gives up. Default 20.
    pub reconnect_attempts: u32,
    /// Most game streams held open (the server allows `ingest.max_streams_per_connection`,
    /// default 256). Beyond it the stream of a game with nothing un-acked is finished first.
    pub max_open_streams: usize,
    /// Other cluster nodes, tried in turn after `addr` when a connection is lost: the
    /// publisher fails over and resends what was not acked (the node resumes after the last
    /// ack). Default none.
    pub failover: Vec<SocketAddr>,
    /// How long one connection attempt may take. Default 3 s.
    pub connect_timeout: Duration,
}

impl PublisherConfig {
    pub fn new(addr: SocketAddr, trust: Trust, token: impl Into<String>) -> PublisherConfig {
        PublisherConfig {
            addr,
            server_name: "localhost".into(),
            trust,
            token: token.into(),
            name: "opensports-client".into(),
            codec: Codec::Rkyv,
            max_unacked: 65_536,
            reconnect_attempts: 20,
            max_open_streams: 128,
            failover: Vec::new(),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// State shared with the control-stream reader task.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<AckState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct AckState {
    acked: HashMap<String, u64>,
    /// Frames sent but not acked, per game, by seq: resent after a reconnect.
    unacked: HashMap<String, BTreeMap<u64, Bytes>>,
    unacked_count: usize,
    /// Rejects and errors the server sent (most recent 1024).
    notices: VecDeque<Control>,
    lost: Option<String>,
}

impl AckState {
    fn ack(&mut self, game: &str, seq: u64) {
        let acked = self.acked.entry(game.to_string()).or_insert(0);
        *acked = (*acked).max(seq);
        if let Some(pending) = self.unacked.get_mut(game) {
            let keep = pending.split_off(&(seq + 1));
            self.unacked_count -= pending.len();
            *pending = keep;
        }
    }

    fn notice(&mut self, msg: Control) {
        // A rejected event will never be acked: stop waiting for it.
        if let Control::Reject { game: Some(g), seq: Some(s), .. } = &msg
            && let Some(pending) = self.unacked.get_mut(g)
            && pending.remove(s).is_some()
        {
            self.unacked_count -= 1;
        }
        if self.notices.len() >= 1024 {
            self.notices.pop_front();
        }
        self.notices.push_back(msg);
    }
}

/// A connected publisher. Not `Clone`: one owner sends; acks arrive in the background.
#[derive(Debug)]
pub struct Publisher {
    cfg: PublisherConfig,
    /// Which server: 0 is `cfg.addr`, then `cfg.failover` in order.
    node: usize,
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    streams: HashMap<String, quinn::SendStream>,
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
    buf: Vec<u8>,
    max_frame: u32,
    /// The server's stream limit from its welcome (0 when it did not say).
    server_max_streams: u32,
}

impl Publisher {
    pub async fn connect(cfg: PublisherConfig) -> Result<Publisher, PublishError> {
        let tls = client_config(&cfg.trust).map_err(PublishError::Tls)?;
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| PublishError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(5)));
        client.transport_config(Arc::new(transport));
        let bind: SocketAddr = if cfg.addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .map_err(|_| PublishError::Tls("bad bind address".into()))?;
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| PublishError::Connect { addr: cfg.addr, reason: e.to_string() })?;
        endpoint.set_default_client_config(client);
        let shared = Arc::new(Shared::default());
        let (conn, reader, (max_frame, server_max_streams)) =
            open(&endpoint, &cfg, cfg.addr, &shared).await?;
        Ok(Publisher {
            node: 0,
            cfg,
            endpoint,
            conn,
            streams: HashMap::new(),
            shared,
            reader,
            buf: Vec::new(),
            max_frame,
            server_max_streams,
        })
    }

    /// Sends one event on its game's stream. Waits while `max_unacked` events are in flight.
    /// After a lost connection it reconnects and resends every un-acked event first.
    pub async fn send(&mut self, event: &Event) -> Result<(), PublishError> {
        self.buf.clear();
        match self.cfg.codec {
            Codec::Json => codec::write_json_frame(&mut self.buf, event)
                .map_err(|e| PublishError::Encode(e.to_string()))?,
            Codec::Rkyv => codec::write_rkyv_frame(&mut self.buf, event)
                .map_err(|e| PublishError::Encode(e.to_string()))?,
        }
        let frame = Bytes::copy_from_slice(&self.buf);
        self.send_frame(&event.game, event.seq, frame).await?;
        if is_last(event) {
            self.finish_game(&event.game).await;
        }
        Ok(())
    }

    /// Sends pre-encoded frame bytes for `(game, seq)` (tests and tools that craft frames).
    pub async fn send_frame(&mut self, game: &str, seq: u64, frame: Bytes) -> Result<(), PublishError> {
        self.wait_for_room().await?;
        {
            let mut st = self.shared.state.lock();
            let pending = st.unacked.entry(game.to_string()).or_default();
            if pending.insert(seq, frame.clone()).is_none() {
                st.unacked_count += 1;
            }
        }
        if self.write(game, &frame).await.is_err() {
            self.reconnect().await?;
        }
        Ok(())
    }

    /// Sends a tracking sample as a datagram (lossy; latest wins on the server).
    pub fn send_tracking(&self, sample: &TrackingSample) -> Result<(), PublishError> {
        let mut body = vec![Codec::Json as u8];
        serde_json::to_writer(&mut body, sample).map_err(|e| PublishError::Encode(e.to_string()))?;
        self.conn.send_datagram(Bytes::from(body)).map_err(|e| PublishError::Lost(e.to_string()))
    }

    /// Waits until every event sent so far is acked (or rejected).
    pub async fn flush(&mut self, timeout: Duration) -> Result<(), PublishError> {
        for stream in self.streams.values_mut() {
            let _ = stream.flush().await;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let shared = self.shared.clone();
            let notified = shared.notify.notified();
            let (unacked, lost) = {
                let st = self.shared.state.lock();
                (st.unacked_count, st.lost.clone())
            };
            if unacked == 0 {
                return Ok(());
            }
            if lost.is_some() {
                self.reconnect().await?;
                continue;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(PublishError::AckTimeout { unacked });
            }
        }
    }

    /// Highest seq of `game` the server acknowledged.
    pub fn acked(&self, game: &str) -> u64 {
        self.shared.state.lock().acked.get(game).copied().unwrap_or(0)
    }

    /// Events sent and not yet acked.
    pub fn unacked(&self) -> usize {
        self.shared.state.lock().unacked_count
    }

    /// Rejects and errors received from the server since the last call.
    pub fn take_notices(&self) -> Vec<Control> {
        self.shared.state.lock().notices.drain(..).collect()
    }

    /// Largest frame the server accepts (from its welcome).
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// The QUIC connection, for tools and tests that open raw streams.
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Closes the game's stream (its events end); a later event opens a new one.
    pub async fn finish_game(&mut self, game: &str) {
        if let Some(mut s) = self.streams.remove(game) {
            let _ = s.finish();
        }
    }

    /// Closes the connection after trying to deliver what is in flight.
    pub async fn close(mut self, timeout: Duration) -> Result<(), PublishError> {
        let result = self.flush(timeout).await;
        self.conn.close(error_code::quic::NO_ERROR.into(), b"bye");
        self.reader.abort();
        self.endpoint.wait_idle().await;
        result
    }

    async fn wait_for_room(&mut self) -> Result<(), PublishError> {
        loop {
            let shared = self.shared.clone();
            let notified = shared.notify.notified();
            let (count, lost) = {
                let st = self.shared.state.lock();
                (st.unacked_count, st.lost.is_some())
            };
            if count < self.cfg.max_unacked {
                return Ok(());
            }
            if lost {
                self.reconnect().await?;
                continue;
            }
            notified.await;
        }
    }

    async fn write(&mut self, game: &str, frame: &[u8]) -> Result<(), String> {
        if !self.streams.contains_key(game) {
            self.make_room_for_stream().await?;
            let s = self.conn.open_uni().await.map_err(|e| e.to_string())?;
            self.streams.insert(game.to_string(), s);
        }
        let Some(stream) = self.streams.get_mut(game) else { return Err("no stream".into()) };
        match stream.write_all(frame).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // A stopped stream (e.g. after a framing error) is reopened on the next event.
                self.streams.remove(game);
                Err(e.to_string())
            }
        }
    }

    /// Keeps open streams under `max_open_streams` by finishing the stream of a game whose
    /// events are all acked. Only such a stream may be closed: a game's events must be on one
    /// stream at a time, or two streams could race in the server and reorder them.
    async fn make_room_for_stream(&mut self) -> Result<(), String> {
        let limit = match self.server_max_streams {
            0 => self.cfg.max_open_streams,
            server => self.cfg.max_open_streams.min(server as usize),
        }
        .max(1);
        while self.streams.len() >= limit {
            let shared = self.shared.clone();
            let notified = shared.notify.notified();
            let idle = {
                let st = shared.state.lock();
                if st.lost.is_some() {
                    return Err("connection lost".into());
                }
                self.streams.keys().find(|g| st.unacked.get(*g).is_none_or(|m| m.is_empty())).cloned()
            };
            match idle {
                Some(g) => self.finish_game(&g).await,
                None => notified.await,
            }
        }
        Ok(())
    }

    /// The server this publisher is connected to (or last tried).
    pub fn server(&self) -> SocketAddr {
        self.node_addr(self.node)
    }

    fn node_addr(&self, i: usize) -> SocketAddr {
        match i {
            0 => self.cfg.addr,
            i => self.cfg.failover[i - 1],
        }
    }

    /// Opens a new connection and resends every un-acked event, per game in seq order. With
    /// `failover` nodes, each attempt goes to the next node in turn.
    pub async fn reconnect(&mut self) -> Result<(), PublishError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.reader.abort();
            self.streams.clear();
            self.shared.state.lock().lost = None;
            if !self.cfg.failover.is_empty() {
                self.node = (self.node + 1) % (self.cfg.failover.len() + 1);
            }
            let addr = self.node_addr(self.node);
            match open(&self.endpoint, &self.cfg, addr, &self.shared).await {
                Ok((conn, reader, (max_frame, max_streams))) => {
                    (self.conn, self.reader) = (conn, reader);
                    (self.max_frame, self.server_max_streams) = (max_frame, max_streams);
                    if self.resend().await.is_ok() {
                        return Ok(());
                    }
                }
                Err(PublishError::Refused(r)) => return Err(PublishError::Refused(r)),
                Err(e) if attempt >= self.cfg.reconnect_attempts => return Err(e),
                Err(_) => {}
            }
            if attempt >= self.cfg.reconnect_attempts {
                return Err(PublishError::Lost(format!("gave up after {attempt} attempts")));
            }
            tokio::time::sleep(crate::backoff::delay(attempt.saturating_sub(1))).await;
        }
    }

    async fn resend(&mut self) -> Result<(), String> {
        let pending: Vec<(String, Vec<Bytes>)> = {
            let st = self.shared.state.lock();
            st.unacked.iter().map(|(g, m)| (g.clone(), m.values().cloned().collect())).collect()
        };
        for (game, frames) in pending {
            for f in frames {
                self.write(&game, &f).await?;
            }
        }
        Ok(())
    }
}

/// True for the event that ends a game (its stream can be finished after it).
fn is_last(event: &Event) -> bool {
    use opensports_proto::{Body, basketball, f1, football, soccer};
    matches!(
        event.body,
        Body::Basketball(basketball::Event::GameEnd)
            | Body::Football(football::Event::GameEnd)
            | Body::Soccer(soccer::Event::GameEnd)
            | Body::F1(f1::Event::SessionEnd)
    )
}

/// Connects, says hello, waits for the welcome, and starts the control reader.
async fn open(
    endpoint: &quinn::Endpoint,
    cfg: &PublisherConfig,
    addr: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<(quinn::Connection, tokio::task::JoinHandle<()>, (u32, u32)), PublishError> {
    let connect_err = |reason: String| PublishError::Connect { addr, reason };
    let connecting = endpoint.connect(addr, &cfg.server_name).map_err(|e| connect_err(e.to_string()))?;
    let conn = tokio::time::timeout(cfg.connect_timeout, connecting)
        .await
        .map_err(|_| connect_err(format!("no answer in {:?}", cfg.connect_timeout)))?
        .map_err(|e| connect_err(e.to_string()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| connect_err(e.to_string()))?;
    let mut buf = Vec::new();
    let hello = Control::Hello { token: cfg.token.clone(), publisher: cfg.name.clone() };
    codec::write_json_frame(&mut buf, &hello).map_err(|e| PublishError::Encode(e.to_string()))?;
    send.write_all(&buf).await.map_err(|e| connect_err(e.to_string()))?;
    let limits = match read_control(&mut recv).await {
        Ok(Control::Welcome { max_frame, max_streams, .. }) => (max_frame, max_streams),
        Ok(Control::Error { code, message, .. }) => {
            return Err(PublishError::Refused(format!("{code}: {message}")));
        }
        Ok(other) => return Err(PublishError::Refused(format!("unexpected {other:?}"))),
        Err(e) => return Err(PublishError::Refused(close_reason(&conn).unwrap_or(e))),
    };
    let shared2 = shared.clone();
    let conn2 = conn.clone();
    let reader = tokio::spawn(async move {
        // `send` stays alive here so the server's control stream is not reset under it.
        let _send = send;
        loop {
            match read_control(&mut recv).await {
                Ok(Control::Ack { game, seq }) => shared2.state.lock().ack(&game, seq),
                Ok(msg) => shared2.state.lock().notice(msg),
                Err(e) => {
                    let reason = close_reason(&conn2).unwrap_or(e);
                    shared2.state.lock().lost = Some(reason);
                    shared2.notify.notify_waiters();
                    return;
                }
            }
            shared2.notify.notify_waiters();
        }
    });
    Ok((conn, reader, limits))
}

/// The connection's close reason, with the code's documented name when the server closed it.
fn close_reason(conn: &quinn::Connection) -> Option<String> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let code = u32::try_from(c.error_code.into_inner()).unwrap_or(u32::MAX);
            Some(format!("{}: {}", error_code::quic::name(code), String::from_utf8_lossy(&c.reason)))
        }
        other => Some(other.to_string()),
    }
}

async fn read_control<R: AsyncRead + Unpin>(r: &mut R) -> Result<Control, String> {
    let mut header = [0u8; codec::LEN_BYTES];
    r.read_exact(&mut header).await.map_err(|e| e.to_string())?;
    let len = codec::frame_len(header, 1 << 20).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    if body.first() != Some(&(Codec::Json as u8)) {
        return Err("control frames are JSON".into());
    }
    codec::decode_json(&body[1..]).map_err(|e| e.to_string())
}
