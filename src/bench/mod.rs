//! What conditional writes cost on a store, measured through `store` on the
//! real server: latency of a plain PUT against a create-only and an
//! If-Match PUT (percentiles), the compare-and-swap counter's throughput and
//! conflict rate as workers are added, and a race's winner and loser
//! latency. Every measure is bounded in count and in time; it grades
//! nothing (that is the engine's job) and prints nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{ETag, Precondition};
use crate::store::gate::race_round;
use crate::store::Store;

/// One target's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The target measured.
    pub target: String,
    /// Latency of each kind of PUT, in the order measured.
    pub latency: Vec<Latency>,
    /// The CAS counter at each number of workers.
    pub cas: Vec<CasPoint>,
    /// Racers on one key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race: Option<RaceFigures>,
    /// What went wrong or was cut short, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Latency percentiles of one kind of request, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// `PUT`, `PUT If-None-Match: *`, `PUT If-Match`.
    pub kind: String,
    /// Requests answered with success (the percentiles are of those).
    pub count: usize,
    /// Requests that failed or were refused.
    pub failed: usize,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

/// The counter with `workers` read-modify-write loops under If-Match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CasPoint {
    /// Concurrent workers.
    pub workers: u32,
    /// Increments acknowledged.
    pub increments: u32,
    /// If-Match PUTs sent.
    pub attempts: u32,
    /// Of those, refused with 412 or 409.
    pub conflicts: u32,
    /// Wall time of the run.
    pub seconds: f64,
    /// Acknowledged increments per second.
    pub per_second: f64,
    /// conflicts / attempts.
    pub conflict_rate: f64,
}

/// Rounds of racers, each creating one fresh key with If-None-Match: *.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaceFigures {
    /// Rounds raced.
    pub rounds: u32,
    /// Racers per round.
    pub racers: u32,
    /// Median latency of the winning request.
    pub winner_p50_ms: f64,
    /// Median and worst latency of the refused requests.
    pub loser_p50_ms: f64,
    /// The slowest refused request.
    pub loser_max_ms: f64,
    /// Median, over rounds, of the time between the first and the last
    /// racer's last byte leaving the client (each racer holds its last byte
    /// until all are ready: see `store::gate`).
    pub sent_spread_p50_us: u64,
    /// The same, as the server read them, from a server that says when
    /// (the reference server does); `None` from others.
    pub read_spread_p50_us: Option<u64>,
}

/// How much to measure.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Requests per kind of PUT.
    pub samples: usize,
    /// Increments per worker count.
    pub increments: u32,
    /// Worker counts of the counter.
    pub workers: Vec<u32>,
    /// Time a measure may take before it is cut short (and noted).
    pub budget: Duration,
    /// Rounds of the race.
    pub race_rounds: u32,
    /// Racers per round.
    pub racers: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            samples: 50,
            increments: 40,
            workers: vec![1, 2, 4, 8, 16, 32],
            budget: Duration::from_secs(15),
            race_rounds: 4,
            racers: 16,
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// The `q` quantile (0..=1) of sorted `values`, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The nearest-rank median of sorted whole numbers.
fn median(sorted: &[u64]) -> Option<u64> {
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

fn latency(kind: &str, mut samples: Vec<f64>, failed: usize) -> Latency {
    samples.sort_by(f64::total_cmp);
    Latency {
        kind: kind.to_owned(),
        count: samples.len(),
        failed,
        p50_ms: quantile(&samples, 0.5),
        p90_ms: quantile(&samples, 0.9),
        p99_ms: quantile(&samples, 0.99),
        max_ms: samples.last().copied().unwrap_or(0.0),
    }
}

/// Measures one target through `store`, under `prefix` (every key it
/// writes lives there; the run's stop removes them).
pub async fn bench(target: &str, store: &Store, prefix: &str, limits: &Limits) -> BenchResult {
    let mut notes = Vec::new();
    let body = Bytes::from_static(b"condwrite bench: a small object, as locks and commits are");
    let mut measured = Vec::new();
    for kind in ["PUT", "PUT If-None-Match: *", "PUT If-Match"] {
        let started = Instant::now();
        let (mut samples, mut failed) = (Vec::new(), 0);
        let key = format!("{prefix}latency/{}", kind.len());
        let mut etag: Option<ETag> = None;
        if kind == "PUT If-Match" {
            etag = store
                .put(&key, body.clone(), &Precondition::none())
                .await
                .ok()
                .and_then(|o| o.etag);
        }
        for i in 0..limits.samples {
            if started.elapsed() > limits.budget {
                notes.push(format!(
                    "{kind}: cut short after {i} requests ({} s)",
                    limits.budget.as_secs()
                ));
                break;
            }
            let (k, pre) = match kind {
                "PUT" => (key.clone(), Precondition::none()),
                "PUT If-None-Match: *" => (format!("{key}-{i}"), Precondition::create_only()),
                _ => match &etag {
                    Some(e) => (key.clone(), Precondition::if_match(e)),
                    None => {
                        notes.push(format!("{kind}: the PUT before it returned no ETag"));
                        break;
                    }
                },
            };
            let body = Bytes::from(format!("{} {i}", String::from_utf8_lossy(&body)));
            let sent = Instant::now();
            match store.put(&k, body, &pre).await {
                Ok(o) if o.is_success() => {
                    samples.push(ms(sent.elapsed()));
                    if kind == "PUT If-Match" {
                        etag = o.etag;
                    }
                }
                _ => failed += 1,
            }
        }
        measured.push(latency(kind, samples, failed));
    }
    let mut cas = Vec::new();
    for &workers in &limits.workers {
        let point = cas_point(
            store,
            &format!("{prefix}counter-{workers}"),
            workers,
            limits,
        )
        .await;
        if point.seconds >= limits.budget.as_secs_f64() {
            notes.push(format!(
                "counter with {workers} workers: cut short at {} of {} increments",
                point.increments, limits.increments
            ));
        }
        cas.push(point);
    }
    let race = race(store, &format!("{prefix}race"), limits).await;
    BenchResult {
        target: target.to_owned(),
        latency: measured,
        cas,
        race,
        notes,
    }
}

/// `workers` loops of GET then If-Match PUT of the value plus one, until
/// `limits.increments` are acknowledged or the budget is spent.
async fn cas_point(store: &Store, key: &str, workers: u32, limits: &Limits) -> CasPoint {
    let _ = store
        .put(key, Bytes::from("0"), &Precondition::none())
        .await;
    let done = Arc::new(AtomicU32::new(0));
    let attempts = Arc::new(AtomicU32::new(0));
    let conflicts = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let deadline = started + limits.budget;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (store, key) = (store.clone(), key.to_owned());
        let (done, attempts, conflicts) = (done.clone(), attempts.clone(), conflicts.clone());
        let goal = limits.increments;
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < goal && Instant::now() < deadline {
                let Ok(got) = store.get(&key, &Precondition::none()).await else {
                    continue;
                };
                let value: u64 = String::from_utf8_lossy(got.body.as_deref().unwrap_or_default())
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let Some(etag) = got.etag else { break };
                attempts.fetch_add(1, Ordering::SeqCst);
                match store
                    .put(
                        &key,
                        Bytes::from((value + 1).to_string()),
                        &Precondition::if_match(&etag),
                    )
                    .await
                {
                    Ok(o) if o.is_success() => {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(o) if o.status == 412 || o.status == 409 => {
                        conflicts.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(o) if o.status == 501 || o.status == 400 => break,
                    _ => {}
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (increments, attempts, conflicts) = (
        done.load(Ordering::SeqCst),
        attempts.load(Ordering::SeqCst),
        conflicts.load(Ordering::SeqCst),
    );
    CasPoint {
        workers,
        increments,
        attempts,
        conflicts,
        seconds: (seconds * 1000.0).round() / 1000.0,
        per_second: if seconds > 0.0 {
            (f64::from(increments) / seconds * 10.0).round() / 10.0
        } else {
            0.0
        },
        conflict_rate: if attempts > 0 {
            (f64::from(conflicts) / f64::from(attempts) * 1000.0).round() / 1000.0
        } else {
            0.0
        },
    }
}

/// Rounds of racers creating one fresh key each round, their last bytes
/// released together as in the race scenarios.
async fn race(store: &Store, prefix: &str, limits: &Limits) -> Option<RaceFigures> {
    let (mut winners, mut losers) = (Vec::new(), Vec::new());
    let (mut sent, mut read) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let mut rounds = 0;
    for round in 0..limits.race_rounds {
        if started.elapsed() > limits.budget {
            break;
        }
        rounds += 1;
        let key = format!("{prefix}-{round}");
        let bodies = (0..limits.racers)
            .map(|r| Bytes::from(format!("racer {r}")))
            .collect();
        let stores = std::slice::from_ref(store);
        let Ok(raced) = race_round(stores, &key, bodies, &Precondition::create_only()).await else {
            continue;
        };
        for r in &raced.racers {
            let won = r.answer.as_ref().map(|o| o.is_success()).unwrap_or(false);
            if won {
                winners.push(ms(r.took));
            } else {
                losers.push(ms(r.took));
            }
        }
        let spread = raced.spread;
        sent.extend(spread.sent_us);
        read.extend(spread.read_us);
    }
    if rounds == 0 {
        return None;
    }
    for v in [&mut winners, &mut losers] {
        v.sort_by(f64::total_cmp);
    }
    sent.sort_unstable();
    read.sort_unstable();
    Some(RaceFigures {
        rounds,
        racers: limits.racers,
        winner_p50_ms: quantile(&winners, 0.5),
        loser_p50_ms: quantile(&losers, 0.5),
        loser_max_ms: losers.last().copied().unwrap_or(0.0),
        sent_spread_p50_us: median(&sent).unwrap_or(0),
        // Only when the server said for every round.
        read_spread_p50_us: median(&read).filter(|_| read.len() == rounds as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.9), 90.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(median(&[1, 2, 3, 4]), Some(2));
        assert_eq!(median(&[1, 2, 3]), Some(2));
        assert_eq!(median(&[]), None);
        let l = latency("PUT", vec![3.0, 1.0, 2.0], 1);
        assert_eq!((l.count, l.failed, l.p50_ms, l.max_ms), (3, 1, 2.0, 3.0));
    }
}
