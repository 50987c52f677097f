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

use super::grade::NoAnswer;
use std::collections::HashMap;

use bytes::Bytes;

use crate::store::gate::{self, Spread};

use crate::catalog::{Conditions, RaceStart, RaceStep};
use crate::model::Verdict;
use crate::model::{Outcome, Precondition};

use super::grade::{is_unsupported_answer, ms, tally, Answer, Findings, Graded, Reason};
use super::state::{preview, Expected, Settled, State};
use super::{abort, Abort, Run};
use crate::store::Store;

/// What one race round saw.
#[derive(Debug)]
pub(crate) struct RoundSeen {
    pub round: u32,
    pub base: State,
    /// Each racer's body and answer (`Err`: no answer came).
    pub results: Vec<(String, Result<Outcome, NoAnswer>)>,
    /// The object read back after the round.
    pub after: Settled,
    /// How close together the racers' requests completed.
    pub spread: Spread,
    /// Whether the racers' gate opened before all of them reached it.
    pub gate_gave_up: bool,
}

/// One round, set up and ready to race.
struct Ready {
    round: u32,
    key: String,
    base: State,
    pre: Precondition,
}

/// What a round's racers got.
struct Sent {
    results: Vec<(String, Result<Outcome, NoAnswer>)>,
    spread: Spread,
    gate_gave_up: bool,
}

impl Run<'_> {
    /// `rounds` rounds of `racers` concurrent conditional PUTs on a fresh
    /// key each, spread over the target's endpoints. The rounds take turns:
    /// racing two at once would have 32 requests share the CPUs and spread
    /// each round's arrivals over tens of milliseconds (measured on two
    /// cores), which is what the gate is there to prevent.
    pub(super) async fn race(&mut self, step: &RaceStep) -> Result<Graded, Abort> {
        let RaceStep {
            key,
            racers,
            rounds,
            start,
            conditions,
            winners,
            loser_status,
        } = step;
        let mut seen = Vec::new();
        let mut cut_short = None;
        for round in 1..=*rounds {
            match self
                .race_round(key, round, *racers, *start, conditions)
                .await
            {
                Ok(r) => seen.push(r),
                Err(a) => {
                    cut_short = Some((round, a));
                    break;
                }
            }
        }
        let mut graded = grade_race(&seen, *winners, loser_status);
        if let Some((round, a)) = cut_short {
            // Rounds that already showed more than one winner, or a lost
            // write, stand: a store that then fails a read-back (rclone
            // answers some with 500 under this load) is still unsafe.
            if graded.verdict != Verdict::Unsafe || a.verdict != Verdict::Error {
                return Err(a);
            }
            graded.reason = format!("{}; round {round} was cut short: {}", graded.reason, a.why);
        }
        if self.stores.len() > 1 {
            graded.reason = format!(
                "racers spread over {} endpoints: {}",
                self.stores.len(),
                graded.reason
            );
        }
        Ok(graded)
    }

    /// One round: set up, raced, read back.
    async fn race_round(
        &mut self,
        key: &str,
        round: u32,
        racers: u32,
        start: RaceStart,
        conditions: &Conditions,
    ) -> Result<RoundSeen, Abort> {
        if let Some(why) = self.store().health().stalled() {
            return Err(super::gone(why));
        }
        let key = self.key(&format!("{key}-round-{round}"));
        let ready = self.set_up_round(key, round, start, conditions).await?;
        let sent = send_round(self.stores, &ready, racers).await?;
        self.settle_round(ready, sent).await
    }

    /// Writes the round's base object where the race starts from one, and
    /// makes the racers' conditions.
    async fn set_up_round(
        &mut self,
        key: String,
        round: u32,
        start: RaceStart,
        conditions: &Conditions,
    ) -> Result<Ready, Abort> {
        let mut extra = HashMap::new();
        let base = match start {
            RaceStart::Absent => State::Absent,
            RaceStart::Existing => {
                let key = key.as_str();
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
        Ok(Ready {
            round,
            key,
            base,
            pre,
        })
    }

    /// Reads a raced round back.
    async fn settle_round(&mut self, ready: Ready, sent: Sent) -> Result<RoundSeen, Abort> {
        let Ready {
            round, key, base, ..
        } = ready;
        let key = key.as_str();
        let results = sent.results;
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
        let mut after = if someone_won {
            self.read_until(key, |s| candidates.iter().any(|b| s.holds(b)))
                .await?
        } else {
            Settled::at_once(self.read(key).await?)
        };
        // On a lagging store, look again once the lag has passed: a refused
        // racer's write that lands late must not hide behind the winner's.
        if let Some((later, _)) = self.confirm_unchanged(key, &after.state).await? {
            after.state = later;
        }
        self.expected
            .insert(key.to_owned(), Expected::of(&after.state));
        Ok(RoundSeen {
            round,
            base,
            results,
            after,
            spread: sent.spread,
            gate_gave_up: sent.gate_gave_up,
        })
    }
}

/// Races one round: `racers` PUTs spread over the endpoints, each holding
/// its last byte until all are ready (see `store::gate`).
async fn send_round(stores: &[Store], ready: &Ready, racers: u32) -> Result<Sent, Abort> {
    let bodies = (0..racers)
        .map(|r| Bytes::from(format!("racer {r} of round {}", ready.round)))
        .collect();
    let round = gate::race_round(stores, &ready.key, bodies, &ready.pre)
        .await
        .map_err(abort)?;
    Ok(Sent {
        results: round
            .racers
            .into_iter()
            .map(|r| {
                let body = String::from_utf8_lossy(&r.body).into_owned();
                (body, r.answer.map_err(|e| NoAnswer(e.message)))
            })
            .collect(),
        spread: round.spread,
        gate_gave_up: round.gave_up,
    })
}

/// The per-round arrival spreads, for the evidence: "last bytes sent
/// within [120, 95] µs of each other per round; the server read them within
/// [800, 950] µs".
fn spreads(rounds: &[RoundSeen]) -> Option<String> {
    let list = |f: fn(&Spread) -> Option<u64>| {
        let v: Vec<String> = rounds
            .iter()
            .filter_map(|r| f(&r.spread))
            .map(|us| us.to_string())
            .collect();
        (!v.is_empty()).then(|| format!("[{}] µs", v.join(", ")))
    };
    let sent = list(|s| s.sent_us)?;
    let mut text = format!("last bytes sent within {sent} of each other per round");
    if let Some(read) = list(|s| s.read_us) {
        text.push_str(&format!("; the server read them within {read}"));
    }
    let gave_up = rounds.iter().filter(|r| r.gate_gave_up).count();
    if gave_up > 0 {
        text.push_str(&format!(
            "; in {gave_up} rounds a racer never reached its last byte, and the others went without it"
        ));
    }
    Some(text)
}

/// Grades a race from its rounds.
pub(crate) fn grade_race(rounds: &[RoundSeen], allowed: u32, loser_status: &[u16]) -> Graded {
    let racers = rounds.first().map_or(0, |r| r.results.len());
    let statuses: Vec<String> = loser_status.iter().map(u16::to_string).collect();
    let expected = format!(
        "{allowed} winner per round of {racers}, losers {}, object holds the winner's body",
        statuses.join("/")
    );
    let mut notes: Vec<(u32, Verdict, String)> = Vec::new();
    let mut per_round = Vec::new();
    let mut overrun = 0;
    let mut unanswered = 0;
    let mut refusals = Vec::new();
    for r in rounds {
        let judged = judge_round(r, loser_status);
        unanswered += judged.unknown;
        refusals.extend(judged.refusals);
        per_round.push(judged.won.to_string());
        if judged.won > allowed as usize {
            // The per-round winner counts in the reason already say how many.
            overrun += 1;
            notes.push((r.round, Verdict::Unsafe, String::new()));
        }
        notes.extend(judged.notes.into_iter().map(|(v, t)| (r.round, v, t)));
    }
    let mut actual = format!("winners per round [{}]", per_round.join(", "));
    if overrun > 0 {
        actual.push_str(&format!(
            "; more than {allowed} winner in {overrun} of {} rounds",
            rounds.len()
        ));
    }
    if let Some(spreads) = spreads(rounds) {
        actual.push_str("; ");
        actual.push_str(&spreads);
    }
    let mut f = grouped_by_round(&notes, rounds.len());
    f.late_read = rounds.iter().any(|r| r.after.late.is_some());
    f.answered(&refusals);
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

/// What one race round showed.
struct RoundJudged {
    won: usize,
    unknown: usize,
    notes: Vec<(Verdict, String)>,
    /// The losers' answers.
    refusals: Vec<Outcome>,
}

/// Judges one round from its answers and the object read back after it.
fn judge_round(r: &RoundSeen, loser_status: &[u16]) -> RoundJudged {
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
    let mut notes = Vec::new();
    let mut note = |v: Verdict, text: String| notes.push((v, text));
    let after = &r.after.state;
    let holder = r
        .results
        .iter()
        .map(|(b, _)| b.as_str())
        .find(|b| after.holds(b.as_bytes()));
    let refused_holder = holder.and_then(|h| lost.iter().find(|(b, _)| *b == h));
    match holder {
        Some(h) if refused_holder.is_some() => {
            let (_, o) = refused_holder.expect("just matched");
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
    RoundJudged {
        won: won.len(),
        unknown: unknown.len(),
        notes,
        refusals: lost.iter().map(|(_, o)| (*o).clone()).collect(),
    }
}

/// The findings of every round, the same observation in several rounds said
/// once, with its rounds. A note without text only sets the verdict.
fn grouped_by_round(notes: &[(u32, Verdict, String)], rounds: usize) -> Findings {
    let mut f = Findings::default();
    let mut grouped: Vec<(Vec<u32>, Verdict, &str)> = Vec::new();
    for (round, v, text) in notes {
        f.add(*v, "");
        if text.is_empty() {
            continue;
        }
        match grouped.iter_mut().find(|(_, _, t)| t == text) {
            Some((seen_in, _, _)) => seen_in.push(*round),
            None => grouped.push((vec![*round], *v, text)),
        }
    }
    for (seen_in, v, text) in grouped {
        let which = if seen_in.len() == rounds && rounds > 1 {
            "every round".to_owned()
        } else if seen_in.len() == 1 {
            format!("round {}", seen_in[0])
        } else {
            let list: Vec<String> = seen_in.iter().map(u32::to_string).collect();
            format!("rounds {}", list.join(", "))
        };
        f.add(v, format!("{which}: {text}"));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ETag;

    fn out(status: u16) -> Outcome {
        let etag = (status == 200).then_some("\"e\"");
        crate::engine::made_up_put(status, None, etag, Precondition::create_only())
    }

    fn holding(i: usize) -> State {
        State::Present {
            body: Bytes::from(format!("racer {i}")),
            etag: Some(ETag::new("\"e\"")),
            last_modified: None,
        }
    }

    /// A round of four racers: each one's answer (a status, or `None` for
    /// no answer) and what was read back.
    fn round(answers: [Option<u16>; 4], after: State) -> RoundSeen {
        let results = answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let res = a.map(out).ok_or_else(|| NoAnswer("timeout".to_owned()));
                (format!("racer {i}"), res)
            })
            .collect();
        RoundSeen {
            round: 1,
            base: State::Absent,
            results,
            after: Settled::at_once(after),
            spread: Spread::default(),
            gate_gave_up: false,
        }
    }

    fn grade(rounds: &[RoundSeen]) -> Graded {
        grade_race(rounds, 1, &[412, 409])
    }

    fn assert_graded(g: &Graded, verdict: Verdict, text: &str) {
        assert_eq!(g.verdict, verdict, "{}", g.reason);
        assert!(g.reason.contains(text), "{:?} not in {}", text, g.reason);
    }

    const W: Option<u16> = Some(200);
    const L: Option<u16> = Some(412);
    const LOST: Option<u16> = None;

    #[test]
    fn the_evidence_gives_each_round_s_arrival_spread() {
        let mut a = round([W, L, L, L], holding(0));
        a.spread = Spread {
            sent_us: Some(120),
            read_us: Some(800),
        };
        let mut b = round([W, L, L, L], holding(0));
        b.spread = Spread {
            sent_us: Some(95),
            read_us: None,
        };
        b.gate_gave_up = true;
        let g = grade(&[a, b]);
        assert_graded(
            &g,
            Verdict::Pass,
            "last bytes sent within [120, 95] µs of each other per round; the server read them within [800] µs; in 1 rounds a racer never reached",
        );
        // Without timings (a target that answered none), nothing is said.
        let g = grade(&[round([W, L, L, L], holding(0))]);
        assert!(!g.reason.contains("last bytes"), "{}", g.reason);
    }

    #[test]
    fn one_winner_whose_body_is_stored_passes() {
        let g = grade(&[round([L, L, W, L], holding(2))]);
        assert_graded(&g, Verdict::Pass, "winners per round [1]");
        let g = grade(&[round([L, Some(409), W, L], holding(2))]);
        assert_graded(&g, Verdict::Pass, "winners per round [1]");
    }

    #[test]
    fn more_than_one_known_winner_is_unsafe() {
        let g = grade(&[round([W, W, L, L], holding(1))]);
        assert_graded(
            &g,
            Verdict::Unsafe,
            "winners per round [2]; more than 1 winner in 1 of 1 rounds",
        );
    }

    #[test]
    fn a_stored_body_of_a_refused_racer_is_unsafe() {
        let g = grade(&[round([W, L, L, L], holding(3))]);
        assert_graded(
            &g,
            Verdict::Unsafe,
            "the object holds \"racer 3\", whose write was refused (412)",
        );
    }

    #[test]
    fn an_unanswered_racers_body_beside_a_known_winner_is_two_writes() {
        let g = grade(&[round([W, LOST, L, L], holding(1))]);
        assert_graded(
            &g,
            Verdict::Unsafe,
            "whose answer was lost, though another racer won: two writes landed",
        );
    }

    #[test]
    fn an_unanswered_racer_that_won_is_consistent() {
        let g = grade(&[round([L, LOST, L, L], holding(1))]);
        assert_graded(&g, Verdict::Pass, "1 of 4 racer requests went unanswered");
        // A 5xx is an unknown answer too, not a loser.
        let g = grade(&[round([L, Some(500), L, L], holding(1))]);
        assert_graded(&g, Verdict::Pass, "went unanswered (no answer or a 5xx)");
    }

    #[test]
    fn no_known_winner_and_nothing_changed_with_lost_answers_cannot_be_judged() {
        let g = grade(&[round([L, LOST, LOST, L], State::Absent)]);
        assert_graded(
            &g,
            Verdict::Error,
            "2 answers were lost: the round cannot be judged",
        );
    }

    #[test]
    fn no_winner_at_all_deviates_or_is_unsupported() {
        let g = grade(&[
            round([L, L, L, L], State::Absent),
            round([L, L, L, L], State::Absent),
        ]);
        assert_graded(
            &g,
            Verdict::Deviates,
            "; every round: no racer won: 4× PUT 412",
        );
        let g = grade(&[round([Some(501); 4], State::Absent)]);
        assert_graded(
            &g,
            Verdict::Unsupported,
            "every racer was refused: 4× PUT 501",
        );
    }

    #[test]
    fn a_winner_whose_body_is_not_stored_is_unsafe() {
        let g = grade(&[round([W, L, L, L], State::Absent)]);
        assert_graded(&g, Verdict::Unsafe, "no winner's body is stored: absent");
        let torn = State::Unreadable {
            etag: None,
            why: "short body".into(),
        };
        let g = grade(&[round([W, L, L, L], torn)]);
        assert_graded(&g, Verdict::Unsafe, "cannot read whole");
    }

    #[test]
    fn a_change_no_racer_made_is_unsafe_even_with_lost_answers() {
        let other = State::Present {
            body: Bytes::from("not a racer's"),
            etag: None,
            last_modified: None,
        };
        let g = grade(&[round([L, LOST, L, L], other)]);
        assert_graded(
            &g,
            Verdict::Unsafe,
            "no racer is known to have won, yet the object changed",
        );
    }

    #[test]
    fn losers_with_other_statuses_deviate() {
        let g = grade(&[round([W, Some(403), L, L], holding(0))]);
        assert_graded(&g, Verdict::Deviates, "losers answered 1× PUT 403");
    }

    #[test]
    fn a_winner_shown_late_deviates() {
        let mut r = round([W, L, L, L], holding(0));
        r.after.late = Some(std::time::Duration::from_millis(320));
        let g = grade(&[r]);
        assert_graded(
            &g,
            Verdict::Deviates,
            "the winner's body showed after 320 ms",
        );
    }

    #[test]
    fn the_same_finding_in_several_rounds_is_said_once() {
        let mut a = round([W, L, L, L], holding(3));
        let mut b = round([W, L, L, L], holding(3));
        a.round = 2;
        b.round = 5;
        let g = grade(&[round([W, L, L, L], holding(0)), a, b]);
        assert_graded(
            &g,
            Verdict::Unsafe,
            "rounds 2, 5: the object holds \"racer 3\"",
        );
    }
}
