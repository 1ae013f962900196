//! The analyst's templates: what an event changed ([`Delta`]) in, drafts out. Each number a
//! draft's text shows is one of its facts, read through [`Cx::fact`] from the ledger or the
//! state: a template never computes a number on its own.
//!
//! | kind | sports | when |
//! |---|---|---|
//! | `final`, `period_end` | all | the game / a period ends (not held to the rate) |
//! | `swing` | basketball, football | the win probability moves 15 points or more on one event |
//! | `lead_change` | basketball, football | the lead changes hands (from the 2nd change) |
//! | `comeback` | basketball, football | a side that trailed by 10+ takes the lead |
//! | `max_lead` | basketball, football | a side's largest lead grows (10+ / 14+) |
//! | `run`, `milestone`, `period_high`, `streak` | basketball | 8-0 runs; 10/20/30/40/50 points; most points by anyone in a quarter; 5+ field goals made in a row |
//! | `turnover`, `big_play` | football | a side's 2nd+ turnover; the game's longest play (30+ yards) |
//! | `goals`, `xg_vs_score`, `shots`, `red_card` | soccer | a brace; the xG leader (by 0.8) not ahead; 10+ shots and 3× the other's; a sending-off |
//! | `fastest_lap`, `leader`, `gained`, `since_safety_car`, `safety_car` | F1 | fastest lap; new leader; 5+ places since the start; 3+ since the safety car; it comes out |

use opensports_proto::f1::SessionKind;
use opensports_proto::{Side, Sport};

use super::Note;
use super::ledger::{Delta, Ledger, SIDES, side_name};
use crate::pipeline::state::{Detail, GameState, Status};

/// What the templates read.
pub struct Cx<'a> {
    pub state: &'a GameState,
    pub ledger: &'a Ledger,
    pub seq: u64,
    pub ts: i64,
}

impl Cx<'_> {
    fn note(&self, kind: &str, subject: &str, priority: u8) -> Note {
        Note {
            id: 0,
            kind: kind.to_string(),
            subject: subject.to_string(),
            priority,
            text: String::new(),
            template: None,
            phrased_by: None,
            period: self.state.period,
            clock_ms: self.state.clock_ms,
            seq: self.seq,
            ts: self.ts,
            at_seq: 0,
            facts: Vec::new(),
        }
    }

    /// Looks a fact up, adds it to `n` and gives its value.
    fn fact(
        &self,
        n: &mut Note,
        name: String,
        stat: &str,
        subject: Option<&str>,
        period: Option<u8>,
    ) -> Option<f64> {
        let value = self.ledger.value(self.state, stat, subject, period)?;
        n.facts.push(super::Fact {
            name,
            stat: stat.to_string(),
            subject: subject.map(str::to_string),
            period,
            value,
            seq: self.seq,
        });
        Some(value)
    }

    fn team(&self, s: Side) -> &str {
        let name = match s {
            Side::Home => self.state.home.as_deref(),
            Side::Away => self.state.away.as_deref(),
        };
        name.unwrap_or(side_name(s))
    }

    /// "MIL 45–44 DEN", with both scores as facts.
    fn score(&self, n: &mut Note) -> Option<String> {
        let h = self.fact(n, format!("{} score", self.team(Side::Home)), "score", Some("home"), None)?;
        let a = self.fact(n, format!("{} score", self.team(Side::Away)), "score", Some("away"), None)?;
        Some(format!("{} {h}–{a} {}", self.team(Side::Home), self.team(Side::Away)))
    }

    fn side_fact(&self, n: &mut Note, what: &str, stat: &str, s: Side) -> Option<f64> {
        self.fact(n, format!("{} {what}", self.team(s)), stat, Some(side_name(s)), None)
    }
}

/// The drafts `d` gives rise to.
pub fn draft(cx: &Cx<'_>, d: &Delta) -> Vec<Note> {
    let sport = cx.state.sport;
    let mut out: Vec<Option<Note>> = Vec::new();
    if d.ended {
        out.push(final_note(cx));
    } else if let Some(p) = d.period_end {
        out.push(period_end(cx, p));
    }
    if matches!(sport, Sport::Basketball | Sport::Football) {
        out.push(swing(cx, d));
        if d.lead_change {
            out.push(lead_change(cx));
            out.push(comeback(cx));
        }
        out.push(max_lead(cx, d));
    }
    match sport {
        Sport::Basketball => {
            out.push(run(cx, d));
            if let Some((player, added)) = &d.scorer {
                out.push(milestone(cx, player, *added));
                out.push(period_high(cx, player));
            }
            out.push(streak(cx, d));
        }
        Sport::Football => {
            out.push(turnover(cx, d));
            out.push(big_play(cx, d));
        }
        Sport::Soccer => {
            out.push(goals(cx, d));
            out.push(xg_vs_score(cx));
            out.push(shots(cx));
            out.push(red_card(cx, d));
        }
        Sport::F1 => {
            out.push(fastest_lap(cx, d));
            out.push(leader(cx, d));
            out.push(safety_car(cx, d));
            if cx.state.last_event == "lap" {
                out.push(gained(cx));
                out.push(since_safety_car(cx));
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// "a" or "an" before a number said aloud ("an 8–0 run", "an 11–0 run", "a 10–0 run").
fn article(n: f64) -> &'static str {
    let n = n as u64;
    let mut lead = n;
    while lead >= 1000 {
        lead /= 1000;
    }
    if lead == 8 || (80..90).contains(&lead) || lead == 11 || lead == 18 || (800..900).contains(&lead) {
        "an"
    } else {
        "a"
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "the 3rd quarter", "overtime", "the first half".
fn period_name(sport: Sport, p: u8) -> String {
    match (sport, p) {
        (Sport::Soccer, 1) => "the first half".into(),
        (Sport::Soccer, 2) => "the second half".into(),
        (Sport::Soccer, 3 | 4) => "extra time".into(),
        (Sport::Soccer, _) => "the shoot-out".into(),
        (_, 0) => "the warm-up".into(),
        (_, 1..=4) => format!("the {} quarter", ordinal(u32::from(p))),
        (_, 5) => "overtime".into(),
        (_, _) => format!("the {} overtime", ordinal(u32::from(p.saturating_sub(4)))),
    }
}

fn top_scorer(cx: &Cx<'_>, n: &mut Note, verb: &str) -> Option<String> {
    let (player, _) = cx.ledger.top_scorer()?;
    let pts = cx.fact(n, format!("{player} points"), "pts", Some(player), None)?;
    let top = cx.fact(n, "most points by a player".into(), "max_pts", None, None)?;
    (pts == top).then(|| format!("; {player} {verb} all scorers with {pts}"))
}

fn xg_line(cx: &Cx<'_>, n: &mut Note) -> Option<String> {
    cx.ledger.xg()?;
    let h = cx.side_fact(n, "xG", "xg", Side::Home)?;
    let a = cx.side_fact(n, "xG", "xg", Side::Away)?;
    Some(format!("; xG {h:.1}–{a:.1}"))
}

fn period_end(cx: &Cx<'_>, p: u8) -> Option<Note> {
    let sport = cx.state.sport;
    if p == 0 {
        return None;
    }
    let mut n = cx.note("period_end", &p.to_string(), 90);
    let label = match (sport, p) {
        (Sport::Soccer, 1) => "Half-time".to_string(),
        (Sport::F1, _) => return None,
        _ => format!("End of {}", period_name(sport, p)),
    };
    // The end of regulation (not level, or soccer's second half) is said by the final.
    let level = cx.state.score.is_some_and(|s| s.home == s.away);
    if (sport == Sport::Soccer && p == 2) || (p >= 4 && !level && sport != Sport::Soccer) {
        return None;
    }
    let score = cx.score(&mut n)?;
    let extra = match sport {
        Sport::Basketball => top_scorer(cx, &mut n, "leads").unwrap_or_default(),
        Sport::Soccer => xg_line(cx, &mut n).unwrap_or_default(),
        _ => String::new(),
    };
    n.text = format!("{label}: {score}{extra}");
    Some(n)
}

fn final_note(cx: &Cx<'_>) -> Option<Note> {
    let mut n = cx.note("final", "final", 100);
    if let Detail::F1(f) = &cx.state.detail {
        let race = matches!(f.session_kind, Some(SessionKind::Race | SessionKind::Sprint));
        // A feed that names its session generically ("session") gets "the session".
        let session = f.session.clone().filter(|s| !s.eq_ignore_ascii_case("session"));
        let session = session.unwrap_or_else(|| "the session".into());
        if race {
            let winner = f.cars.first()?.driver.clone();
            cx.fact(&mut n, format!("{winner} position"), "pos", Some(&winner), None)?;
            n.text = format!("{winner} wins {session}");
        } else {
            let (driver, _, _) = cx.ledger.fastest()?.clone();
            let ms = cx.fact(&mut n, "fastest lap (ms)".into(), "fastest_lap_ms", None, None)?;
            cx.fact(&mut n, format!("{driver} best lap (ms)"), "best_lap_ms", Some(&driver), None)?;
            n.text = format!("{driver} ends {session} fastest, {}", lap_time(ms));
        }
        return Some(n);
    }
    let score = cx.score(&mut n)?;
    let extra = match cx.state.sport {
        Sport::Basketball => top_scorer(cx, &mut n, "led").unwrap_or_default(),
        Sport::Soccer => xg_line(cx, &mut n).unwrap_or_default(),
        _ => String::new(),
    };
    n.text = format!("Final: {score}{extra}");
    Some(n)
}

/// "1:32.456".
fn lap_time(ms: f64) -> String {
    let ms = ms as u64;
    format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}

fn swing(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let (before, after) = d.wp_move?;
    if (after - before).abs() < 0.15 {
        return None;
    }
    let side = if after > before { Side::Home } else { Side::Away };
    let mut n = cx.note("swing", &cx.seq.to_string(), 80);
    let from = cx.side_fact(&mut n, "win probability before the play", "wp_before", side)?;
    let to = cx.side_fact(&mut n, "win probability", "wp", side)?;
    let what = match &cx.state.detail {
        Detail::Football(f) => f.last_play.as_ref().map(|p| format!("{:?}", p.result)).unwrap_or_default(),
        _ => cx.state.last_event.to_string(),
    };
    let what = words(&what);
    n.text = format!(
        "{}'s win probability went from {:.0}% to {:.0}% on that {what}",
        cx.team(side),
        from * 100.0,
        to * 100.0
    );
    Some(n)
}

/// `FumbleLost` / `free_throw` → "fumble lost" / "free throw".
fn words(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(if c == '_' { ' ' } else { c.to_ascii_lowercase() });
    }
    out
}

fn leader_now(cx: &Cx<'_>) -> Option<Side> {
    let s = cx.state.score?;
    (s.home != s.away).then_some(if s.home > s.away { Side::Home } else { Side::Away })
}

fn lead_change(cx: &Cx<'_>) -> Option<Note> {
    if cx.ledger.lead_changes() < 2 {
        return None;
    }
    let side = leader_now(cx)?;
    let mut n = cx.note("lead_change", "game", 50);
    let score = cx.score(&mut n)?;
    let times = cx.fact(&mut n, "lead changes".into(), "lead_changes", None, None)?;
    n.text = format!("{} take the lead, {score}; the lead has changed hands {times} times", cx.team(side));
    Some(n)
}

fn comeback(cx: &Cx<'_>) -> Option<Note> {
    let side = leader_now(cx)?;
    if cx.ledger.overcame(side) < 10 {
        return None;
    }
    let mut n = cx.note("comeback", side_name(side), 70);
    let down = cx.side_fact(&mut n, "deficit overcome", "overcame", side)?;
    let score = cx.score(&mut n)?;
    n.text = format!("{} have come back from {down} down to lead, {score}", cx.team(side));
    Some(n)
}

fn max_lead(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let side = d.new_max_lead?;
    let floor = if cx.state.sport == Sport::Basketball { 10 } else { 14 };
    if cx.ledger.max_lead(side) < floor {
        return None;
    }
    let mut n = cx.note("max_lead", side_name(side), 45);
    let lead = cx.side_fact(&mut n, "largest lead", "max_lead", side)?;
    let score = cx.score(&mut n)?;
    n.text = format!("{} lead by {lead}, their largest lead of the game: {score}", cx.team(side));
    Some(n)
}

fn run(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let (side, points) = cx.ledger.run()?;
    if points < 8 || d.scored != Some(side) {
        return None;
    }
    let mut n = cx.note("run", side_name(side), 60);
    let pts = cx.side_fact(&mut n, "unanswered points", "run", side)?;
    n.text = format!("{} are on {} {pts}–0 run", cx.team(side), article(pts));
    Some(n)
}

fn milestone(cx: &Cx<'_>, player: &str, added: u32) -> Option<Note> {
    let total = cx.ledger.value(cx.state, "pts", Some(player), None)? as u32;
    let mark = [50, 40, 30, 20, 10].into_iter().find(|m| total >= *m && total.saturating_sub(added) < *m)?;
    let mut n = cx.note("milestone", &format!("{player}/{mark}"), if mark >= 20 { 60 } else { 35 });
    let pts = cx.fact(&mut n, format!("{player} points"), "pts", Some(player), None)?;
    n.text = format!("{player} has {pts} points");
    Some(n)
}

fn period_high(cx: &Cx<'_>, player: &str) -> Option<Note> {
    let p = cx.state.period;
    let here = cx.ledger.value(cx.state, "pts", Some(player), Some(p))?;
    if here < 10.0 || !cx.ledger.only_best_period(player, p) {
        return None;
    }
    let mut n = cx.note("period_high", player, 70);
    let pts = cx.fact(&mut n, format!("{player} points in period {p}"), "pts", Some(player), Some(p))?;
    cx.fact(&mut n, "most points by a player in a period".into(), "max_period_pts", None, None)?;
    let unit = if p <= 4 { "a quarter" } else { "a period" };
    n.text = format!(
        "{player} has {pts} points in {}, the most by any player in {unit} tonight",
        period_name(cx.state.sport, p)
    );
    Some(n)
}

fn streak(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let (player, run) = d.fg_streak.as_ref()?;
    if *run < 5 {
        return None;
    }
    let mut n = cx.note("streak", player, 55);
    let made =
        cx.fact(&mut n, format!("{player} field goals made in a row"), "fg_streak", Some(player), None)?;
    n.text = format!("{player} has made {made} field goals in a row");
    Some(n)
}

fn turnover(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let side = d.turnover?;
    let mut n = cx.note("turnover", side_name(side), 55);
    let count = cx.side_fact(&mut n, "turnovers", "turnovers", side)?;
    if count < 2.0 {
        return None;
    }
    n.text = format!("That is {}'s {} turnover of the game", cx.team(side), ordinal(count as u32));
    Some(n)
}

fn big_play(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let (side, yards, longest) = d.play?;
    if !longest || yards < 30 {
        return None;
    }
    let mut n = cx.note("big_play", "longest", 55);
    let y = cx.fact(&mut n, "longest play (yards)".into(), "longest_play", None, None)?;
    n.text = format!("{} gain {y} yards, the longest play of the game", cx.team(side));
    Some(n)
}

fn goals(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let (side, player) = d.goal.as_ref()?;
    let mut n = cx.note("goals", player, 75);
    let g = cx.fact(&mut n, format!("{player} goals"), "goals", Some(player), None)?;
    if g < 2.0 {
        return None;
    }
    let score = cx.score(&mut n)?;
    n.text = format!("{player} has {g} goals for {} today: {score}", cx.team(*side));
    Some(n)
}

fn xg_vs_score(cx: &Cx<'_>) -> Option<Note> {
    if cx.state.last_event != "shot" {
        return None;
    }
    let xg = cx.ledger.xg()?;
    let side = if xg[0] >= xg[1] { Side::Home } else { Side::Away };
    let s = cx.state.score?;
    let (mine, theirs) = if side == Side::Home { (s.home, s.away) } else { (s.away, s.home) };
    if xg[side.index()] - xg[side.other().index()] < 0.8 || mine > theirs {
        return None;
    }
    let mut n = cx.note("xg_vs_score", side_name(side), 50);
    let x = cx.side_fact(&mut n, "xG", "xg", side)?;
    let y = cx.side_fact(&mut n, "xG", "xg", side.other())?;
    let score = cx.score(&mut n)?;
    let how = if mine < theirs { "trail" } else { "are only level" };
    n.text =
        format!("{} have {x:.1} xG to {}'s {y:.1} but {how}: {score}", cx.team(side), cx.team(side.other()));
    Some(n)
}

fn shots(cx: &Cx<'_>) -> Option<Note> {
    if cx.state.last_event != "shot" {
        return None;
    }
    let side = SIDES.into_iter().find(|s| {
        let mine = cx.ledger.value(cx.state, "shots", Some(side_name(*s)), None).unwrap_or(0.0);
        let theirs = cx.ledger.value(cx.state, "shots", Some(side_name(s.other())), None).unwrap_or(0.0);
        mine >= 10.0 && mine >= 3.0 * theirs
    })?;
    let mut n = cx.note("shots", side_name(side), 40);
    let mine = cx.side_fact(&mut n, "shots", "shots", side)?;
    let theirs = cx.side_fact(&mut n, "shots", "shots", side.other())?;
    n.text = format!("{} have {mine} shots to {}'s {theirs}", cx.team(side), cx.team(side.other()));
    Some(n)
}

fn red_card(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    let (side, player) = d.red_card.as_ref()?;
    let mut n = cx.note("red_card", player, 75);
    let reds = cx.side_fact(&mut n, "red cards", "red_cards", *side)?;
    let left = 11.0 - reds;
    n.text = format!("{player} is sent off: {} are down to {left} players", cx.team(*side));
    Some(n)
}

fn race(cx: &Cx<'_>) -> bool {
    matches!(&cx.state.detail, Detail::F1(f) if matches!(f.session_kind, Some(SessionKind::Race | SessionKind::Sprint)))
}

fn fastest_lap(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    if !d.fastest || cx.state.status == Status::Ended {
        return None;
    }
    let (driver, _, _) = cx.ledger.fastest()?.clone();
    let mut n = cx.note("fastest_lap", "fastest", 55);
    let ms = cx.fact(&mut n, "fastest lap (ms)".into(), "fastest_lap_ms", None, None)?;
    cx.fact(&mut n, format!("{driver} best lap (ms)"), "best_lap_ms", Some(&driver), None)?;
    let lap = cx.fact(&mut n, "lap of the fastest lap".into(), "fastest_lap_lap", None, None)?;
    n.text = format!("{driver} sets the fastest lap so far, {} on lap {lap}", lap_time(ms));
    Some(n)
}

fn leader(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    if !d.new_leader || !race(cx) {
        return None;
    }
    let Detail::F1(f) = &cx.state.detail else { return None };
    let driver = f.cars.first()?.driver.clone();
    let mut n = cx.note("leader", &driver, 70);
    cx.fact(&mut n, format!("{driver} position"), "pos", Some(&driver), None)?;
    let lap = cx.fact(&mut n, "lap".into(), "lap", None, None)?;
    n.text = format!("{driver} takes the lead on lap {lap}");
    Some(n)
}

fn safety_car(cx: &Cx<'_>, d: &Delta) -> Option<Note> {
    if !d.safety_car {
        return None;
    }
    let Detail::F1(f) = &cx.state.detail else { return None };
    let driver = f.cars.first()?.driver.clone();
    let mut n = cx.note("safety_car", "safety_car", 85);
    let lap = cx.fact(&mut n, "lap".into(), "lap", None, None)?;
    cx.fact(&mut n, format!("{driver} position"), "pos", Some(&driver), None)?;
    n.text = format!("Safety car on lap {lap}; {driver} leads");
    Some(n)
}

fn gained(cx: &Cx<'_>) -> Option<Note> {
    if !race(cx) {
        return None;
    }
    let driver = cx.ledger.last_lap_driver()?.to_string();
    let grid = cx.ledger.value(cx.state, "grid", Some(&driver), None)?;
    let pos = cx.ledger.value(cx.state, "pos", Some(&driver), None)?;
    if grid - pos < 5.0 {
        return None;
    }
    let mut n = cx.note("gained", &driver, 45);
    let grid = cx.fact(&mut n, format!("{driver} first position"), "grid", Some(&driver), None)?;
    let pos = cx.fact(&mut n, format!("{driver} position"), "pos", Some(&driver), None)?;
    n.text = format!("{driver} has gained {} places since the start, from P{grid} to P{pos}", grid - pos);
    Some(n)
}

fn since_safety_car(cx: &Cx<'_>) -> Option<Note> {
    if !race(cx) {
        return None;
    }
    let driver = cx.ledger.last_lap_driver()?.to_string();
    cx.ledger.safety_car()?;
    let then = cx.ledger.value(cx.state, "sc_pos", Some(&driver), None)?;
    let now = cx.ledger.value(cx.state, "pos", Some(&driver), None)?;
    if then - now < 3.0 {
        return None;
    }
    let mut n = cx.note("since_safety_car", &driver, 60);
    let then =
        cx.fact(&mut n, format!("{driver} position at the safety car"), "sc_pos", Some(&driver), None)?;
    let now = cx.fact(&mut n, format!("{driver} position"), "pos", Some(&driver), None)?;
    let sc_lap = cx.fact(&mut n, "safety car lap".into(), "sc_lap", None, None)?;
    n.text = format!("{driver} has gained {} places since the safety car on lap {sc_lap}", then - now);
    Some(n)
}
