//! `opensports report GAME`: a game's post-game report from a running server
//! (`GET /v1/games/{id}/report?format=json`), written as a PDF (`--pdf`, made here with no
//! browser: `crate::report::pdf`), as the self-contained page (`--html`), or summed up on
//! stdout.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::progress::Progress;
use super::store::{Server, http_get_to};
use crate::report::{self, Report};

pub fn report_cmd(
    server: &Server,
    game: &str,
    pdf: Option<&Path>,
    html: Option<&Path>,
) -> anyhow::Result<()> {
    let mut progress = Progress::new("report");
    let mut body = Vec::new();
    let path = format!("/v1/games/{game}/report?format=json");
    http_get_to(server, &path, &mut body, &mut progress)?;
    let r: Report = serde_json::from_slice(&body).context("the server's report is not a report")?;
    let mut wrote = Vec::new();
    if let Some(p) = pdf {
        std::fs::write(p, report::pdf::render(&r)).with_context(|| p.display().to_string())?;
        wrote.push(p.display().to_string());
    }
    if let Some(p) = html {
        std::fs::write(p, report::html::render(&r)).with_context(|| p.display().to_string())?;
        wrote.push(p.display().to_string());
    }
    if wrote.is_empty() {
        progress.finish("");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}\n{}\n{}", r.title, r.status, r.subtitle)?;
        for l in &r.leaders {
            writeln!(out, "  {l}")?;
        }
        for n in &r.notes {
            writeln!(out, "- {n}")?;
        }
        writeln!(out, "Feed {}", r.quality.status)?;
        return Ok(());
    }
    progress.finish(&format!("{}: {} written", r.title, wrote.join(" and ")));
    Ok(())
}
