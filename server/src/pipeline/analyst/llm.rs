//! Rephrasing of checked notes by a language model behind an OpenAI-compatible
//! chat-completions endpoint (`POST {url}/chat/completions`, `[analyst.llm]`).
//!
//! The model is sent the note's facts and its template text, nothing else. Its answer is
//! published only when every number in it is one the note states (digits, or the words one to
//! twenty) and every capitalised word is in the note or an everyday word: a model that makes a
//! number or a name up gets the template text published instead, as does a timeout, an error
//! status or a request over `max_requests_per_minute`. Outcomes are counted in
//! `opensports_analyst_llm_total{outcome}`. The shard never waits: a full queue publishes the
//! template at once (`busy`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::Note;
use crate::config::LlmConfig;
use crate::fanout::{Fanout, Topic};
use crate::metrics as m;
use crate::push::http::Http;

/// Notes waiting for the model.
const QUEUE: usize = 64;
/// Requests in flight at once.
const IN_FLIGHT: usize = 8;
/// Longest answer published.
const MAX_CHARS: usize = 280;

const SYSTEM: &str = "You are a sports statistician writing one line for a live broadcast. \
Rephrase the note in fresh, natural words. Use only the facts given: do not add any number, \
name, team, record or claim that is not in them. Answer with the sentence alone.";

struct Job {
    topic: Arc<Topic>,
    ts: i64,
    note: Note,
}

/// The rephrasing queue and its worker.
#[derive(Debug)]
pub struct Rephraser {
    tx: mpsc::Sender<Job>,
}

impl Rephraser {
    /// Starts the worker on the current tokio runtime.
    pub fn start(cfg: LlmConfig, fanout: Arc<Fanout>) -> Result<Rephraser, String> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let url = url::Url::parse(&format!("{}/chat/completions", cfg.url.trim_end_matches('/')))
            .map_err(|e| format!("analyst.llm.url: {e}"))?;
        let http = Arc::new(Http::new(None, cfg.allow_private)?);
        let key = cfg.api_key_env.as_ref().and_then(|v| std::env::var(v).ok());
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let worker = Arc::new(Worker { cfg, url, http, key, fanout, sent: Mutex::new(VecDeque::new()) });
        rt.spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            while let Some(job) = rx.recv().await {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let worker = worker.clone();
                tokio::spawn(async move {
                    worker.run(job).await;
                    drop(permit);
                });
            }
        });
        Ok(Rephraser { tx })
    }

    /// Hands a checked note over; gives it back when the queue is full (publish it as it is).
    pub fn submit(&self, topic: Arc<Topic>, ts: i64, note: Note) -> Result<(), Box<Note>> {
        self.tx.try_send(Job { topic, ts, note }).map_err(|e| {
            metrics::counter!(m::ANALYST_LLM_TOTAL, "outcome" => "busy").increment(1);
            Box::new(e.into_inner().note)
        })
    }
}

struct Worker {
    cfg: LlmConfig,
    url: url::Url,
    http: Arc<Http>,
    key: Option<String>,
    fanout: Arc<Fanout>,
    /// When the requests of the last minute went out.
    sent: Mutex<VecDeque<Instant>>,
}

impl Worker {
    async fn run(&self, job: Job) {
        let Job { topic, ts, mut note } = job;
        let outcome = match self.within_budget() {
            false => "budget",
            true => match tokio::time::timeout(Duration::from_millis(self.cfg.timeout_ms), self.ask(&note))
                .await
            {
                Err(_) => "timeout",
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "analyst rephrasing failed");
                    "error"
                }
                Ok(Ok(answer)) => match check(&answer, &note) {
                    Ok(()) => {
                        note.template = Some(std::mem::replace(&mut note.text, answer));
                        note.phrased_by = Some(self.cfg.model.clone());
                        "rephrased"
                    }
                    Err(why) => {
                        tracing::info!(note = %note.text, answer = %answer, why = %why, "analyst: model answer refused");
                        "refused"
                    }
                },
            },
        };
        metrics::counter!(m::ANALYST_LLM_TOTAL, "outcome" => outcome).increment(1);
        match serde_json::to_vec(&note) {
            Ok(bytes) => {
                self.fanout.publish(&topic, ts, &bytes);
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize an analyst note"),
        }
    }

    fn within_budget(&self) -> bool {
        let now = Instant::now();
        let mut sent = self.sent.lock();
        while sent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            sent.pop_front();
        }
        if sent.len() >= self.cfg.max_requests_per_minute as usize {
            return false;
        }
        sent.push_back(now);
        true
    }

    async fn ask(&self, note: &Note) -> Result<String, String> {
        let facts: String = note.facts.iter().map(|f| format!("- {}: {}\n", f.name, f.value)).collect();
        let body = json!({
            "model": self.cfg.model,
            "max_tokens": self.cfg.max_tokens,
            "temperature": 0.3,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": format!("Facts:\n{facts}\nNote: {}", note.text)},
            ],
        });
        let mut req = hyper::Request::post(self.url.path())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        if let Some(key) = &self.key {
            let value =
                format!("Bearer {key}").parse().map_err(|_| "api key is not a header value".to_string())?;
            req.headers_mut().insert(hyper::header::AUTHORIZATION, value);
        }
        let reply = self.http.send(&self.url, req).await?;
        if !(200..300).contains(&reply.status) {
            return Err(format!("http {}", reply.status));
        }
        let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        let text = v["choices"][0]["message"]["content"].as_str().ok_or("no choices[0].message.content")?;
        Ok(text.trim().trim_matches('"').trim().to_string())
    }
}

const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Capitalised words an answer may use without the note naming them.
const EVERYDAY: &[&str] = &[
    "a", "an", "the", "and", "but", "so", "now", "after", "with", "that", "this", "what", "his", "her",
    "their", "they", "he", "she", "it", "its", "in", "on", "at", "for", "from", "of", "to", "by", "as",
    "just", "still", "final", "end", "half", "time", "full", "win", "safety", "car", "lap", "xg", "points",
    "place", "places", "goal", "goals", "run", "lead", "big", "huge", "what", "there", "no", "not", "only",
    "down", "up", "over",
];

/// `Ok` when `answer` states no number and no name that `note` does not.
pub fn check(answer: &str, note: &Note) -> Result<(), String> {
    if answer.is_empty() || answer.chars().count() > MAX_CHARS {
        return Err(format!("{} characters", answer.chars().count()));
    }
    let mut numbers: HashSet<String> = tokens(&note.text).filter(|t| is_number(t)).map(canon).collect();
    for f in &note.facts {
        numbers.insert(canon(format!("{}", f.value)));
        numbers.insert(canon(format!("{:.1}", f.value)));
        numbers.insert(canon(format!("{:.0}", f.value * 100.0)));
    }
    let mut words: HashSet<String> = EVERYDAY.iter().map(|w| w.to_string()).collect();
    let named = [note.text.as_str(), note.subject.as_str()]
        .into_iter()
        .chain(note.facts.iter().map(|f| f.name.as_str()))
        .chain(note.facts.iter().filter_map(|f| f.subject.as_deref()));
    for text in named {
        words.extend(tokens(text).map(|t| t.to_lowercase()));
    }
    for t in tokens(answer) {
        let lower = t.to_lowercase();
        if is_number(t) {
            if !numbers.contains(&canon(t)) {
                return Err(format!("number {t} is not in the facts"));
            }
        } else if let Some(n) = NUMBER_WORDS.iter().position(|w| *w == lower) {
            if !numbers.contains(&n.to_string()) {
                return Err(format!("number {t} is not in the facts"));
            }
        } else if t.starts_with(|c: char| c.is_uppercase()) && !words.contains(&lower) {
            return Err(format!("name {t} is not in the facts"));
        }
    }
    Ok(())
}

/// Words and numbers: runs of letters, digits, and dots between digits.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let digit_dot = c == '.'
            && i > 0
            && bytes[i - 1].is_ascii_digit()
            && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit());
        if c.is_alphanumeric() || digit_dot {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push(&text[s..i]);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out.into_iter()
}

fn is_number(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_digit()) && t.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// "2.10" and "2.1" are one number; "14.0" is "14".
fn canon(t: impl AsRef<str>) -> String {
    let t = t.as_ref();
    t.parse::<f64>().map_or_else(|_| t.to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(text: &str, facts: &[(&str, f64)]) -> Note {
        Note {
            id: 1,
            kind: "run".into(),
            subject: "home".into(),
            priority: 60,
            text: text.into(),
            template: None,
            phrased_by: None,
            period: 3,
            clock_ms: None,
            seq: 1,
            ts: 0,
            at_seq: 1,
            facts: facts
                .iter()
                .map(|(n, v)| super::super::Fact {
                    name: n.to_string(),
                    stat: "x".into(),
                    subject: None,
                    period: None,
                    value: *v,
                    seq: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn numbers_and_names_must_come_from_the_note() {
        let n = note("MIL are on a 10–0 run", &[("MIL unanswered points", 10.0)]);
        assert!(check("MIL have scored 10 straight points", &n).is_ok());
        assert!(check("Ten unanswered points for MIL", &n).is_ok());
        assert!(check("MIL have scored 12 straight points", &n).is_err(), "made-up number");
        assert!(check("Twelve straight for MIL", &n).is_err(), "made-up number word");
        assert!(check("Giannis leads MIL on a 10-0 run", &n).is_err(), "made-up name");
        let x =
            note("LIV have 2.1 xG to GIR's 0.3 but trail: LIV 0–1 GIR", &[("LIV xG", 2.1), ("GIR xG", 0.3)]);
        assert!(
            check("Despite 2.10 xG against 0.3, LIV trail GIR 0-1", &x).is_err(),
            "Despite is no name here"
        );
        assert!(check("With 2.10 xG against 0.3, LIV still trail GIR 0-1", &x).is_ok());
        let wp = note("DEN's win probability went from 31% to 64% on that shot", &[("wp", 0.6412)]);
        assert!(check("That shot took DEN from 31% to 64%", &wp).is_ok());
        assert!(check("That shot took DEN from 31% to 70%", &wp).is_err());
        assert!(check("", &wp).is_err());
    }
}
