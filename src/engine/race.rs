//! Concurrent conditional writers on one key, round after round, and their
//! grader.
//!
//! A racer's answer is known (2xx: won; 4xx: lost) or unknown (no answer, or
//! a 5xx). A round is `unsafe` only when more than the allowed number of
//! racers are known to have won, when the stored body belongs to a racer
//! known to have lost (or to another racer than the one that won), or when
//! the object holds what no racer wrote. A round in which no racer is known
//! to have won and nothing changed, but some answers were lost, cannot be
//! judged: it is an `error` that says how many went unanswered.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Barrier;

use crate::catalog::{Conditions, RaceStart};
use crate::report::Verdict;
use crate::store::{Outcome, Precondition};

use super::grade::{is_unsupported_answer, ms, tally, Answer, Findings, Graded, Reason};
use super::state::{preview, Expected, Settled, State};
use super::{abort, Abort, Run};

/// What one race round saw.
#[derive(Debug)]
pub(crate) struct RoundSeen {
    pub round: u32,
    pub base: State,
    /// Each racer's body and answer (`Err`: no answer came).
    pub results: Vec<(String, Result<Outcome, String>)>,
    /// The object read back after the round.
    pub after: Settled,
}

impl Run<'_> {
    /// `rounds` rounds of `racers` concurrent conditional PUTs on a fresh
    /// key each, spread over the target's endpoints.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn race(
        &mut self,
        key: &str,
        racers: u32,
        rounds: u32,
        start: RaceStart,
        conditions: &Conditions,
        winners: u32,
        loser_status: &[u16],
    ) -> Result<Graded, Abort> {
        let mut seen = Vec::new();
        for round in 1..=rounds {
            let key = self.key(&format!("{key}-round-{round}"));
            seen.push(
                self.race_round(&key, round, racers, start, conditions)
                    .await?,
            );
        }
        let mut graded = grade_race(&seen, winners, loser_status);
        if self.stores.len() > 1 {
            graded.reason = format!(
                "racers spread over {} endpoints: {}",
                self.stores.len(),
                graded.reason
            );
        }
        Ok(graded)
    }

    async fn race_round(
        &mut self,
        key: &str,
        round: u32,
        racers: u32,
        start: RaceStart,
        conditions: &Conditions,
    ) -> Result<RoundSeen, Abort> {
        let mut extra = HashMap::new();
        let base = match start {
            RaceStart::Absent => State::Absent,
            RaceStart::Existing => {
                let body = Bytes::from(format!("base of round {round}"));
                let out = self
                    .store()
                    .put(key, body.clone(), &Precondition::none())
                    .await
                    .map_err(|e| abort(format!("set-up PUT {key} got no answer: {}", e.message)))?;
                self.evidence.push(out.clone());
                if !out.is_success() {
                    return Err(abort(format!(
                        "set-up PUT {key} answered {}",
                        out.status_line()
                    )));
                }
                self.expected.insert(key.to_owned(), Expected::Body(body));
                let state = self.read_expected(key).await?;
                let etag = out
                    .etag
                    .clone()
                    .or_else(|| state.etag().cloned())
                    .ok_or_else(|| abort(format!("set-up PUT {key} returned no ETag")))?;
                extra.insert("base", etag);
                state
            }
        };
        let pre = self.precondition(conditions, &extra, None)?;
        let barrier = Arc::new(Barrier::new(racers as usize));
        let mut tasks = Vec::new();
        for racer in 0..racers {
            let store = self.stores[racer as usize % self.stores.len()].clone();
            let key = key.to_owned();
            let pre = pre.clone();
            let barrier = barrier.clone();
            let body = format!("racer {racer} of round {round}");
            tasks.push(tokio::spawn(async move {
                // Open (and keep in the pool) a connection before the barrier,
                // so the writes leave together instead of queueing on connects.
                let _ = store.head(&key, &Precondition::none()).await;
                barrier.wait().await;
                let res = store.put(&key, Bytes::from(body.clone()), &pre).await;
                (body, res)
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            let (body, res) = task
                .await
                .map_err(|e| abort(format!("a racer task failed: {e}")))?;
            results.push((body, res.map_err(|e| e.message)));
        }
        if let Some(out) = results.iter().find_map(|(_, r)| r.as_ref().ok()) {
            self.evidence.push(out.clone());
        }
        // Read until the object holds a body a winner (or an unanswered
        // racer) wrote, when one is known to have won; otherwise once, and
        // again after the target's read lag if nothing changed.
        let candidates: Vec<Bytes> = results
            .iter()
            .filter(|(_, r)| !matches!(Answer::of(r), Answer::Refused(_)))
            .map(|(b, _)| Bytes::from(b.clone()))
            .collect();
        let someone_won = results
            .iter()
            .any(|(_, r)| matches!(Answer::of(r), Answer::Acknowledged(_)));
        let after = if someone_won {
            self.read_until(key, |s| candidates.iter().any(|b| s.holds(b)))
                .await?
        } else {
            let state = self.read(key).await?;
            match (
                state.same_as(&base),
                self.confirm_unchanged(key, &state).await?,
            ) {
                (true, Some((later, _))) => Settled::at_once(later),
                _ => Settled::at_once(state),
            }
        };
        self.expected
            .insert(key.to_owned(), Expected::of(&after.state));
        Ok(RoundSeen {
            round,
            base,
            results,
            after,
        })
    }
}

/// Grades a race from its rounds.
pub(crate) fn grade_race(rounds: &[RoundSeen], allowed: u32, loser_status: &[u16]) -> Graded {
    let racers = rounds.first().map_or(0, |r| r.results.len());
    let statuses: Vec<String> = loser_status.iter().map(u16::to_string).collect();
    let expected = format!(
        "{allowed} winner per round of {racers}, losers {}, object holds the winner's body",
        statuses.join("/")
    );
    let mut f = Findings::default();
    let mut notes: Vec<(u32, Verdict, String)> = Vec::new();
    let mut per_round = Vec::new();
    let mut overrun = 0;
    let mut unanswered = 0;
    for r in rounds {
        let mut won: Vec<&str> = Vec::new();
        let mut lost: Vec<(&str, &Outcome)> = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        for (body, res) in &r.results {
            match Answer::of(res) {
                Answer::Acknowledged(_) => won.push(body),
                Answer::Refused(o) => lost.push((body, o)),
                Answer::Unknown(_) => unknown.push(body),
            }
        }
        unanswered += unknown.len();
        per_round.push(won.len().to_string());
        let mut note = |v: Verdict, text: String| notes.push((r.round, v, text));
        if won.len() > allowed as usize {
            // The per-round winner counts in the reason already say how many.
            overrun += 1;
            note(Verdict::Unsafe, String::new());
        }
        let after = &r.after.state;
        let holder = r
            .results
            .iter()
            .map(|(b, _)| b.as_str())
            .find(|b| after.holds(b.as_bytes()));
        match holder {
            Some(h) if lost.iter().any(|(b, _)| *b == h) => {
                let (_, o) = lost.iter().find(|(b, _)| *b == h).unwrap();
                note(
                    Verdict::Unsafe,
                    format!(
                        "the object holds {}, whose write was refused ({})",
                        preview(h.as_bytes()),
                        o.status_line()
                    ),
                );
            }
            Some(h) if !won.is_empty() && !won.contains(&h) => note(
                Verdict::Unsafe,
                format!(
                    "the object holds {}, whose answer was lost, though another racer won: two writes landed",
                    preview(h.as_bytes())
                ),
            ),
            Some(_) => {}
            None if !won.is_empty() => note(
                Verdict::Unsafe,
                format!("no winner's body is stored: {}", after.describe()),
            ),
            None if !after.same_as(&r.base) => note(
                Verdict::Unsafe,
                format!(
                    "no racer is known to have won, yet the object changed to {}",
                    after.describe()
                ),
            ),
            None if !unknown.is_empty() => note(
                Verdict::Error,
                format!(
                    "no racer is known to have won and the object is unchanged, but {} answers were lost: the round cannot be judged",
                    unknown.len()
                ),
            ),
            None => {
                let outcomes: Vec<&Outcome> = lost.iter().map(|(_, o)| *o).collect();
                if outcomes.iter().all(|o| is_unsupported_answer(o)) {
                    note(
                        Verdict::Unsupported,
                        format!("every racer was refused: {}", tally(&outcomes)),
                    );
                } else {
                    note(
                        Verdict::Deviates,
                        format!("no racer won: {}", tally(&outcomes)),
                    );
                }
            }
        }
        if !won.is_empty() || holder.is_some() {
            let odd: Vec<&Outcome> = lost
                .iter()
                .map(|(_, o)| *o)
                .filter(|o| !loser_status.contains(&o.status))
                .collect();
            if !odd.is_empty() {
                note(
                    Verdict::Deviates,
                    format!("losers answered {}", tally(&odd)),
                );
            }
        }
        if let Some(d) = r.after.late {
            note(
                Verdict::Deviates,
                format!(
                    "read-after-write is not strong: the winner's body showed after {} ms",
                    ms(d)
                ),
            );
        }
    }
    let mut actual = format!("winners per round [{}]", per_round.join(", "));
    if overrun > 0 {
        actual.push_str(&format!(
            "; more than {allowed} winner in {overrun} of {} rounds",
            rounds.len()
        ));
    }
    // The same observation in several rounds is said once, with its rounds.
    let mut grouped: Vec<(Vec<u32>, Verdict, &str)> = Vec::new();
    for (round, v, text) in &notes {
        f.add(*v, "");
        if text.is_empty() {
            continue;
        }
        match grouped.iter_mut().find(|(_, _, t)| t == text) {
            Some((rounds, _, _)) => rounds.push(*round),
            None => grouped.push((vec![*round], *v, text)),
        }
    }
    for (seen_in, v, text) in grouped {
        let which = if seen_in.len() == rounds.len() && rounds.len() > 1 {
            "every round".to_owned()
        } else if seen_in.len() == 1 {
            format!("round {}", seen_in[0])
        } else {
            let list: Vec<String> = seen_in.iter().map(u32::to_string).collect();
            format!("rounds {}", list.join(", "))
        };
        f.add(v, format!("{which}: {text}"));
    }
    if unanswered > 0 {
        f.add(
            Verdict::Pass,
            format!(
                "{unanswered} of {} racer requests went unanswered (no answer or a 5xx); they count as unknown, neither won nor lost",
                racers * rounds.len()
            ),
        );
    }
    Reason {
        subject: None,
        expected,
        actual,
    }
    .graded(f)
}
