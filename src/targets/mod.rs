//! Targets: the systems a run checks, from `targets.toml` to a live endpoint.
//!
//! A [`TargetSpec`] is one `[[target]]` entry; [`LiveTarget::start`] turns it
//! into a running endpoint with a bucket of the run's own, and
//! [`LiveTarget::stop`] removes that bucket and stops whatever was started.
//! This module knows nothing about scenarios.

pub mod container;
mod error;
mod live;
mod parse;
pub mod process;

use crate::model::FileError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::reference::Fault;
use crate::store::ChecksumMode;
use container::ContainerSpec;
pub use error::TargetError;
pub use live::{interrupt, Cleanup, Interrupted, LiveTarget};
use process::ProcessSpec;

/// The targets.toml shipped with condwrite (used when no file is given and
/// the current folder has none).
pub const BUILTIN_TARGETS: &str = include_str!("../../targets.toml");

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
    /// A local server the harness starts from a command.
    Process,
    /// An image started through testcontainers (needs a Docker engine).
    Container,
    /// An existing service: AWS S3, or any S3-compatible URL.
    Endpoint,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Embedded => "embedded",
            Kind::Process => "process",
            Kind::Container => "container",
            Kind::Endpoint => "endpoint",
        })
    }
}

/// An existing service to connect to.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    /// Base URL; `None` means real AWS S3 in the target's region.
    pub url: Option<String>,
    /// Further URLs of the same store (the nodes of a cluster): racers and
    /// counter workers are spread over `url` and these.
    pub more_urls: Vec<String>,
    /// A bucket to work in (nothing is created or deleted but the run's
    /// objects); `None`: the run creates and deletes a bucket of its own.
    pub bucket: Option<String>,
    /// Environment variables holding the credentials; `None`: the AWS
    /// credential chain (environment, profile, SSO, instance role).
    pub access_key_env: Option<String>,
    /// The variable holding the secret key.
    pub secret_key_env: Option<String>,
}

/// Per-target client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// The signing region.
    pub region: String,
    /// `None`: path-style for local servers and URLs, virtual-hosted for AWS.
    pub path_style: Option<bool>,
    /// When the SDK sends request checksums.
    pub checksums: ChecksumMode,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// A PEM file of a CA to trust besides the system's (for HTTPS
    /// endpoints with a private CA), relative to the targets file.
    pub ca_file: Option<PathBuf>,
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
    /// Nodes of an embedded reference server (endpoints sharing one store).
    pub nodes: usize,
    /// How to start a `process` target.
    pub process: Option<ProcessSpec>,
    /// How to start a `container` target.
    pub container: Option<ContainerSpec>,
    /// Credentials of a `process` or `container` target (the local server's
    /// own throwaway pair).
    pub local_credentials: Option<(String, String)>,
    /// Where an `endpoint` target is.
    pub endpoint: Option<EndpointSpec>,
    /// Client settings.
    pub client: ClientOptions,
    /// The folder of the targets file, `{root}` in commands.
    pub root: PathBuf,
    /// The server's version, for reports (`version = "..."`).
    pub version: Option<String>,
    /// How many of its scenarios may run at once (`None`: as many as the
    /// run allows), for servers that cannot take parallel scenarios.
    pub max_concurrency: Option<usize>,
    /// The family this target is a release of (the entry's plain name), for
    /// an entry with `releases = [...]`.
    pub family: Option<String>,
    /// Which release of its family it is.
    pub release: Option<String>,
}

/// All targets of a targets file.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Where they came from, for messages.
    pub source: String,
    /// The targets, in file order (a family's releases expanded).
    pub targets: Vec<TargetSpec>,
}

impl Targets {
    /// Parses a targets file's text; `source` names it in errors, `root` is
    /// the folder relative paths in commands start from.
    pub fn parse(source: &str, text: &str, root: &Path) -> Result<Self, FileError> {
        Ok(Self {
            source: source.to_owned(),
            targets: parse::parse(source, text, root)?,
        })
    }

    /// Reads and parses a targets file; relative paths in its commands
    /// start from its folder.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| FileError::whole(&file, format!("cannot read the targets file: {e}")))?;
        let root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        let root = root.canonicalize().unwrap_or(root);
        Self::parse(&path.display().to_string(), &text, &root)
    }

    /// The targets shipped with condwrite.
    pub fn builtin() -> Self {
        let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::parse("targets.toml (built in)", BUILTIN_TARGETS, &root)
            .expect("the shipped targets.toml parses")
    }

    /// The names in order.
    pub fn names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// The names for a message: a family's releases as one item
    /// (`seaweedfs, seaweedfs@4.30 … seaweedfs@4.48`).
    pub fn known(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        for t in &self.targets {
            match (&t.family, t.name.contains('@')) {
                (Some(f), true) => {
                    let first = self
                        .targets
                        .iter()
                        .find(|x| x.family.as_ref() == Some(f) && x.name.contains('@'));
                    if first.is_some_and(|x| x.name == t.name) {
                        let last = self
                            .targets
                            .iter()
                            .rev()
                            .find(|x| x.family.as_ref() == Some(f))
                            .map_or(&t.name, |x| &x.name);
                        out.push(if *last == t.name {
                            t.name.clone()
                        } else {
                            format!("{} … {last}", t.name)
                        });
                    }
                }
                _ => out.push(t.name.clone()),
            }
        }
        out.join(", ")
    }

    /// Resolves `--target` values: names, comma-separated lists, and `*`
    /// patterns. Each target is selected once, in the order first named.
    pub fn select(&self, wanted: &[String]) -> Result<Vec<TargetSpec>, TargetError> {
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
                return Err(TargetError::Unknown(format!(
                    "unknown target `{item}` (in {}); known targets: {}",
                    self.source,
                    self.known()
                )));
            }
            for t in matched {
                if !out.iter().any(|o| o.name == t.name) {
                    out.push(t.clone());
                }
            }
        }
        if out.is_empty() {
            return Err(TargetError::Unknown(format!(
                "no target selected; known targets: {}",
                self.known()
            )));
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

/// A name no earlier run used: `<start>-<seconds>-<nanos>-<pid>`, for
/// buckets and key prefixes.
pub fn fresh_name(start: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{start}-{}-{}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}

#[cfg(test)]
mod tests;
