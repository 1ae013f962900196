//! `opensports sim`: simulated games published to a server over QUIC, with a progress line.

use anyhow::Context;
use opensports_client::{Publisher, PublisherConfig};
use opensports_proto::Sport;

use super::progress::Progress;
use crate::sim::{self, Speed};

/// `--sport`: a comma-separated list of sports, or `all`; a typo names the accepted values.
pub fn sports(list: &str) -> anyhow::Result<Vec<Sport>> {
    if list == "all" {
        return Ok(Sport::ALL.to_vec());
    }
    list.split(',')
        .map(|s| {
            Sport::parse(s.trim())
                .with_context(|| format!("unknown sport {s:?} (basketball, football, soccer, f1, or all)"))
        })
        .collect()
}

/// Generates one game per sport of `sport` from `seed` and publishes them at `speed`; returns
/// once every event is acked.
pub async fn run(cfg: PublisherConfig, sport: &str, speed: Speed, seed: u64) -> anyhow::Result<()> {
    let start_ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64;
    let games: Vec<_> = sports(sport)?.into_iter().map(|s| sim::generate(s, seed, start_ts)).collect();
    for g in &games {
        eprintln!("{}: {} events", g.id, g.events.len());
    }
    let mut publisher = Publisher::connect(cfg).await?;
    let mut progress = Progress::new("sim");
    sim::publish(&mut publisher, &games, speed, |done, total| progress.update(done, total)).await?;
    let total: usize = games.iter().map(|g| g.events.len()).sum();
    publisher.close(std::time::Duration::from_secs(30)).await?;
    progress.finish(&format!("{total} events published and acked"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sports_are_parsed_strictly() {
        assert_eq!(sports("all").unwrap().len(), 4);
        assert_eq!(sports("basketball, f1").unwrap(), [Sport::Basketball, Sport::F1]);
        let err = sports("basketball,hockey").unwrap_err().to_string();
        assert!(err.contains("hockey") && err.contains("basketball, football, soccer, f1"), "{err}");
    }
}
