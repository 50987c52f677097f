//! Targets: the systems a run checks, from `targets.toml` to a live endpoint.
//!
//! A [`TargetSpec`] is one `[[target]]` entry; [`LiveTarget::start`] turns it
//! into a running endpoint with a bucket of the run's own, and
//! [`LiveTarget::stop`] removes that bucket and stops whatever was started.
//! This module knows nothing about scenarios.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;

use crate::reference::{self, Fault, RunningServer};
use crate::store::{ClientSettings, Store};

/// The targets.toml shipped with condwrite (used when no file is given and
/// the current folder has none).
pub const BUILTIN_TARGETS: &str = include_str!("../targets.toml");

/// Access key of embedded servers (local, in-memory, loopback only).
pub const EMBEDDED_ACCESS_KEY: &str = "condwrite";
/// Secret key of embedded servers (local, in-memory, loopback only).
pub const EMBEDDED_SECRET_KEY: &str = "condwrite-local-secret";

/// The kinds of target this build can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The in-process reference server.
    Embedded,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Embedded => f.write_str("embedded"),
        }
    }
}

/// One `[[target]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// Unique name, used with `--target`.
    pub name: String,
    /// What to start or connect to.
    pub kind: Kind,
    /// One line for listings.
    pub description: String,
    /// Faults of an embedded reference server.
    pub faults: Vec<Fault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    kind: Kind,
    #[serde(default)]
    description: String,
    faults: Option<Spanned<Vec<String>>>,
}

/// All targets of a targets file.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Where they came from, for messages.
    pub source: String,
    pub targets: Vec<TargetSpec>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, col)
}

impl Targets {
    /// Parses a targets file's text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Self, String> {
        let at = |span: Option<Range<usize>>, msg: &str| match span {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                format!("{source}:{l}:{c}: {msg}")
            }
            None => format!("{source}: {msg}"),
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| at(e.span(), &e.message().trim_end().replace('\n', "; ")))?;
        let mut targets: Vec<TargetSpec> = Vec::new();
        for t in raw.target {
            let t = t.into_inner();
            let name_span = t.name.span();
            let name = t.name.into_inner();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(at(
                    Some(name_span),
                    &format!(
                        "invalid target name `{name}`: expected letters, digits, `-`, `_` or `.`"
                    ),
                ));
            }
            if targets.iter().any(|x| x.name == name) {
                return Err(at(
                    Some(name_span),
                    &format!("duplicate target name `{name}`"),
                ));
            }
            let faults = match t.faults {
                None => Vec::new(),
                Some(f) => {
                    let span = f.span();
                    f.into_inner()
                        .iter()
                        .map(|f| f.parse::<Fault>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| at(Some(span), &e))?
                }
            };
            targets.push(TargetSpec {
                name,
                kind: t.kind,
                description: t.description,
                faults,
            });
        }
        if targets.is_empty() {
            return Err(format!(
                "{source}: no targets: expected at least one `[[target]]` table"
            ));
        }
        Ok(Self {
            source: source.to_owned(),
            targets,
        })
    }

    /// Reads and parses a targets file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the targets file: {e}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The targets shipped with condwrite.
    pub fn builtin() -> Self {
        Self::parse("targets.toml (built in)", BUILTIN_TARGETS)
            .expect("the shipped targets.toml parses")
    }

    /// The names in order.
    pub fn names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// Resolves `--target` values: names, comma-separated lists, and `*`
    /// patterns. Each target is selected once, in the order first named.
    pub fn select(&self, wanted: &[String]) -> Result<Vec<TargetSpec>, String> {
        let mut out: Vec<TargetSpec> = Vec::new();
        for item in wanted.iter().flat_map(|w| w.split(',')).map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let matched: Vec<&TargetSpec> = self
                .targets
                .iter()
                .filter(|t| glob_match(item, &t.name))
                .collect();
            if matched.is_empty() {
                return Err(format!(
                    "unknown target `{item}` (in {}); known targets: {}",
                    self.source,
                    self.names().join(", ")
                ));
            }
            for t in matched {
                if !out.iter().any(|o| o.name == t.name) {
                    out.push(t.clone());
                }
            }
        }
        if out.is_empty() {
            return Err(format!(
                "no target selected; known targets: {}",
                self.names().join(", ")
            ));
        }
        Ok(out)
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// A started target with a bucket of the run's own.
pub struct LiveTarget {
    /// The spec it was started from.
    pub spec: TargetSpec,
    /// Where and how to connect.
    pub settings: ClientSettings,
    store: Store,
    server: Option<RunningServer>,
}

impl fmt::Debug for LiveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveTarget")
            .field("name", &self.spec.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A bucket name no earlier run used: `condwrite-<seconds>-<nanos>-<pid>`.
fn fresh_bucket_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "condwrite-{}-{}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}

impl LiveTarget {
    /// Starts the target and creates the run's bucket. Must be called on a
    /// tokio runtime that outlives the target.
    pub async fn start(spec: &TargetSpec) -> Result<Self, String> {
        match spec.kind {
            Kind::Embedded => {
                let options = reference::Options {
                    faults: spec.faults.clone(),
                    access_key: EMBEDDED_ACCESS_KEY.into(),
                    secret_key: EMBEDDED_SECRET_KEY.into(),
                };
                let server = reference::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .await
                    .map_err(|e| format!("starting the embedded server failed: {e}"))?;
                let settings = ClientSettings {
                    endpoint_url: server.url(),
                    region: "us-east-1".into(),
                    access_key: EMBEDDED_ACCESS_KEY.into(),
                    secret_key: EMBEDDED_SECRET_KEY.into(),
                    path_style: true,
                    operation_timeout: Duration::from_secs(30),
                };
                let store = Store::new(&settings, fresh_bucket_name());
                if let Err(e) = store.create_bucket().await {
                    server.stop();
                    return Err(e);
                }
                Ok(Self {
                    spec: spec.clone(),
                    settings,
                    store,
                    server: Some(server),
                })
            }
        }
    }

    /// A client for the run's bucket.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Deletes what the run left in its bucket, the bucket, and stops the
    /// server. Returns a message for anything it could not remove.
    pub async fn stop(self) -> Result<(), String> {
        let mut problems = Vec::new();
        match self.store.delete_prefix("").await {
            Ok(_) => {
                if let Err(e) = self.store.delete_bucket().await {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e),
        }
        if let Some(server) = self.server {
            server.stop();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_targets_have_one_embedded_target_per_fault() {
        let t = Targets::builtin();
        assert_eq!(t.targets[0].name, "embedded");
        assert!(t.targets[0].faults.is_empty());
        for f in Fault::ALL {
            let name = format!("embedded-{f}");
            let spec = t
                .targets
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("missing {name}"));
            assert_eq!(spec.faults, vec![f]);
        }
    }

    #[test]
    fn selection_accepts_lists_and_patterns_and_names_the_known_ones() {
        let t = Targets::builtin();
        let s = t.select(&["embedded,embedded-racy".into()]).unwrap();
        assert_eq!(s.len(), 2);
        let s = t.select(&["embedded-*".into()]).unwrap();
        assert_eq!(s.len(), Fault::ALL.len());
        let err = t.select(&["nope".into()]).unwrap_err();
        assert!(err.contains("unknown target `nope`"), "{err}");
        assert!(err.contains("embedded-racy"), "{err}");
    }

    #[test]
    fn an_unknown_fault_is_reported_with_its_place() {
        let err = Targets::parse(
            "t.toml",
            "[[target]]\nname = \"x\"\nkind = \"embedded\"\nfaults = [\"slow\"]\n",
        )
        .unwrap_err();
        assert!(err.starts_with("t.toml:4:"), "{err}");
        assert!(err.contains("unknown fault `slow`"), "{err}");
    }

    #[test]
    fn an_unknown_kind_says_which_kinds_exist() {
        let err =
            Targets::parse("t.toml", "[[target]]\nname = \"x\"\nkind = \"ftp\"\n").unwrap_err();
        assert!(err.starts_with("t.toml:3:"), "{err}");
        assert!(err.contains("embedded"), "{err}");
    }

    #[test]
    fn glob_patterns_match_as_expected() {
        assert!(glob_match("minio*", "minio-2024"));
        assert!(glob_match("*racy", "embedded-racy"));
        assert!(glob_match("e*-*y", "embedded-racy"));
        assert!(!glob_match("minio*", "embedded"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
