//! A suite file's parsing into scenarios: its TOML read into the raw
//! shapes of `raw`, each step checked by `validate`.

use std::ops::Range;

use super::raw::RawFile;
use super::validate::{validate_step, Names};
use super::{Scenario, Step};
use crate::model::FileError;

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
