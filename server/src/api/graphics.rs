//! `GET /v1/graphics/{game}.json|.xml|.csv`: a game as the flat document graphics engines read
//! (`crate::graphics`), with an `ETag` over its values, `304` on `If-None-Match`, and a
//! long-poll: `?wait=S` (at most [`MAX_WAIT_SECS`]) holds a request whose `If-None-Match` is
//! still current until the document changes or S seconds pass. `?delay=ms` reads every
//! field as it was that long ago by source time (the graphics run behind a delayed picture).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opensports_proto::error_code::http as http_code;
use opensports_proto::topic;

use super::admin::Caller;
use super::{AppState, json_error};
use crate::graphics::{Document, Encoding};

/// Longest long-poll.
pub const MAX_WAIT_SECS: u64 = 30;
/// How often a long-poll looks for a change.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, serde::Deserialize)]
pub struct GraphicsQuery {
    /// Seconds to wait for a change when `If-None-Match` is current.
    wait: Option<u64>,
    /// Milliseconds behind the source time.
    #[serde(default)]
    delay: u64,
}

pub async fn document(
    State(s): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
    super::Params(q): super::Params<GraphicsQuery>,
    headers: HeaderMap,
) -> Response {
    let Some((game, enc)) = Encoding::split(&file) else {
        return json_error(
            StatusCode::NOT_FOUND,
            http_code::NOT_FOUND,
            "expected /v1/graphics/{game}.json, .xml or .csv",
        );
    };
    if let Some(denied) = caller.deny_read(&s, &topic::game_state(game)) {
        return denied;
    }
    let Some((sport, _)) = s.pipeline.directory().get(game) else {
        return json_error(
            StatusCode::NOT_FOUND,
            http_code::NO_SUCH_GAME,
            &format!("no game {game:?} on this server"),
        );
    };
    if let Some(refused) = super::sse::delay_refused(&s, q.delay) {
        return refused;
    }
    let seen = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let fields = s.graphics.fields(sport);
    let read = || Document::read(&s.fanout, game, fields, q.delay);
    let mut doc = read();
    let current =
        |doc: &Document| seen.as_deref().is_some_and(|t| t.split(',').any(|t| t.trim() == doc.etag()));
    if current(&doc)
        && let Some(wait) = q.wait.filter(|w| *w > 0)
    {
        let until = tokio::time::Instant::now() + Duration::from_secs(wait.min(MAX_WAIT_SECS));
        let mut shutdown = s.shutdown.clone();
        let mut version = Document::version(&s.fanout, game, fields, q.delay);
        while current(&doc) && tokio::time::Instant::now() < until && !*shutdown.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
            // Only the topics' seqs until one moves: a waiting request costs a few lookups.
            let now = Document::version(&s.fanout, game, fields, q.delay);
            if now != version {
                version = now;
                doc = read();
            }
        }
    }
    let etag = doc.etag();
    let common = [(header::ETAG, etag), (header::CACHE_CONTROL, "no-cache".to_string())];
    if current(&doc) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, enc.content_type().to_string())], common, enc.encode(&doc))
        .into_response()
}
