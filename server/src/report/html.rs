//! The report as one self-contained HTML page: inline CSS, charts as inline SVG, no script and
//! no external request (the response's CSP says so), laid out to print on A4.

use std::fmt::Write;

use super::chart::{self, Anchor, Canvas, Color};
use super::{Report, Table};

/// `<` `>` `&` `"` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// SVG elements written into a string.
struct Svg(String);

fn rgb(c: Color) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn paint(fill: Option<Color>, stroke: Option<Color>) -> String {
    format!(r#"fill="{}" stroke="{}""#, fill.map_or("none".into(), rgb), stroke.map_or("none".into(), rgb))
}

impl Canvas for Svg {
    fn polyline(&mut self, pts: &[(f32, f32)], stroke: Color, width: f32) {
        let pts: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            self.0,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{width}"/>"#,
            pts.join(" "),
            rgb(stroke)
        );
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Option<Color>, stroke: Option<Color>) {
        let _ = write!(
            self.0,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" {} stroke-width="0.6"/>"#,
            paint(fill, stroke)
        );
    }

    fn circle(&mut self, x: f32, y: f32, r: f32, fill: Option<Color>, stroke: Option<Color>, class: &str) {
        let _ = write!(
            self.0,
            r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="{r:.1}" {} stroke-width="0.8"/>"#,
            paint(fill, stroke)
        );
    }

    fn text(&mut self, x: f32, y: f32, size: f32, fill: Color, anchor: Anchor, text: &str) {
        let anchor = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let _ = write!(
            self.0,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" fill="{}" text-anchor="{anchor}">{}</text>"#,
            rgb(fill),
            escape(text)
        );
    }
}

const WIDTH: f32 = 640.0;

fn svg(label: &str, h: f32, draw: impl FnOnce(&mut Svg)) -> String {
    let mut s = Svg(String::new());
    draw(&mut s);
    format!(
        r#"<svg role="img" aria-label="{}" viewBox="0 0 {WIDTH} {h:.0}" width="100%" xmlns="http://www.w3.org/2000/svg">{}</svg>"#,
        escape(label),
        s.0
    )
}

fn table(t: &Table) -> String {
    let mut out = format!("<h2>{}</h2><table><thead><tr>", escape(&t.title));
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1f2328;\
max-width:720px;margin:24px auto;padding:0 16px}h1{font-size:28px;margin:0}h2{font-size:17px;margin:22px 0 6px;\
border-bottom:1px solid #c8ccd0}.sub{color:#57606a}.status{font-weight:600}table{border-collapse:collapse;width:100%;\
font-size:12px}th,td{padding:2px 6px;text-align:right;border-bottom:1px solid #eaeef2}th:first-child,td:first-child,\
th:nth-child(2),td:nth-child(2){text-align:left}ol,ul{padding-left:22px}svg{display:block;margin:6px 0}\
@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg,table{break-inside:avoid}}";

/// The page's Content-Security-Policy: inline style only, nothing fetched.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut b = String::with_capacity(64 * 1024);
    let _ = write!(
        b,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title} · report</title><style>{STYLE}</style></head><body><main><h1>{title}</h1><p class="status">{status}</p><p class="sub">{sub}</p>"#,
        title = escape(&r.title),
        status = escape(&r.status),
        sub = escape(&r.subtitle)
    );
    if !r.leaders.is_empty() {
        b.push_str("<h2>Leaders</h2><ul class=\"leaders\">");
        for l in &r.leaders {
            let _ = write!(b, "<li>{}</li>", escape(l));
        }
        b.push_str("</ul>");
    }
    let home = r.teams.as_ref().map_or("Home", |t| t[0].as_str());
    if let Some(wp) = &r.wp {
        b.push_str("<h2>Win probability</h2>");
        b.push_str(&svg(&format!("{home} win probability"), 220.0, |s| {
            chart::win_probability(s, wp, home, WIDTH, 220.0)
        }));
        b.push_str("<ol class=\"moments\">");
        for m in &wp.moments {
            let _ = write!(
                b,
                "<li>{}: {home} {:.0}% → {:.0}%</li>",
                escape(&m.label),
                m.before * 100.0,
                m.after * 100.0
            );
        }
        b.push_str("</ol>");
    }
    if let Some(c) = &r.chart {
        let title = match c {
            super::Chart::Court { .. } => "Shot chart",
            super::Chart::Pitch { .. } => "Shot map",
            super::Chart::Drives { .. } => "Drive chart",
            super::Chart::Laps { .. } => "Lap chart",
        };
        // A dry run gives its height, then it is drawn into its box.
        let h = chart::sport_chart(&mut chart::Measure, c, r, WIDTH);
        let _ = write!(b, "<h2>{title}</h2>");
        b.push_str(&svg(title, h, |s| {
            chart::sport_chart(s, c, r, WIDTH);
        }));
    }
    for t in &r.tables {
        b.push_str(&table(t));
    }
    b.push_str("<h2>Storylines</h2>");
    if r.notes.is_empty() {
        b.push_str("<p>No notes.</p>");
    } else {
        b.push_str("<ul class=\"notes\">");
        for n in &r.notes {
            let _ = write!(b, "<li>{}</li>", escape(n));
        }
        b.push_str("</ul>");
    }
    let _ = write!(b, "<h2>Feed quality</h2><p class=\"quality\">Feed {}</p>", escape(&r.quality.status));
    if !r.quality.issues.is_empty() {
        b.push_str("<ul>");
        for i in &r.quality.issues {
            let _ = write!(b, "<li>{}</li>", escape(i));
        }
        b.push_str("</ul>");
    }
    b.push_str("</main></body></html>");
    b
}
