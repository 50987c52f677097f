//! Targets: the systems a run checks, from `targets.toml` to a live endpoint.
//!
//! A [`TargetSpec`] is one `[[target]]` entry; [`LiveTarget::start`] turns it
//! into a running endpoint with a bucket of the run's own, and
//! [`LiveTarget::stop`] removes that bucket and stops whatever was started.
//! This module knows nothing about scenarios.

pub mod container;
pub mod process;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;

use crate::catalog::line_col;
use crate::reference::{self, Fault, RunningServer};
use crate::store::{ChecksumMode, ClientSettings, Health, Store};
use container::{ContainerSpec, RunningContainer};
use process::{ProcessSpec, ServerProcess};

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
    pub secret_key_env: Option<String>,
}

/// Per-target client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    pub region: String,
    /// `None`: path-style for local servers and URLs, virtual-hosted for AWS.
    pub path_style: Option<bool>,
    pub checksums: ChecksumMode,
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
    nodes: Option<usize>,
    ports: Option<usize>,
    endpoints: Option<Vec<String>>,
    version: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    ready_path: Option<String>,
    ready_body: Option<String>,
    ready_file: Option<String>,
    start_timeout_s: Option<u64>,
    stop_timeout_s: Option<u64>,
    install: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    preset: Option<String>,
    image: Option<String>,
    tag: Option<String>,
    container_port: Option<u16>,
    container_args: Option<Vec<String>>,
    ready_log: Option<String>,
    url: Option<String>,
    bucket: Option<String>,
    access_key_env: Option<String>,
    secret_key_env: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    checksums: Option<ChecksumMode>,
    request_timeout_s: Option<u64>,
    ca_file: Option<String>,
}

/// Fields that only some kinds take, for the check that each entry uses
/// only its own.
fn foreign_fields(kind: Kind, t: &RawTarget) -> Vec<&'static str> {
    use Kind::{Container as C, Embedded as E, Endpoint as N, Process as P};
    let fields: [(&str, bool, &[Kind]); 25] = [
        ("faults", t.faults.is_some(), &[E]),
        ("nodes", t.nodes.is_some(), &[E]),
        ("ports", t.ports.is_some(), &[P]),
        ("endpoints", t.endpoints.is_some(), &[N, P]),
        ("command", t.command.is_some(), &[P]),
        ("env", !t.env.is_empty(), &[P, C]),
        ("ready_path", t.ready_path.is_some(), &[P, C]),
        ("ready_body", t.ready_body.is_some(), &[P]),
        ("ready_file", t.ready_file.is_some(), &[P]),
        ("start_timeout_s", t.start_timeout_s.is_some(), &[P, C]),
        ("stop_timeout_s", t.stop_timeout_s.is_some(), &[P]),
        ("install", t.install.is_some(), &[P]),
        ("access_key", t.access_key.is_some(), &[P, C]),
        ("secret_key", t.secret_key.is_some(), &[P, C]),
        ("preset", t.preset.is_some(), &[C]),
        ("image", t.image.is_some(), &[C]),
        ("tag", t.tag.is_some(), &[C]),
        ("container_port", t.container_port.is_some(), &[C]),
        ("container_args", t.container_args.is_some(), &[C]),
        ("ready_log", t.ready_log.is_some(), &[C]),
        ("url", t.url.is_some(), &[N]),
        ("bucket", t.bucket.is_some(), &[N]),
        ("access_key_env", t.access_key_env.is_some(), &[N]),
        ("secret_key_env", t.secret_key_env.is_some(), &[N]),
        ("ca_file", t.ca_file.is_some(), &[P, C, N]),
    ];
    fields
        .iter()
        .filter(|(_, present, kinds)| *present && !kinds.contains(&kind))
        .map(|(name, _, _)| *name)
        .collect()
}

/// All targets of a targets file.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Where they came from, for messages.
    pub source: String,
    pub targets: Vec<TargetSpec>,
}

impl Targets {
    /// Parses a targets file's text; `source` names it in errors, `root` is
    /// the folder relative paths in commands start from.
    pub fn parse(source: &str, text: &str, root: &Path) -> Result<Self, String> {
        // Every error has a place; one the parser does not give is the
        // file's start.
        let at = |span: Option<Range<usize>>, msg: &str| {
            let (l, c) = line_col(text, span.map_or(0, |s| s.start));
            format!("{source}:{l}:{c}: {msg}")
        };
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| at(e.span(), &e.message().trim_end().replace('\n', "; ")))?;
        let mut targets: Vec<TargetSpec> = Vec::new();
        for t in raw.target {
            let entry_span = t.span();
            let t = t.into_inner();
            let foreign = foreign_fields(t.kind, &t);
            if !foreign.is_empty() {
                return Err(at(
                    Some(entry_span),
                    &format!(
                        "`{}` does not apply to kind = \"{}\"",
                        foreign.join("`, `"),
                        t.kind
                    ),
                ));
            }
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
            let process = match (t.kind, t.command) {
                (Kind::Process, Some(command)) if !command.is_empty() => Some(ProcessSpec {
                    command,
                    ports: match t.ports.unwrap_or(1) {
                        n @ 1..=16 => n,
                        n => {
                            return Err(at(
                                Some(entry_span),
                                &format!("target `{name}`: `ports = {n}`: expected 1 to 16"),
                            ))
                        }
                    },
                    endpoints: match t.endpoints.clone() {
                        None => vec!["http://127.0.0.1:{port}".into()],
                        Some(e) if e.is_empty() => {
                            return Err(at(
                                Some(entry_span),
                                &format!("target `{name}`: `endpoints` is empty: expected one URL template per S3 gateway, such as \"http://127.0.0.1:{{port1}}\""),
                            ))
                        }
                        Some(e) => e,
                    },
                    env: t.env.clone(),
                    ready_path: t.ready_path.clone(),
                    ready_body: t.ready_body,
                    ready_file: t.ready_file,
                    start_timeout: Duration::from_secs(t.start_timeout_s.unwrap_or(60)),
                    stop_timeout: Duration::from_secs(t.stop_timeout_s.unwrap_or(10)),
                    install: t.install,
                }),
                (Kind::Process, _) => {
                    return Err(at(
                        Some(entry_span),
                        &format!("target `{name}`: kind = \"process\" needs `command = [\"program\", \"arg\", ...]`"),
                    ))
                }
                _ => None,
            };
            if let Some(p) = &process {
                let templates = p
                    .command
                    .iter()
                    .chain(&p.endpoints)
                    .chain(p.env.values())
                    .chain(&p.ready_file);
                if let Some(bad) = templates
                    .flat_map(|t| port_placeholders(t))
                    .find(|i| *i >= p.ports)
                {
                    return Err(at(
                        Some(entry_span),
                        &format!("target `{name}`: `{{port{bad}}}` needs `ports = {}` or more (ports are {{port}}, {{port1}} … {{port{}}})", bad + 1, p.ports - 1),
                    ));
                }
            }
            let local_credentials = match (t.kind, t.access_key, t.secret_key) {
                (Kind::Process | Kind::Container, Some(a), Some(s)) => Some((a, s)),
                (Kind::Process | Kind::Container, _, _) => {
                    return Err(at(
                        Some(entry_span),
                        &format!("target `{name}`: a {} target needs `access_key` and `secret_key` (the local server's own pair)", t.kind),
                    ))
                }
                _ => None,
            };
            let container = match t.kind {
                Kind::Container => {
                    let (Some(image), Some(tag)) = (t.image, t.tag) else {
                        return Err(at(
                            Some(entry_span),
                            &format!("target `{name}`: a container target needs `image` and `tag`"),
                        ));
                    };
                    let (ak, sk) = local_credentials.clone().expect("checked above");
                    let mut spec = match t.preset.as_deref() {
                        Some("minio") => ContainerSpec::minio(image, tag, &ak, &sk),
                        Some(other) => {
                            return Err(at(
                                Some(entry_span),
                                &format!(
                                "target `{name}`: unknown preset `{other}`; known presets: minio"
                            ),
                            ))
                        }
                        None => {
                            let Some(port) = t.container_port else {
                                return Err(at(
                                    Some(entry_span),
                                    &format!("target `{name}`: a container without a preset needs `container_port` (the S3 port inside it)"),
                                ));
                            };
                            ContainerSpec {
                                image,
                                tag,
                                port,
                                args: Vec::new(),
                                env: BTreeMap::new(),
                                ready_log: None,
                                ready_path: None,
                                start_timeout: Duration::from_secs(180),
                            }
                        }
                    };
                    if let Some(port) = t.container_port {
                        spec.port = port;
                    }
                    if let Some(args) = t.container_args {
                        spec.args = args;
                    }
                    if t.ready_log.is_some() || t.ready_path.is_some() {
                        spec.ready_log = t.ready_log;
                        spec.ready_path = t.ready_path;
                    }
                    spec.env.extend(t.env.clone());
                    if let Some(s) = t.start_timeout_s {
                        spec.start_timeout = Duration::from_secs(s);
                    }
                    Some(spec)
                }
                _ => None,
            };
            let endpoint = match t.kind {
                Kind::Endpoint => {
                    if t.access_key_env.is_some() != t.secret_key_env.is_some() {
                        return Err(at(
                            Some(entry_span),
                            &format!("target `{name}`: give both `access_key_env` and `secret_key_env`, or neither (the AWS credential chain)"),
                        ));
                    }
                    let mut urls = t.endpoints.clone().unwrap_or_default();
                    if t.url.is_some() && !urls.is_empty() {
                        return Err(at(
                            Some(entry_span),
                            &format!(
                                "target `{name}`: give `url` or `endpoints = [...]`, not both"
                            ),
                        ));
                    }
                    if t.endpoints.is_some() && urls.is_empty() {
                        return Err(at(
                            Some(entry_span),
                            &format!(
                                "target `{name}`: `endpoints` is empty: expected one URL per node"
                            ),
                        ));
                    }
                    if t.url.is_none() && urls.is_empty() && t.region.is_none() {
                        return Err(at(
                            Some(entry_span),
                            &format!("target `{name}`: an endpoint needs a `url`, or a `region` for AWS S3"),
                        ));
                    }
                    let url = t.url.or_else(|| (!urls.is_empty()).then(|| urls.remove(0)));
                    Some(EndpointSpec {
                        url,
                        more_urls: urls,
                        bucket: t.bucket,
                        access_key_env: t.access_key_env,
                        secret_key_env: t.secret_key_env,
                    })
                }
                _ => None,
            };
            let nodes = t.nodes.unwrap_or(1);
            if !(1..=8).contains(&nodes) {
                return Err(at(
                    Some(entry_span),
                    &format!("target `{name}`: `nodes = {nodes}`: expected 1 to 8"),
                ));
            }
            targets.push(TargetSpec {
                name,
                kind: t.kind,
                description: t.description,
                faults,
                nodes,
                process,
                container,
                local_credentials,
                endpoint,
                client: ClientOptions {
                    region: t.region.unwrap_or_else(|| "us-east-1".into()),
                    path_style: t.path_style,
                    checksums: t.checksums.unwrap_or_default(),
                    request_timeout: Duration::from_secs(t.request_timeout_s.unwrap_or(30)),
                    ca_file: t.ca_file.map(|f| root.join(f)),
                },
                root: root.to_owned(),
                version: t.version,
            });
        }
        if targets.is_empty() {
            return Err(format!(
                "{source}:1:1: no targets: expected at least one `[[target]]` table"
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

impl TargetSpec {
    /// The target as a report describes it; `endpoint` is the URL the run
    /// talked to, when it started.
    pub fn info(&self, endpoint: Option<&str>) -> crate::report::TargetInfo {
        let version = match self.kind {
            Kind::Embedded => Some(format!("condwrite {}", env!("CARGO_PKG_VERSION"))),
            Kind::Container => self
                .container
                .as_ref()
                .map(|c| format!("{}:{}", c.image, c.tag)),
            _ => None,
        };
        let configured = self.endpoint.as_ref().and_then(|e| e.url.clone());
        crate::report::TargetInfo {
            name: self.name.clone(),
            kind: self.kind.to_string(),
            description: self.description.clone(),
            version: self.version.clone().or(version),
            endpoint: endpoint
                .map(str::to_owned)
                .or(configured)
                .map(|u| crate::report::strip_userinfo(&u)),
            region: Some(self.client.region.clone()),
        }
    }
}

/// The indexes of the `{portN}` placeholders in a template (`{port}` is 0).
fn port_placeholders(template: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("{port") {
        rest = &rest[i + 5..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if rest[digits.len()..].starts_with('}') {
            out.push(digits.parse().unwrap_or(0));
        }
    }
    out
}

/// A TLS certificate problem says how to trust the endpoint's CA.
fn with_tls_hint(message: String) -> String {
    let tls = [
        "certificate",
        "UnknownIssuer",
        "invalid peer",
        "tls handshake",
    ]
    .iter()
    .any(|w| message.to_lowercase().contains(&w.to_lowercase()));
    if tls {
        format!("{message} (the endpoint's TLS certificate is not trusted: give its CA as a PEM file with `ca_file = \"ca.pem\"` in the target, or --ca-file)")
    } else {
        message
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

/// A started target with a bucket to work in.
pub struct LiveTarget {
    /// The spec it was started from.
    pub spec: TargetSpec,
    /// Where and how to connect.
    pub settings: ClientSettings,
    store: Store,
    /// Clients of the same bucket through the store's other endpoints.
    peers: Vec<Store>,
    /// Whether the run created the bucket (and so deletes it).
    owns_bucket: bool,
    /// The key prefix every scenario works under (inside a given bucket,
    /// unique to the run).
    prefix: String,
    /// How far the store's reads lag its writes (measured at start).
    read_lag: crate::engine::ReadLag,
    /// Whether a bucket the target names has versioning on: its clean-up
    /// removes versions and delete markers too.
    bucket_versioned: bool,
    running: Running,
}

/// Every started target's health and, for a store whose storage outlives
/// the run, what an interrupted run must remove; registered as soon as the
/// target has a store, before it writes anything.
#[allow(clippy::type_complexity)]
fn started() -> std::sync::MutexGuard<'static, Vec<(String, Arc<Health>, Option<Cleanup>)>> {
    static STARTED: std::sync::Mutex<Vec<(String, Arc<Health>, Option<Cleanup>)>> =
        std::sync::Mutex::new(Vec::new());
    STARTED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends a run that was interrupted (Ctrl-C, SIGTERM), where no destructor
/// runs: every target's health is shut, so the scenarios still running
/// send nothing more; what the run wrote to stores that outlive it is
/// removed (within 20 s); the servers it started are stopped and the
/// containers removed. Returns one line saying what was done.
pub async fn interrupt() -> String {
    let started: Vec<(String, Arc<Health>, Option<Cleanup>)> = std::mem::take(&mut *started());
    for (_, health, _) in &started {
        health.shut_down();
    }
    let cleanups: Vec<(String, Cleanup)> = started
        .into_iter()
        .filter_map(|(n, _, c)| c.map(|c| (n, c)))
        .collect();
    let mut said = String::from("stopped the servers and removed the containers this run started");
    if !cleanups.is_empty() {
        let work = async {
            for (n, c) in &cleanups {
                if let Err(e) = c.run().await {
                    eprintln!("\nwarning: cleaning up target {n} failed: {e}");
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .is_err()
        {
            eprintln!("\nwarning: cleaning up took more than 20 s; some of what the run wrote may be left");
        }
        said.push_str(&format!(
            ", removed what it wrote to {} endpoint target(s)",
            cleanups.len()
        ));
    }
    process::stop_all();
    container::remove_all().await;
    said
}

/// What an interrupted run must remove from a store whose storage outlives
/// it (an `endpoint` target): the run's prefix — objects, versions, delete
/// markers, open uploads — the versioned buckets of its scenarios, and its
/// bucket if it made one.
#[derive(Debug, Clone)]
pub struct Cleanup {
    store: Store,
    prefix: String,
    owns_bucket: bool,
}

impl Cleanup {
    /// Removes what the run left; says what it could not.
    pub async fn run(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = self.store.abort_uploads(&self.prefix).await {
            problems.push(e);
        }
        // A given bucket with versioning on keeps versions and delete
        // markers: those go too.
        let versioned = !self.owns_bucket && self.store.versioning_enabled().await.unwrap_or(false);
        let removed = if versioned {
            self.store.delete_versions(&self.prefix).await
        } else {
            self.store.delete_prefix(&self.prefix).await
        };
        if let Err(e) = removed {
            problems.push(e);
        }
        for bucket in crate::engine::open_versioned_buckets(self.store.bucket()) {
            let store = self.store.for_bucket(bucket);
            let _ = store.abort_uploads("").await;
            if let Err(e) = store.delete_versions("").await {
                problems.push(e);
            }
            if let Err(e) = store.delete_bucket().await {
                problems.push(e);
            }
        }
        if self.owns_bucket {
            if let Err(e) = self.store.delete_bucket().await {
                problems.push(e);
            }
        }
        // Interrupted before its bucket was made: nothing to remove.
        problems.retain(|p| !p.contains("NoSuchBucket"));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// What was started for a target.
enum Running {
    Nothing,
    Embedded(RunningServer),
    Process(ServerProcess),
    Container(Box<RunningContainer>),
}

impl fmt::Debug for LiveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveTarget")
            .field("name", &self.spec.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
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

fn env_var(name: &str, target: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!("target {target} reads its credentials from ${name}, which is not set: export it and run again")
    })
}

/// Credentials of an endpoint target: the variables it names, else the AWS
/// credential chain.
async fn endpoint_credentials(
    spec: &TargetSpec,
    endpoint: &EndpointSpec,
) -> Result<(String, String, Option<String>), String> {
    if let (Some(ak), Some(sk)) = (&endpoint.access_key_env, &endpoint.secret_key_env) {
        return Ok((env_var(ak, &spec.name)?, env_var(sk, &spec.name)?, None));
    }
    use aws_config::BehaviorVersion;
    use aws_sdk_s3::config::ProvideCredentials;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(spec.client.region.clone()))
        .load()
        .await;
    let provider = config.credentials_provider().ok_or_else(|| {
        format!(
            "target {}: no AWS credential provider is configured",
            spec.name
        )
    })?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        format!(
            "target {}: no AWS credentials found ({e}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or log in with `aws sso login`",
            spec.name
        )
    })?;
    Ok((
        creds.access_key_id().to_owned(),
        creds.secret_access_key().to_owned(),
        creds.session_token().map(str::to_owned),
    ))
}

impl LiveTarget {
    /// Starts the target and makes sure a bucket is there to work in. Must
    /// be called on a tokio runtime that outlives the target.
    pub async fn start(spec: &TargetSpec) -> Result<Self, String> {
        let ca_pem = match &spec.client.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                format!(
                    "target {}: cannot read its ca_file {}: {e}",
                    spec.name,
                    path.display()
                )
            })?),
            None => None,
        };
        let local = |url: String, ak: &str, sk: &str| {
            let mut settings = ClientSettings::local(url, ak, sk);
            settings.region = spec.client.region.clone();
            settings.path_style = spec.client.path_style.unwrap_or(true);
            settings.checksums = spec.client.checksums;
            settings.operation_timeout = spec.client.request_timeout;
            settings.ca_pem = ca_pem.clone();
            settings
        };
        let mut more_urls: Vec<String> = Vec::new();
        let (settings, running, bucket) = match spec.kind {
            Kind::Embedded => {
                let options = reference::Options {
                    faults: spec.faults.clone(),
                    access_key: EMBEDDED_ACCESS_KEY.into(),
                    secret_key: EMBEDDED_SECRET_KEY.into(),
                    nodes: spec.nodes,
                    anonymous: false,
                };
                let server = reference::start(options, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .await
                    .map_err(|e| format!("starting the embedded server failed: {e}"))?;
                let settings = local(server.url(), EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY);
                more_urls = server.urls().split_off(1);
                (settings, Running::Embedded(server), None)
            }
            Kind::Process => {
                let process_spec = spec
                    .process
                    .as_ref()
                    .expect("validated: process has a command");
                let (ak, sk) = spec
                    .local_credentials
                    .as_ref()
                    .expect("validated: process has credentials");
                let server = ServerProcess::start(&spec.name, process_spec, &spec.root).await?;
                more_urls = server.urls()[1..].to_vec();
                let url = server.urls()[0].clone();
                (local(url, ak, sk), Running::Process(server), None)
            }
            Kind::Container => {
                let container_spec = spec.container.as_ref().expect("validated: container spec");
                let (ak, sk) = spec
                    .local_credentials
                    .as_ref()
                    .expect("validated: container has credentials");
                container::docker_preflight().await?;
                let running = RunningContainer::start(&spec.name, container_spec).await?;
                let url = format!("http://127.0.0.1:{}", running.port());
                (
                    local(url, ak, sk),
                    Running::Container(Box::new(running)),
                    None,
                )
            }
            Kind::Endpoint => {
                let endpoint = spec.endpoint.as_ref().expect("validated: endpoint spec");
                let (ak, sk, token) = endpoint_credentials(spec, endpoint).await?;
                let url = endpoint
                    .url
                    .clone()
                    .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", spec.client.region));
                let mut settings = local(url, &ak, &sk);
                settings.session_token = token;
                settings.path_style = spec.client.path_style.unwrap_or(endpoint.url.is_some());
                more_urls = endpoint.more_urls.clone();
                (settings, Running::Nothing, endpoint.bucket.clone())
            }
        };
        let owns_bucket = bucket.is_none();
        let store = Store::try_new(&settings, bucket.unwrap_or_else(|| fresh_name("condwrite")))
            .map_err(|e| format!("target {}: {e}", spec.name))?;
        let mut peers = Vec::new();
        for url in more_urls {
            let mut s = settings.clone();
            s.endpoint_url = url;
            peers.push(
                Store::try_new(&s, store.bucket())
                    .map_err(|e| format!("target {}: {e}", spec.name))?
                    .sharing_health(&store),
            );
        }
        let mut live = Self {
            spec: spec.clone(),
            settings,
            store,
            peers,
            owns_bucket,
            prefix: if owns_bucket {
                String::new()
            } else {
                format!("{}/", fresh_name("condwrite"))
            },
            read_lag: crate::engine::ReadLag::default(),
            bucket_versioned: false,
            running,
        };
        started().push((
            spec.name.clone(),
            live.store.health().clone(),
            live.cleanup(),
        ));
        // The first request: make the bucket, or see that the given one
        // can be listed. It fails here, once, for a store that does not
        // answer or cannot be reached.
        let first = if live.owns_bucket {
            live.store.create_bucket().await
        } else {
            live.store.list(&live.prefix).await.map(|_| ())
        };
        if let Err(e) = first {
            let e = with_tls_hint(e);
            let stopped = live.shutdown().await;
            return Err(match stopped {
                Ok(()) => e,
                Err(s) => format!("{e}; {s}"),
            });
        }
        if !live.owns_bucket {
            live.bucket_versioned = live.store.versioning_enabled().await.unwrap_or(false);
        }
        crate::engine::measure_read_lag(&live.store, &live.prefix, &live.read_lag).await;
        Ok(live)
    }

    /// The longest the target's reads were seen to lag its writes, so far.
    pub fn read_lag(&self) -> Duration {
        self.read_lag.get()
    }

    /// A client for the run's bucket.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the engine runs a scenario on: the run's bucket through every
    /// endpoint, and whether scenarios may make buckets of their own.
    pub fn site(&self) -> crate::engine::Site<'_> {
        crate::engine::Site {
            store: &self.store,
            peers: &self.peers,
            may_create_buckets: self.owns_bucket,
            read_lag: &self.read_lag,
        }
    }

    /// The prefix every key of this run starts with (empty in a bucket of
    /// the run's own).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What an interrupted run must remove, for a target whose storage
    /// outlives the run (`None` for embedded, process and container
    /// targets, whose storage goes with the server).
    pub fn cleanup(&self) -> Option<Cleanup> {
        matches!(self.running, Running::Nothing).then(|| Cleanup {
            store: self.store.with_own_health(),
            prefix: self.prefix.clone(),
            owns_bucket: self.owns_bucket,
        })
    }

    /// Stops what was started; says what it could not stop.
    async fn shutdown(self) -> Result<(), String> {
        match self.running {
            Running::Nothing => {}
            Running::Embedded(server) => server.stop(),
            Running::Process(server) => {
                let grace = self
                    .spec
                    .process
                    .as_ref()
                    .map_or(Duration::from_secs(10), |p| p.stop_timeout);
                server.stop(grace).await
            }
            Running::Container(container) => {
                container
                    .stop()
                    .await
                    .map_err(|e| format!("removing the container failed: {e}"))?;
            }
        }
        Ok(())
    }

    /// Deletes what the run left (open multipart uploads, objects), the
    /// bucket if the run made it, and stops what was started. Returns a
    /// message for anything it could not remove. For a target whose storage
    /// the run throws away with the server (embedded, process, container),
    /// what could not be removed is `Ok(Some(note))`, not a failure: the
    /// store kept something it should not have (rclone keeps an object that
    /// racing writers left, answering 204 to every DELETE of it), and it
    /// goes with the server.
    pub async fn stop(self) -> Result<Option<String>, String> {
        started().retain(|(_, h, _)| !Arc::ptr_eq(h, self.store.health()));
        let mut problems = Vec::new();
        // A store can land an acknowledged write after a later DELETE was
        // answered: what reappears is deleted again, a few times, a second
        // apart.
        for attempt in 1..=4 {
            problems.clear();
            if let Err(e) = self.store.abort_uploads(&self.prefix).await {
                problems.push(e);
            }
            let removed = if self.bucket_versioned {
                self.store.delete_versions(&self.prefix).await
            } else {
                self.store.delete_prefix(&self.prefix).await
            };
            if let Err(e) = &removed {
                problems.push(e.clone());
            }
            let left = if self.owns_bucket {
                match self.store.delete_bucket().await {
                    Ok(()) => false,
                    Err(e) => {
                        problems.push(e);
                        true
                    }
                }
            } else {
                // Deleted something: look again, for what lands late.
                removed.is_ok_and(|n| n > 0) && attempt == 1
            };
            if !left || attempt == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut note = None;
        if !problems.is_empty() && !matches!(self.running, Running::Nothing) {
            let listed = self.store.list(&self.prefix).await.unwrap_or_default();
            let what = if listed.is_empty() {
                "it lists no object".to_owned()
            } else {
                format!(
                    "{} object(s) stay listed after DELETE answered success ({})",
                    listed.len(),
                    listed
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            note = Some(format!(
                "{}; {what}; the server's storage is removed with it",
                problems.join("; ")
            ));
            problems.clear();
        }
        if let Err(e) = self.shutdown().await {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(note)
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
        // One target per fault, and the two-node `embedded-cluster`.
        assert_eq!(s.len(), Fault::ALL.len() + 1);
        let err = t.select(&["nope".into()]).unwrap_err();
        assert!(err.contains("unknown target `nope`"), "{err}");
        assert!(err.contains("embedded-racy"), "{err}");
    }

    #[test]
    fn nodes_and_endpoints_are_checked() {
        let parse = |body: &str| {
            Targets::parse(
                "t.toml",
                &format!("[[target]]\nname = \"x\"\n{body}"),
                Path::new("."),
            )
        };
        let t = parse("kind = \"embedded\"\nnodes = 3\n").unwrap();
        assert_eq!(t.targets[0].nodes, 3);
        let err = parse("kind = \"embedded\"\nnodes = 0\n").unwrap_err();
        assert!(err.contains("`nodes = 0`: expected 1 to 8"), "{err}");
        let err = parse("kind = \"process\"\ncommand = [\"x\"]\nnodes = 2\n").unwrap_err();
        assert!(err.contains("`nodes` does not apply"), "{err}");
        let t =
            parse("kind = \"endpoint\"\nendpoints = [\"http://a:1\", \"http://b:2\"]\n").unwrap();
        let e = t.targets[0].endpoint.as_ref().unwrap();
        assert_eq!(e.url.as_deref(), Some("http://a:1"));
        assert_eq!(e.more_urls, vec!["http://b:2".to_owned()]);
        let err =
            parse("kind = \"endpoint\"\nurl = \"http://a:1\"\nendpoints = [\"http://b:2\"]\n")
                .unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn process_ports_and_endpoints_are_checked() {
        let parse = |body: &str| {
            Targets::parse(
                "t.toml",
                &format!("[[target]]\nname = \"x\"\nkind = \"process\"\naccess_key = \"a\"\nsecret_key = \"b\"\n{body}"),
                Path::new("."),
            )
        };
        let t = parse("command = [\"s\", \"{port}\"]\n").unwrap();
        let p = t.targets[0].process.as_ref().unwrap();
        assert_eq!(p.ports, 1);
        assert_eq!(p.endpoints, vec!["http://127.0.0.1:{port}".to_owned()]);
        let t = parse("command = [\"s\", \"{port1}\"]\nports = 2\nendpoints = [\"http://127.0.0.1:{port}\", \"http://127.0.0.1:{port1}\"]\n").unwrap();
        assert_eq!(t.targets[0].process.as_ref().unwrap().endpoints.len(), 2);
        let err = parse("command = [\"s\", \"{port2}\"]\nports = 2\n").unwrap_err();
        assert!(err.contains("`{port2}` needs `ports = 3` or more"), "{err}");
        let err = parse("command = [\"s\"]\nready_file = \"{dir}/{port1}\"\n").unwrap_err();
        assert!(err.contains("`{port1}` needs `ports = 2`"), "{err}");
        let err = parse("command = [\"s\"]\nports = 0\n").unwrap_err();
        assert!(err.contains("`ports = 0`: expected 1 to 16"), "{err}");
        let err = parse("command = [\"s\"]\nendpoints = []\n").unwrap_err();
        assert!(err.contains("`endpoints` is empty"), "{err}");
        assert_eq!(
            port_placeholders("a{port}b{port12}c{portx}{port"),
            vec![0, 12]
        );
    }

    #[test]
    fn an_unknown_fault_is_reported_with_its_place() {
        let err = Targets::parse(
            "t.toml",
            "[[target]]\nname = \"x\"\nkind = \"embedded\"\nfaults = [\"slow\"]\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.starts_with("t.toml:4:"), "{err}");
        assert!(err.contains("unknown fault `slow`"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_refused_at_every_level_with_its_place() {
        let entry = "[[target]]\nname = \"x\"\nkind = \"embedded\"\n";
        for (text, line) in [
            (format!("colour = 1\n{entry}"), 1),
            (format!("{entry}colour = 1\n"), 4),
        ] {
            let err = Targets::parse("t.toml", &text, Path::new(".")).unwrap_err();
            assert!(err.contains("unknown field `colour`"), "{err}");
            assert!(err.starts_with(&format!("t.toml:{line}:")), "{err}");
        }
    }

    #[test]
    fn an_unknown_kind_says_which_kinds_exist() {
        let err = Targets::parse(
            "t.toml",
            "[[target]]\nname = \"x\"\nkind = \"ftp\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.starts_with("t.toml:3:"), "{err}");
        assert!(err.contains("embedded") && err.contains("process"), "{err}");
    }

    #[test]
    fn fields_of_another_kind_are_refused() {
        let err = Targets::parse(
            "t.toml",
            "[[target]]\nname = \"x\"\nkind = \"embedded\"\ncommand = [\"x\"]\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            err.contains("`command` does not apply to kind = \"embedded\""),
            "{err}"
        );
        let err = Targets::parse(
            "t.toml",
            "[[target]]\nname = \"x\"\nkind = \"endpoint\"\nurl = \"http://h\"\naccess_key_env = \"A\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            err.contains("both `access_key_env` and `secret_key_env`"),
            "{err}"
        );
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
