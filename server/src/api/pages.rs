//! The dashboard: the overview of every game at `/`, a page per game at `/game/{id}`, and the
//! assets they load under `/assets/` — all embedded in the binary (no CDN, nothing fetched
//! from anywhere but this server).
//!
//! - `pages/overview.html`: a card per game, live.
//! - `pages/format.js`: what both say the same way (periods, FINAL, event names, "SEA 7").
//! - `pages/charts.js`: time series on the game clock (uPlot), key moments marked.
//! - `pages/pictures.js`: each sport's picture in SVG (court, field, pitch, stints, team stats).
//! - `pages/game.html`: one game, per sport, built on the JS client (`assets/client/*.js`,
//!   `clients/js` compiled and copied by its `npm run vendor`) with uPlot
//!   (`assets/uPlot.iife.min.js`, ~50 KB, no dependencies, made for streaming time series).
//!
//! Every page is served with a Content-Security-Policy that allows only its own inline script
//! and style (by hash) and scripts, styles and connections from this host.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opensports_proto::error_code::http as http_code;

use super::json_error;

const OVERVIEW: &str = include_str!("pages/overview.html");
const GAME: &str = include_str!("pages/game.html");
const CONSOLE: &str = include_str!("pages/console.html");

/// `(path under /assets/, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("client/index.js", "text/javascript", include_bytes!("assets/client/index.js")),
    ("client/messages.js", "text/javascript", include_bytes!("assets/client/messages.js")),
    ("client/subscriber.js", "text/javascript", include_bytes!("assets/client/subscriber.js")),
    ("uPlot.iife.min.js", "text/javascript", include_bytes!("assets/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css", include_bytes!("assets/uPlot.min.css")),
    ("format.js", "text/javascript", include_bytes!("pages/format.js")),
    ("charts.js", "text/javascript", include_bytes!("pages/charts.js")),
    ("pictures.js", "text/javascript", include_bytes!("pages/pictures.js")),
    ("console.js", "text/javascript", include_bytes!("pages/console.js")),
    ("icon.svg", "image/svg+xml", ICON),
];

/// The pages' icon (without one a browser asks for `/favicon.ico` and logs the 404).
const ICON: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#3fb950"/></svg>"##;

/// SHA-256 (base64) of every inline `<script>` (one without `src`) or `<style>` of `html`.
fn inline_hashes(html: &str, tag: &str) -> Vec<String> {
    use base64::Engine as _;
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(gt) = after.find('>') else { break };
        let attrs = &after[..gt];
        let body_start = &after[gt + 1..];
        let Some(end) = body_start.find(&close) else { break };
        if !attrs.contains("src=") {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(&body_start.as_bytes()[..end]);
            out.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        }
        rest = &body_start[end + close.len()..];
    }
    out
}

fn csp(html: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self' {}; style-src 'self' {}; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_hashes(html, "script").join(" "),
        inline_hashes(html, "style").join(" ")
    )
}

fn page(html: &'static str, policy: &'static std::sync::OnceLock<String>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, policy.get_or_init(|| csp(html)).as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (StatusCode::OK, headers, html).into_response()
}

/// `/console`'s page (its route checks `console.enabled`).
pub fn console() -> Response {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    page(CONSOLE, &POLICY)
}

pub async fn overview() -> Response {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    page(OVERVIEW, &POLICY)
}

/// `/game/{id}`: the page reads the id from its own URL; a game that does not exist (yet) shows
/// as waiting, and fills in when it starts.
/// A game's page; an id that cannot be a game's is `404` (the page would only ever wait).
pub async fn game(Path(id): Path<String>) -> Response {
    if !opensports_proto::event::valid_game_id(&id) {
        return json_error(
            StatusCode::NOT_FOUND,
            http_code::NO_SUCH_GAME,
            &format!("{id:?} is not a game id"),
        );
    }
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    page(GAME, &POLICY)
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => {
            let headers = [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ];
            (StatusCode::OK, headers, *bytes).into_response()
        }
        None => json_error(StatusCode::NOT_FOUND, http_code::NOT_FOUND, &format!("no asset {file:?}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_inline_script_and_style_is_hashed_and_external_ones_are_not() {
        let html = "<style>a{}</style><script src=\"/x.js\"></script><script type=\"module\">go()</script>";
        assert_eq!(super::inline_hashes(html, "style").len(), 1);
        let scripts = super::inline_hashes(html, "script");
        assert_eq!(scripts.len(), 1, "{scripts:?}");
        let policy = super::csp(html);
        assert!(
            policy.contains("script-src 'self' 'sha256-") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
    }
}
