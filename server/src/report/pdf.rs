//! The report as a PDF, written with `pdf-writer` (typst's PDF writer): no browser, no system
//! library, a few kB of code. It writes PDF objects and drawing operators directly, so the
//! charts are the same vector drawing as the page's SVG ([`super::chart`]). Text is set in
//! the standard Helvetica fonts (every PDF reader has them; nothing is embedded) with
//! WinAnsi encoding, so `pdftotext` and screen readers get the text back.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::chart::{self, Anchor, Canvas, Color};
use super::{Report, Table};

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 48.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Charts are drawn 640 wide and scaled to the text column.
const CHART_W: f32 = 640.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// Text as WinAnsi bytes (the Latin-1 range, dashes and the bullet; `?` for the rest).
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '–' => 0x96,
            '—' => 0x97,
            '•' => 0x95,
            '’' => 0x92,
            '→' => b'>',
            '·' => 0xb7,
            c if (c as u32) < 0x80 || (0xa0..=0xff).contains(&(c as u32)) => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}

/// Helvetica's advance widths, near enough to align and wrap (em fractions).
fn text_width(s: &str, size: f32) -> f32 {
    let em: f32 = s
        .chars()
        .map(|c| match c {
            '0'..='9' => 0.556,
            ' ' | '.' | ',' | ':' | ';' | '!' | '\'' | 'i' | 'j' | 'l' | 'I' | '|' => 0.278,
            'f' | 't' | 'r' | '-' | '(' | ')' => 0.333,
            'm' | 'w' | 'M' | 'W' => 0.85,
            'A'..='Z' => 0.68,
            _ => 0.53,
        })
        .sum();
    em * size
}

/// Pages being filled from the top.
struct Doc {
    pages: Vec<Content>,
    page: Content,
    /// The baseline of the next line, from the page's bottom.
    y: f32,
}

impl Doc {
    fn new() -> Doc {
        Doc { pages: Vec::new(), page: Content::new(), y: PAGE_H - MARGIN }
    }

    /// Starts a new page unless `h` more points fit on this one.
    fn need(&mut self, h: f32) {
        if self.y - h < MARGIN {
            let full = std::mem::replace(&mut self.page, Content::new());
            self.pages.push(full);
            self.y = PAGE_H - MARGIN;
        }
    }

    fn show(&mut self, x: f32, y: f32, size: f32, bold: bool, color: Color, text: &str) {
        let c = &mut self.page;
        c.set_fill_rgb(f32::from(color.0) / 255.0, f32::from(color.1) / 255.0, f32::from(color.2) / 255.0);
        c.begin_text();
        c.set_font(if bold { BOLD } else { REGULAR }, size);
        c.next_line(x, y);
        c.show(Str(&win_ansi(text)));
        c.end_text();
    }

    fn line(&mut self, size: f32, bold: bool, text: &str) {
        self.need(size * 1.5);
        self.y -= size * 1.3;
        self.show(MARGIN, self.y, size, bold, chart::INK, text);
        self.y -= size * 0.3;
    }

    fn heading(&mut self, text: &str) {
        self.need(40.0);
        self.y -= 10.0;
        self.line(13.0, true, text);
        self.page.set_stroke_rgb(0.78, 0.8, 0.82).set_line_width(0.6);
        self.page.move_to(MARGIN, self.y).line_to(PAGE_W - MARGIN, self.y).stroke();
        self.y -= 4.0;
    }

    /// A paragraph wrapped to the column, after `bullet` when given.
    fn paragraph(&mut self, size: f32, bullet: Option<&str>, text: &str) {
        let indent = if bullet.is_some() { 14.0 } else { 0.0 };
        let mut lines: Vec<String> = vec![String::new()];
        for word in text.split_whitespace() {
            let last = lines.last_mut().map(|l| l.clone()).unwrap_or_default();
            let candidate = if last.is_empty() { word.to_string() } else { format!("{last} {word}") };
            if text_width(&candidate, size) > CONTENT_W - indent && !last.is_empty() {
                lines.push(word.to_string());
            } else if let Some(l) = lines.last_mut() {
                *l = candidate;
            }
        }
        for (i, l) in lines.iter().enumerate() {
            self.need(size * 1.4);
            self.y -= size * 1.35;
            if i == 0
                && let Some(b) = bullet
            {
                self.show(MARGIN, self.y, size, false, chart::INK, b);
            }
            self.show(MARGIN + indent, self.y, size, false, chart::INK, l);
        }
        self.y -= 2.0;
    }

    fn table(&mut self, t: &Table) {
        self.heading(&t.title);
        let n = t.columns.len().max(1);
        // The first two columns (names) get more room; numbers are right-aligned.
        let narrow = CONTENT_W / (n as f32 + 3.0);
        let x_of = |i: usize| match i {
            0 => MARGIN,
            1 => MARGIN + 3.0 * narrow,
            _ => MARGIN + (i as f32 + 3.0) * narrow,
        };
        let size = 8.0;
        let row = |doc: &mut Doc, cells: &[String], bold: bool| {
            doc.need(size * 1.6);
            doc.y -= size * 1.5;
            for (i, cell) in cells.iter().enumerate() {
                let x = if i < 2 { x_of(i) } else { x_of(i) + narrow - 4.0 - text_width(cell, size) };
                doc.show(x, doc.y, size, bold, chart::INK, cell);
            }
        };
        row(self, &t.columns, true);
        for r in &t.rows {
            row(self, r, false);
        }
        self.y -= 4.0;
    }

    /// A chart drawn at `h` (chart units) into the column.
    fn chart(&mut self, h: f32, draw: impl FnOnce(&mut PdfCanvas<'_>)) {
        let scale = CONTENT_W / CHART_W;
        self.need(h * scale + 8.0);
        let top = self.y - 4.0;
        let mut canvas = PdfCanvas { doc: self, ox: MARGIN, top, scale };
        draw(&mut canvas);
        self.y = top - h * scale - 4.0;
    }
}

/// A chart's drawing onto the page: its (x, y-down) units scaled into the column.
struct PdfCanvas<'a> {
    doc: &'a mut Doc,
    ox: f32,
    top: f32,
    scale: f32,
}

impl PdfCanvas<'_> {
    fn at(&self, x: f32, y: f32) -> (f32, f32) {
        (self.ox + x * self.scale, self.top - y * self.scale)
    }

    fn colors(&mut self, fill: Option<Color>, stroke: Option<Color>) {
        let c = &mut self.doc.page;
        if let Some(f) = fill {
            c.set_fill_rgb(f32::from(f.0) / 255.0, f32::from(f.1) / 255.0, f32::from(f.2) / 255.0);
        }
        if let Some(s) = stroke {
            c.set_stroke_rgb(f32::from(s.0) / 255.0, f32::from(s.1) / 255.0, f32::from(s.2) / 255.0);
        }
    }

    fn paint(&mut self, fill: Option<Color>, stroke: Option<Color>) {
        let c = &mut self.doc.page;
        match (fill.is_some(), stroke.is_some()) {
            (true, true) => c.fill_nonzero_and_stroke(),
            (true, false) => c.fill_nonzero(),
            (false, true) => c.stroke(),
            (false, false) => c.end_path(),
        };
    }
}

impl Canvas for PdfCanvas<'_> {
    fn polyline(&mut self, pts: &[(f32, f32)], stroke: Color, width: f32) {
        let Some(&(x0, y0)) = pts.first() else { return };
        self.colors(None, Some(stroke));
        let (a, b) = self.at(x0, y0);
        let pts: Vec<(f32, f32)> = pts[1..].iter().map(|&(x, y)| self.at(x, y)).collect();
        let c = &mut self.doc.page;
        c.set_line_width(width * self.scale);
        c.move_to(a, b);
        for (x, y) in pts {
            c.line_to(x, y);
        }
        c.stroke();
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Option<Color>, stroke: Option<Color>) {
        self.colors(fill, stroke);
        let (a, b) = self.at(x, y + h);
        let s = self.scale;
        self.doc.page.set_line_width(0.6 * s).rect(a, b, w * s, h * s);
        self.paint(fill, stroke);
    }

    fn circle(&mut self, x: f32, y: f32, r: f32, fill: Option<Color>, stroke: Option<Color>, _class: &str) {
        self.colors(fill, stroke);
        let (cx, cy) = self.at(x, y);
        let r = r * self.scale;
        // Four Bézier quarters (k: the control-point distance of a quarter circle).
        let k = 0.5523 * r;
        let c = &mut self.doc.page;
        c.set_line_width(0.8 * self.scale);
        c.move_to(cx + r, cy);
        c.cubic_to(cx + r, cy + k, cx + k, cy + r, cx, cy + r);
        c.cubic_to(cx - k, cy + r, cx - r, cy + k, cx - r, cy);
        c.cubic_to(cx - r, cy - k, cx - k, cy - r, cx, cy - r);
        c.cubic_to(cx + k, cy - r, cx + r, cy - k, cx + r, cy);
        c.close_path();
        self.paint(fill, stroke);
    }

    fn text(&mut self, x: f32, y: f32, size: f32, fill: Color, anchor: Anchor, text: &str) {
        let size = size * self.scale;
        let w = text_width(text, size);
        let (px, py) = self.at(x, y);
        let px = match anchor {
            Anchor::Start => px,
            Anchor::Middle => px - w / 2.0,
            Anchor::End => px - w,
        };
        self.doc.show(px, py, size, false, fill, text);
    }
}

/// The PDF file of `r`.
pub fn render(r: &Report) -> Vec<u8> {
    let mut d = Doc::new();
    d.line(22.0, true, &r.title);
    d.line(12.0, true, &r.status);
    d.line(9.0, false, &r.subtitle);
    if !r.leaders.is_empty() {
        d.heading("Leaders");
        for l in &r.leaders {
            d.paragraph(9.0, Some("•"), l);
        }
    }
    let home = r.teams.as_ref().map_or("Home", |t| t[0].as_str()).to_string();
    if let Some(wp) = &r.wp {
        d.need(220.0 * CONTENT_W / CHART_W + 50.0);
        d.heading("Win probability");
        d.chart(220.0, |c| chart::win_probability(c, wp, &home, CHART_W, 220.0));
        for (i, m) in wp.moments.iter().enumerate() {
            let text = format!("{}: {home} {:.0}% → {:.0}%", m.label, m.before * 100.0, m.after * 100.0);
            d.paragraph(9.0, Some(&format!("{}.", i + 1)), &text);
        }
    }
    if let Some(c) = &r.chart {
        let title = match c {
            super::Chart::Court { .. } => "Shot chart",
            super::Chart::Pitch { .. } => "Shot map",
            super::Chart::Drives { .. } => "Drive chart",
            super::Chart::Laps { .. } => "Lap chart",
        };
        // Measured by a dry run, then drawn (its heading goes to the next page with it).
        let h = chart::sport_chart(&mut chart::Measure, c, r, CHART_W);
        d.need(h * CONTENT_W / CHART_W + 50.0);
        d.heading(title);
        d.chart(h, |canvas| {
            chart::sport_chart(canvas, c, r, CHART_W);
        });
    }
    for t in &r.tables {
        d.table(t);
    }
    d.heading("Storylines");
    if r.notes.is_empty() {
        d.paragraph(9.0, None, "No notes.");
    }
    for n in &r.notes {
        d.paragraph(9.0, Some("•"), n);
    }
    d.heading("Feed quality");
    d.paragraph(9.0, None, &format!("Feed {}", r.quality.status));
    for i in &r.quality.issues {
        d.paragraph(9.0, Some("•"), i);
    }
    let Doc { mut pages, page, .. } = d;
    pages.push(page);
    write(pages, &r.title)
}

fn write(pages: Vec<Content>, title: &str) -> Vec<u8> {
    let (catalog, tree, regular, bold, info) =
        (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5));
    let page_ref = |i: usize| Ref::new(6 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(7 + 2 * i as i32);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids((0..pages.len()).map(page_ref)).count(pages.len() as i32);
    pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info).title(TextStr(title)).producer(TextStr("OpenSports Edge"));
    for (i, content) in pages.into_iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H)).parent(tree).contents(content_ref(i));
        page.resources().fonts().pair(REGULAR, regular).pair(BOLD, bold);
        page.finish();
        pdf.stream(content_ref(i), &content.finish());
    }
    pdf.finish()
}
