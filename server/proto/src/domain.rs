//! Per-sport value domains: what the types allow but the sport does not (a 4-point shot, a
//! shot at x = 200 ft on a 94 ft court, period 0). Checked for every decoded event, JSON or
//! rkyv; a value out of its domain is rejected `bad_event`, naming the field.

use alloc::format;
use alloc::string::String;

use crate::event::{Body, Event};
use crate::{basketball as bk, f1, football as fb, soccer as sc};

/// A field whose value the sport does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfDomain {
    pub field: &'static str,
    pub why: String,
}

impl core::fmt::Display for OutOfDomain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.why)
    }
}

fn bad(field: &'static str, why: String) -> Result<(), OutOfDomain> {
    Err(OutOfDomain { field, why })
}

fn within(field: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), OutOfDomain> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        bad(field, format!("{v} is outside {lo}..={hi}"))
    }
}

fn period(field: &'static str, p: u8, max: u8) -> Result<(), OutOfDomain> {
    if (1..=max).contains(&p) { Ok(()) } else { bad(field, format!("{p} is outside 1..={max}")) }
}

/// Checks `ev`'s values against its sport's domain (PROTOCOL.md, Events).
pub fn check(ev: &Event) -> Result<(), OutOfDomain> {
    match &ev.body {
        Body::Basketball(b) => basketball(b),
        Body::Football(f) => football(f),
        Body::Soccer(s) => soccer(s),
        Body::F1(f) => formula1(f),
    }
}

fn basketball(ev: &bk::Event) -> Result<(), OutOfDomain> {
    match ev {
        bk::Event::PeriodStart { period: p } | bk::Event::PeriodEnd { period: p } => period("period", *p, 20),
        bk::Event::Shot { x, y, points, .. } => {
            if !matches!(points, 2 | 3) {
                return bad("points", format!("a field goal is worth 2 or 3, not {points}"));
            }
            within("x", *x, 0.0, 94.0)?;
            within("y", *y, 0.0, 50.0)
        }
        bk::Event::FreeThrow { attempt, of, .. } => {
            if !(1..=3).contains(of) || !(1..=*of).contains(attempt) {
                return bad("attempt", format!("free throw {attempt} of {of} (1 <= attempt <= of <= 3)"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn football(ev: &fb::Event) -> Result<(), OutOfDomain> {
    match ev {
        fb::Event::PeriodStart { period: p } | fb::Event::PeriodEnd { period: p } => period("period", *p, 10),
        fb::Event::Play(play) => {
            period("quarter", play.quarter, 10)?;
            if let Some(d) = play.down
                && !(1..=4).contains(&d)
            {
                return bad("down", format!("{d} is outside 1..=4"));
            }
            if let Some(y) = play.yardline_100
                && y > 100
            {
                return bad("yardline_100", format!("{y} is outside 0..=100"));
            }
            if let Some(s) = &play.scoring
                && !matches!(s.points, 1 | 2 | 3 | 6)
            {
                return bad("scoring.points", format!("{} is not 1, 2, 3 or 6", s.points));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn soccer(ev: &sc::Event) -> Result<(), OutOfDomain> {
    match ev {
        sc::Event::PeriodStart { period: p } | sc::Event::PeriodEnd { period: p } => period("period", *p, 5),
        sc::Event::Pass { x, y, end_x, end_y, .. } => {
            within("x", *x, 0.0, 105.0)?;
            within("y", *y, 0.0, 68.0)?;
            within("end_x", *end_x, 0.0, 105.0)?;
            within("end_y", *end_y, 0.0, 68.0)
        }
        sc::Event::Shot { x, y, provider_xg, .. } => {
            within("x", *x, 0.0, 105.0)?;
            within("y", *y, 0.0, 68.0)?;
            match provider_xg {
                Some(xg) => within("provider_xg", *xg, 0.0, 1.0),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn formula1(ev: &f1::Event) -> Result<(), OutOfDomain> {
    match ev {
        f1::Event::Position { position, .. } if *position == 0 => {
            bad("position", "positions start at 1".into())
        }
        f1::Event::Lap(l) if l.position == 0 => bad("position", "positions start at 1".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    fn ev(body: Body) -> Event {
        Event { v: 1, game: "g".into(), seq: 1, ts: 1, clock_ms: None, body }
    }

    #[test]
    fn basketball_domains() {
        let shot = |points, x| {
            ev(Body::Basketball(bk::Event::Shot {
                side: Side::Home,
                player: "p".into(),
                x,
                y: 25.0,
                points,
                made: true,
            }))
        };
        assert!(check(&shot(2, 10.0)).is_ok() && check(&shot(3, 90.0)).is_ok());
        for (e, field) in [
            (shot(1, 10.0), "points"),
            (shot(4, 10.0), "points"),
            (shot(2, 200.0), "x"),
            (shot(2, f32::NAN), "x"),
        ] {
            assert_eq!(check(&e).unwrap_err().field, field);
        }
        let p0 = ev(Body::Basketball(bk::Event::PeriodStart { period: 0 }));
        assert_eq!(check(&p0).unwrap_err().field, "period");
        let ft = |attempt, of| {
            ev(Body::Basketball(bk::Event::FreeThrow {
                side: Side::Away,
                player: "p".into(),
                made: true,
                attempt,
                of,
            }))
        };
        assert!(check(&ft(2, 2)).is_ok());
        assert!(check(&ft(3, 2)).is_err() && check(&ft(0, 1)).is_err() && check(&ft(1, 4)).is_err());
    }
}
