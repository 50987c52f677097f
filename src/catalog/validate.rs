//! The rules a step must follow: which fields each step kind takes, that
//! every `${name}` names an ETag saved earlier, that uploads are created
//! before use, and each kind's own bounds. Errors are messages; `parse`
//! gives them their place.

use std::collections::HashSet;

use super::kinds::kind;
use super::raw::RawStep;
use super::{
    Action, BatchObject, Conditions, CounterStep, Expect, RaceStart, RaceStep, Step, Template,
};

fn action_word(action: Action) -> &'static str {
    kind(action).word
}

/// What is wrong with a step, in words; the caller gives it its place in
/// the file ([`crate::model::FileError`]).
#[derive(Debug)]
pub(super) struct Invalid(pub(super) String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_owned())
    }
}

/// Names earlier steps defined: saved ETags, keys written, uploads created.
#[derive(Default)]
pub(super) struct Names {
    pub(super) saved: HashSet<String>,
    pub(super) uploads: HashSet<String>,
}

/// Fields a step sets that its action does not take.
fn unused_fields(raw: &RawStep, allowed: &[&str]) -> Vec<&'static str> {
    let present = [
        ("body", raw.body.is_some()),
        ("if_match", raw.if_match.is_some()),
        ("if_none_match", raw.if_none_match.is_some()),
        ("if_modified_since", raw.if_modified_since.is_some()),
        ("if_unmodified_since", raw.if_unmodified_since.is_some()),
        ("range", raw.range.is_some()),
        ("save_as", raw.save_as.is_some()),
        ("racers", raw.racers.is_some()),
        ("rounds", raw.rounds.is_some()),
        ("workers", raw.workers.is_some()),
        ("increments", raw.increments.is_some()),
        ("start", raw.start.is_some()),
        ("source", raw.source.is_some()),
        ("upload", raw.upload.is_some()),
        ("objects", raw.objects.is_some()),
        ("expect", raw.expect.is_some()),
    ];
    present
        .into_iter()
        .filter(|(name, set)| *set && !allowed.contains(name))
        .map(|(name, _)| name)
        .collect()
}

/// The fields a step kind takes, and what to add when another is given.
fn takes(action: Action) -> (&'static [&'static str], &'static str) {
    let k = kind(action);
    (k.fields, k.hint)
}

/// The first name `template` references that is neither saved by an earlier
/// step nor one of `extra`.
fn unsaved(template: &Template, saved: &HashSet<String>, extra: &[&str]) -> Option<String> {
    template
        .references()
        .into_iter()
        .find(|name| !saved.contains(name) && !extra.contains(&name.as_str()))
}

pub(super) fn validate_step(raw: RawStep, names: &mut Names) -> Result<Step, Invalid> {
    let (allowed, hint) = takes(raw.action);
    if let Some(field) = unused_fields(&raw, allowed).first() {
        return Err(Invalid::from(format!(
            "`{field}` does not apply to `do = \"{}\"`{hint}",
            action_word(raw.action)
        )));
    }
    if raw.key.is_empty() || raw.key.contains("${") {
        return Err(Invalid::from(
            "`key` must be a plain, non-empty name (the engine adds the run's prefix)",
        ));
    }
    match raw.action {
        Action::DeleteObjects => validate_batch(raw, &names.saved),
        Action::Aba => Ok(Step::Aba {
            body: raw
                .body
                .ok_or("`do = \"aba\"` needs a `body` (written twice)")?,
            key: raw.key,
        }),
        Action::Race => validate_race(raw, &names.saved),
        Action::CasCounter => validate_counter(raw),
        _ => validate_request(raw, names),
    }
}

/// A `delete_objects` step: its objects, each with an ETag saved earlier.
fn validate_batch(raw: RawStep, saved: &HashSet<String>) -> Result<Step, Invalid> {
    let objects = raw
        .objects
        .ok_or("`do = \"delete_objects\"` needs `objects = [{ key, if_match, expect }, ...]`")?;
    if objects.is_empty() {
        return Err(Invalid::from(
            "`objects` is empty: expected at least one object",
        ));
    }
    let mut out = Vec::new();
    for o in objects {
        let if_match = o.if_match.map(Template);
        if let Some(name) = if_match.as_ref().and_then(|t| unsaved(t, saved, &[])) {
            return Err(Invalid::from(format!(
                "`${{{name}}}` names no ETag: expected a `save_as = \"{name}\"` on an earlier step"
            )));
        }
        out.push(BatchObject {
            key: o.key,
            if_match,
            error: (o.expect != "deleted").then_some(o.expect),
        });
    }
    Ok(Step::DeleteObjects { objects: out })
}

/// The conditional headers of a step.
fn conditions(raw: &RawStep) -> Conditions {
    Conditions {
        if_match: raw.if_match.clone().map(Template),
        if_none_match: raw.if_none_match.clone().map(Template),
        if_modified_since: raw.if_modified_since.clone(),
        if_unmodified_since: raw.if_unmodified_since.clone(),
        range: raw.range.clone(),
    }
}

/// Every `${name}` in the conditions names an ETag saved earlier (or one
/// of `extra`).
fn check_refs(
    conditions: &Conditions,
    saved: &HashSet<String>,
    extra: &[&str],
) -> Result<(), Invalid> {
    let missing = [&conditions.if_match, &conditions.if_none_match]
        .into_iter()
        .flatten()
        .find_map(|t| unsaved(t, saved, extra));
    match missing {
        Some(name) => {
            Err(Invalid::from(format!(
            "`${{{name}}}` names no ETag: expected a `save_as = \"{name}\"` on an earlier step{}",
            if extra.is_empty() { "" } else { " or `${base}`" }
        )))
        }
        None => Ok(()),
    }
}

/// A `race` step: its start, one condition, its bounds, what AWS allows.
fn validate_race(raw: RawStep, saved: &HashSet<String>) -> Result<Step, Invalid> {
    let conditions = conditions(&raw);
    let start = raw
        .start
        .ok_or("a race needs `start = \"absent\"` or `start = \"existing\"`")?;
    if conditions.if_match.is_some() == conditions.if_none_match.is_some() {
        return Err(Invalid::from(
            "a race needs exactly one of `if_match` and `if_none_match`",
        ));
    }
    let base_allowed: &[&str] = if start == RaceStart::Existing {
        &["base"]
    } else {
        &[]
    };
    check_refs(&conditions, saved, base_allowed)?;
    let expect = raw
        .expect
        .ok_or("a race needs `expect = { winners = N, loser_status = [...] }`")?;
    if expect.status.is_some() || expect.code.is_some() {
        return Err(Invalid::from(
            "a race's `expect` takes `winners` and `loser_status`, not `status`/`code`",
        ));
    }
    let racers = raw.racers.unwrap_or(16);
    let rounds = raw.rounds.unwrap_or(5);
    if !(2..=256).contains(&racers) {
        return Err(Invalid::from(format!(
            "`racers = {racers}`: expected 2 to 256"
        )));
    }
    if !(1..=100).contains(&rounds) {
        return Err(Invalid::from(format!(
            "`rounds = {rounds}`: expected 1 to 100"
        )));
    }
    Ok(Step::Race(RaceStep {
        key: raw.key,
        racers,
        rounds,
        start,
        conditions,
        winners: expect.winners.ok_or("a race's `expect` needs `winners`")?,
        loser_status: expect
            .loser_status
            .ok_or("a race's `expect` needs `loser_status`")?,
    }))
}

/// A `cas_counter` step: its bounds.
fn validate_counter(raw: RawStep) -> Result<Step, Invalid> {
    let workers = raw.workers.unwrap_or(8);
    let increments = raw.increments.unwrap_or(40);
    if !(2..=64).contains(&workers) {
        return Err(Invalid::from(format!(
            "`workers = {workers}`: expected 2 to 64"
        )));
    }
    if !(1..=1000).contains(&increments) {
        return Err(Invalid::from(format!(
            "`increments = {increments}`: expected 1 to 1000"
        )));
    }
    Ok(Step::CasCounter(CounterStep {
        key: raw.key,
        workers,
        increments,
    }))
}

/// The uploads a multipart step names, and a copy's source.
fn check_uploads_and_source(raw: &RawStep, names: &mut Names) -> Result<(), Invalid> {
    match raw.action {
        Action::CreateUpload | Action::UploadPart | Action::CompleteUpload => {
            let upload = raw.upload.clone().ok_or(format!(
                "`do = \"{}\"` needs `upload = \"name\"`",
                action_word(raw.action)
            ))?;
            let known = names.uploads.contains(&upload);
            if raw.action == Action::CreateUpload && known {
                return Err(Invalid::from(format!("upload `{upload}` is created twice")));
            }
            if raw.action != Action::CreateUpload && !known {
                return Err(Invalid::from(format!(
                    "`upload = \"{upload}\"` names no upload: expected a `do = \"create_upload\"` step with it earlier"
                )));
            }
            names.uploads.insert(upload);
            if raw.action == Action::UploadPart && raw.body.is_none() {
                return Err(Invalid::from("`do = \"upload_part\"` needs a `body`"));
            }
        }
        Action::Copy if raw.source.is_none() => {
            return Err(Invalid::from(
                "`do = \"copy\"` needs `source = \"key\"` (copied onto `key`)",
            ))
        }
        _ => {}
    }
    Ok(())
}

/// A `range` is `bytes=FIRST-LAST`, FIRST no more than LAST.
fn check_range(raw: &RawStep) -> Result<(), Invalid> {
    let Some(r) = &raw.range else { return Ok(()) };
    if raw.action != Action::Get {
        return Err(Invalid::from("`range` applies to `do = \"get\"` only"));
    }
    let bounds = r
        .strip_prefix("bytes=")
        .and_then(|b| b.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    match bounds {
        Some((first, last)) if first <= last => Ok(()),
        _ => Err(Invalid::from(format!(
            "`range = \"{r}\"`: expected `bytes=FIRST-LAST` with FIRST no more than LAST"
        ))),
    }
}

/// The date conditions: on reads only, HTTP dates or `last-modified`.
fn check_dates(raw: &RawStep) -> Result<(), Invalid> {
    for (field, value) in [
        ("if_modified_since", &raw.if_modified_since),
        ("if_unmodified_since", &raw.if_unmodified_since),
    ] {
        if let Some(v) = value {
            if !matches!(raw.action, Action::Get | Action::Head) {
                return Err(Invalid::from(format!(
                    "`{field}` applies to `do = \"get\"` and `do = \"head\"` only"
                )));
            }
            if v != "last-modified" && !v.ends_with(" GMT") {
                return Err(Invalid::from(format!(
                    "`{field} = \"{v}\"`: expected an HTTP date (\"Sat, 01 Jan 2000 00:00:00 GMT\") or \"last-modified\""
                )));
            }
        }
    }
    Ok(())
}

/// What AWS answers a request step (set-up steps: success).
fn expect(raw: &RawStep, saved: &HashSet<String>) -> Result<Expect, Invalid> {
    Ok(match &raw.expect {
        Some(e) => {
            if e.winners.is_some() || e.loser_status.is_some() {
                return Err(Invalid::from(
                    "`winners`/`loser_status` only apply to `do = \"race\"`",
                ));
            }
            let etag = e.etag.clone().map(Template);
            if let Some(name) = etag.as_ref().and_then(|t| unsaved(t, saved, &[])) {
                return Err(Invalid::from(format!(
                    "`expect.etag` names `${{{name}}}`: expected a `save_as = \"{name}\"` on an earlier step"
                )));
            }
            Expect {
                status: e.status.ok_or("`expect` needs a `status`")?,
                code: e.code.clone(),
                etag,
                or_status: e.or_status.clone().unwrap_or_default(),
            }
        }
        None => Expect::new(
            if raw.action == Action::Delete {
                204
            } else {
                200
            },
            None,
        ),
    })
}

/// A single-request step: its body, conditions, references and what AWS
/// answers; a `save_as` is remembered for the steps after it.
fn validate_request(raw: RawStep, names: &mut Names) -> Result<Step, Invalid> {
    check_uploads_and_source(&raw, names)?;
    check_dates(&raw)?;
    check_range(&raw)?;
    let action = raw.action;
    let conditions = conditions(&raw);
    if action == Action::Put && raw.body.is_none() {
        return Err(Invalid::from("`do = \"put\"` needs a `body`"));
    }
    if !matches!(action, Action::Put | Action::UploadPart) && raw.body.is_some() {
        return Err(Invalid::from(
            "only `do = \"put\"` and `do = \"upload_part\"` take a `body`",
        ));
    }
    if action == Action::Delete && conditions.if_none_match.is_some() {
        return Err(Invalid::from(
            "DeleteObject has no If-None-Match: expected `if_match` only",
        ));
    }
    check_refs(&conditions, &names.saved, &[])?;
    if conditions.any() && raw.expect.is_none() {
        return Err(Invalid::from(
            "a conditional step needs `expect = { status = ... }`: what AWS answers",
        ));
    }
    let checked = (raw.expect.is_some() || conditions.any()) && action != Action::UploadPart;
    let expect = expect(&raw, &names.saved)?;
    if let Some(name) = &raw.save_as {
        names.saved.insert(name.clone());
    }
    Ok(Step::Request {
        action,
        key: raw.key,
        body: raw.body,
        conditions,
        save_as: raw.save_as,
        expect,
        checked,
        source: raw.source,
        upload: raw.upload,
    })
}
