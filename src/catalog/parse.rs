//! A suite file's TOML, as written, and its parsing into scenarios; each
//! step is checked by `validate`.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::validate::{validate_step, Names};
use super::{Action, RaceStart, Scenario, Step};
use crate::model::FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) scenario: Vec<Spanned<RawScenario>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) id: Spanned<String>,
    pub(super) title: String,
    pub(super) operation: String,
    pub(super) aws_doc: String,
    pub(super) aws_says: String,
    #[serde(default)]
    pub(super) versioning: bool,
    #[serde(default)]
    pub(super) informational: bool,
    pub(super) steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[serde(rename = "do")]
    pub(super) action: Action,
    pub(super) key: String,
    pub(super) body: Option<String>,
    pub(super) if_match: Option<String>,
    pub(super) if_none_match: Option<String>,
    pub(super) if_modified_since: Option<String>,
    pub(super) if_unmodified_since: Option<String>,
    pub(super) range: Option<String>,
    pub(super) save_as: Option<String>,
    pub(super) racers: Option<u32>,
    pub(super) rounds: Option<u32>,
    pub(super) workers: Option<u32>,
    pub(super) increments: Option<u32>,
    pub(super) start: Option<RaceStart>,
    pub(super) source: Option<String>,
    pub(super) upload: Option<String>,
    pub(super) objects: Option<Vec<RawObject>>,
    pub(super) expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObject {
    pub(super) key: String,
    pub(super) if_match: Option<String>,
    /// `"deleted"` or an error code.
    pub(super) expect: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    pub(super) status: Option<u16>,
    pub(super) code: Option<String>,
    pub(super) etag: Option<String>,
    pub(super) winners: Option<u32>,
    pub(super) loser_status: Option<Vec<u16>>,
    pub(super) or_status: Option<Vec<u16>>,
}

/// Parses one suite file's text. `file` names it in errors.
pub fn parse_suite(file: &str, text: &str) -> Result<Vec<Scenario>, FileError> {
    // Every error in a file has a place; one the parser does not give is
    // the file's start.
    let err_at = |span: Option<Range<usize>>, message: String| {
        FileError::at(file, text, span.map(|s| s.start), message)
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| FileError::of_toml(file, text, &e))?;
    if raw.scenario.is_empty() {
        return Err(err_at(
            None,
            "no scenarios: expected at least one `[[scenario]]` table".into(),
        ));
    }
    let mut out = Vec::new();
    for spanned in raw.scenario {
        let span = spanned.span();
        let raw = spanned.into_inner();
        let id_span = raw.id.span();
        let id = raw.id.into_inner();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(err_at(
                Some(id_span),
                format!("invalid scenario id `{id}`: expected lowercase letters, digits and `-`"),
            ));
        }
        if raw.steps.is_empty() {
            return Err(err_at(
                Some(span),
                format!("scenario `{id}` has no steps: expected at least one `[[scenario.steps]]`"),
            ));
        }
        let mut names = Names::default();
        let mut steps = Vec::new();
        for step in raw.steps {
            let step_span = step.span();
            let step = validate_step(step.into_inner(), &mut names)
                .map_err(|m| err_at(Some(step_span), format!("in scenario `{id}`: {m}")))?;
            steps.push(step);
        }
        if raw.informational && !steps.iter().any(|s| matches!(s, Step::Aba { .. })) {
            return Err(err_at(
                Some(span),
                format!("scenario `{id}`: `informational = true` needs a `do = \"aba\"` step, the one step that records a property"),
            ));
        }
        out.push(Scenario {
            id,
            title: raw.title,
            operation: raw.operation,
            aws_doc: raw.aws_doc,
            aws_says: raw.aws_says,
            file: file.to_owned(),
            versioning: raw.versioning,
            informational: raw.informational,
            steps,
        });
    }
    Ok(out)
}
