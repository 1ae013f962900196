//! A one-line progress bar on stderr, redrawn at most ten times a second; silent when stderr
//! is not a terminal (CI logs get the summary line only).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    label: String,
    started: Instant,
    last_draw: Option<Instant>,
    tty: bool,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        Progress {
            label: label.into(),
            started: Instant::now(),
            last_draw: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        if !self.tty
            || ((done < total || total == 0)
                && self.last_draw.is_some_and(|t| t.elapsed() < Duration::from_millis(100)))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r{} [{}{}] {done}/{total} ({rate:.0}/s)  ",
            self.label,
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    }

    pub fn finish(&self, summary: &str) {
        if self.tty {
            eprintln!();
        }
        eprintln!("{} {summary} in {:.1}s", self.label, self.started.elapsed().as_secs_f64());
    }
}
