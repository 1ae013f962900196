//! Cheap reading on the subscriber side. At 2M deliveries/s the load generator, which shares
//! two cores with the server, must not parse every message into a document: it finds each
//! message's envelope fields by scanning the frame text. Used the same way for every target.

use std::sync::LazyLock;
use std::time::Duration;

use memchr::memmem::Finder;

use futures_util::{FutureExt as _, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What one message in a frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A `msg` or `snapshot`, with its envelope `ts` (the intended send time, µs).
    Msg(i64),
    /// A `lagged` notice with its `dropped` count.
    Lagged(u64),
    /// Anything else (`subscribed`, `pong`, ...).
    Other,
}

/// SIMD substring search, built once: `str::find` builds a Two-Way searcher per call, which
/// was the generator's largest cost at 2M messages/s.
static OP: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#"{"op":""#));
static TS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#","ts":"#));
static DROPPED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""dropped":"#));
static EVENT_TS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""ts":"#));

/// The `ts` of an event's JSON (what the NATS baseline's messages carry), 0 if none.
pub fn event_ts(payload: &[u8]) -> i64 {
    std::str::from_utf8(payload).ok().and_then(|p| int_after_with(p, &EVENT_TS)).map_or(0, |(ts, _)| ts)
}

/// The integer after the first `key` in `s`, and the rest of `s` after it.
fn int_after_with<'a>(s: &'a str, key: &Finder<'_>) -> Option<(i64, &'a str)> {
    let at = key.find(s.as_bytes())? + key.needle().len();
    let digits = s.as_bytes().get(at..)?;
    let (negative, skip) = if digits.first() == Some(&b'-') { (true, 1) } else { (false, 0) };
    let len = digits[skip..].iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 18 {
        return None;
    }
    let n = digits[skip..skip + len].iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some((if negative { -n } else { n }, &s[at + skip + len..]))
}

/// The generator's WebSocket settings: tungstenite zero-fills its whole read buffer before every
/// read (128 KiB by default), which at 2M messages/s was a tenth of the generator's CPU.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

/// Calls `f` for every message of a server frame: one message, or a batch (JSON array). The
/// envelope's `ts` comes before `data` (PROTOCOL.md 2.2), and no `data` the server publishes
/// contains `{"op":"`, so scanning finds each message's own fields.
pub fn scan(frame: &str, mut f: impl FnMut(Seen)) {
    let mut rest = frame;
    while let Some(i) = OP.find(rest.as_bytes()) {
        rest = &rest[i + OP.needle().len()..];
        if rest.starts_with("msg\"") || rest.starts_with("snapshot\"") {
            match int_after_with(rest, &TS) {
                Some((ts, after)) => {
                    f(Seen::Msg(ts));
                    rest = after;
                }
                None => f(Seen::Other),
            }
        } else if rest.starts_with("lagged\"") {
            let n = int_after_with(rest, &DROPPED).map_or(0, |(n, _)| n.max(0) as u64);
            f(Seen::Lagged(n));
        } else {
            f(Seen::Other);
        }
    }
}

/// A subscriber on the OpenSports WebSocket protocol (or the floor relay's subset of it) that
/// hands back raw frames.
pub struct RawSub {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RawSub {
    /// Connects and subscribes `pattern` in `mode` (`all` or `latest`); returns once the server
    /// answered `subscribed`.
    pub async fn connect(url: &str, pattern: &str, mode: &str, delay_ms: u64) -> anyhow::Result<RawSub> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
        RawSub::subscribe(ws, pattern, mode, delay_ms).await
    }

    /// Like [`RawSub::connect`] over a TCP connection already made (from a chosen source
    /// address), with tungstenite's read buffer at `read_buffer` bytes.
    pub async fn connect_on(
        tcp: TcpStream,
        url: &str,
        pattern: &str,
        read_buffer: usize,
    ) -> anyhow::Result<RawSub> {
        let config = ws_config().read_buffer_size(read_buffer);
        let tcp = MaybeTlsStream::Plain(tcp);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
        RawSub::subscribe(ws, pattern, "all", 0).await
    }

    /// Subscribes and waits for the server's `subscribed`.
    async fn subscribe(
        mut ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        pattern: &str,
        mode: &str,
        delay_ms: u64,
    ) -> anyhow::Result<RawSub> {
        let mut sub = serde_json::json!({"op": "sub", "topics": [pattern], "mode": mode});
        if delay_ms > 0 {
            sub["delay_ms"] = delay_ms.into();
        }
        let sub = sub.to_string();
        ws.send(Message::text(sub)).await?;
        let mut raw = RawSub { ws };
        loop {
            let frame = raw.next_frame(Duration::from_secs(10)).await?;
            let frame = frame.ok_or_else(|| anyhow::anyhow!("no `subscribed` within 10 s"))?;
            anyhow::ensure!(!frame.contains(r#""op":"error""#), "subscribe refused: {frame}");
            if frame.contains(r#""op":"subscribed""#) {
                return Ok(raw);
            }
        }
    }

    /// The next text frame, or `None` after `idle` without one or at close. A frame already
    /// there is taken without arming the idle timer.
    pub async fn next_frame(&mut self, idle: Duration) -> anyhow::Result<Option<Utf8Bytes>> {
        loop {
            let next = match self.ws.next().now_or_never() {
                Some(next) => next,
                None => tokio::time::timeout(idle, self.ws.next()).await.unwrap_or(None),
            };
            match next {
                None => return Ok(None),
                Some(frame) => match frame? {
                    Message::Text(t) => return Ok(Some(t)),
                    Message::Close(_) => return Ok(None),
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_message_of_a_batch_and_its_envelope_ts() {
        let batch = r#"[{"op":"msg","topic":"game/a/state","seq":1,"ts":17,"data":{"ts":99,"x":[1]}},{"op":"snapshot","topic":"b","seq":4,"ts":-3,"data":{}},{"op":"lagged","dropped":12},{"op":"pong"}]"#;
        let mut seen = Vec::new();
        scan(batch, |s| seen.push(s));
        assert_eq!(seen, vec![Seen::Msg(17), Seen::Msg(-3), Seen::Lagged(12), Seen::Other]);
        let mut one = Vec::new();
        scan(r#"{"op":"msg","topic":"t","seq":2,"ts":5,"data":null}"#, |s| one.push(s));
        assert_eq!(one, vec![Seen::Msg(5)]);
        assert_eq!(
            event_ts(br#"{"v":1,"game":"lt-0","seq":7,"ts":1764556800000000,"body":{}}"#),
            1_764_556_800_000_000
        );
        assert_eq!(event_ts(b"{}"), 0);
    }
}
