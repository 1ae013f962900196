//! Log endpoints: `GET /v1/games/{id}/events` (export) and `GET /v1/backup` (online backup).
//! Both read one redb snapshot on a blocking thread and stream the body in chunks, so a
//! large game or log never sits in memory whole.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opensports_proto::error_code::http as http_code;
use tokio::sync::mpsc;

use super::{AppState, json_error};
use crate::store::export::Format;

/// Chunks in flight between the reading thread and the socket.
const CHUNKS_IN_FLIGHT: usize = 8;
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, serde::Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

/// An `io::Write` that hands full chunks to the response body.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("client went away"))
    }
}

/// Runs `produce` on a blocking thread; its writes become the streamed body. An error after
/// the headers went out ends the body early (the client sees a truncated transfer).
fn streamed(
    content_type: &'static str,
    produce: impl FnOnce(&mut ChunkWriter) -> std::io::Result<()> + Send + 'static,
) -> Response {
    let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter { buf: Vec::with_capacity(CHUNK_BYTES), tx: tx.clone() };
        let result = produce(&mut w).and_then(|()| std::io::Write::flush(&mut w));
        if let Err(e) = result {
            tracing::warn!(error = %e, "streamed export ended early");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], Body::from_stream(stream)).into_response()
}

fn no_store() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        http_code::NO_STORE,
        "the durable log is disabled on this server (store.enabled = false)",
    )
}

/// `GET /v1/games/{id}/events?format=jsonl|csv`: the game's logged events in seq order.
pub async fn events(
    State(s): State<AppState>,
    admin: super::admin::Admin,
    Path(id): Path<String>,
    super::Params(q): super::Params<ExportQuery>,
) -> Response {
    let Some(store) = s.store.clone() else { return no_store() };
    let format = match q.format.as_deref().unwrap_or("jsonl").parse::<Format>() {
        Ok(f) => f,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, http_code::BAD_REQUEST, &e),
    };
    match store.game(&id) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return json_error(
                StatusCode::NOT_FOUND,
                http_code::NO_SUCH_GAME,
                &format!("no game {id:?} in the log"),
            );
        }
        Err(e) => {
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::STORE_ERROR, &e.to_string());
        }
    }
    admin.audit(&s, "export", &id, serde_json::Value::Null, serde_json::json!({ "format": q.format }));
    let content_type = if format == Format::Csv { "text/csv" } else { "application/x-ndjson" };
    streamed(content_type, move |w| {
        store.export_game(&id, format, w).map(|_| ()).map_err(std::io::Error::other)
    })
}

/// Backups taken at once; more are refused with `503 busy` (each copies the whole log to disk
/// and reads it back).
pub const MAX_BACKUPS: usize = 2;
static BACKUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static BACKUP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One of the [`MAX_BACKUPS`] slots, given back on drop (after the body was streamed).
struct BackupSlot;

impl BackupSlot {
    fn take() -> Option<BackupSlot> {
        use std::sync::atomic::Ordering;
        let taken =
            BACKUPS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_BACKUPS).then_some(n + 1));
        taken.ok().map(|_| BackupSlot)
    }
}

impl Drop for BackupSlot {
    fn drop(&mut self) {
        BACKUPS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// `GET /v1/backup`: a consistent copy of the log (a redb file) taken from one snapshot
/// while the server keeps writing. Written to a file of its own in the data dir first,
/// streamed, then deleted.
pub async fn backup(State(s): State<AppState>, admin: super::admin::Admin) -> Response {
    let Some(store) = s.store.clone() else { return no_store() };
    let Some(slot) = BackupSlot::take() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            http_code::BUSY,
            &format!("{MAX_BACKUPS} backups are being taken; try again when one is done"),
        );
    };
    let n = BACKUP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = store.path().with_extension(format!("backup-{}-{n}", crate::store::now_ms()));
    let made = {
        let (store, tmp) = (store.clone(), tmp.clone());
        tokio::task::spawn_blocking(move || store.backup(&tmp)).await
    };
    let failed = match made {
        Ok(Ok(summary)) => {
            tracing::info!(games = summary.games, events = summary.events, "backup taken");
            let after = serde_json::json!({ "games": summary.games, "events": summary.events });
            admin.audit(&s, "backup", "log", serde_json::Value::Null, after);
            None
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        let mut partial = tmp.clone().into_os_string();
        partial.push(".partial");
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(&tmp);
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, http_code::STORE_ERROR, &why);
    }
    streamed("application/octet-stream", move |w| {
        let _slot = slot;
        let result = std::fs::File::open(&tmp).and_then(|mut f| std::io::copy(&mut f, w).map(|_| ()));
        let _ = std::fs::remove_file(&tmp);
        result
    })
}
