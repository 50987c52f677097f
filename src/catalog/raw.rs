//! A suite file's TOML as written, before any check: what `parse` reads
//! and `validate` checks.

use serde::Deserialize;
use toml::Spanned;

use super::{Action, RaceStart};

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
