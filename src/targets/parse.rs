//! A targets file's TOML, as written, and its checking into
//! [`TargetSpec`]s: every entry takes only its kind's fields, and every
//! error is `file:line:col: what is wrong`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::container::ContainerSpec;
use super::process::ProcessSpec;
use super::{ClientOptions, EndpointSpec, Kind, TargetSpec};
use crate::model::FileError;
use crate::reference::Fault;
use crate::store::ChecksumMode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    name: Spanned<String>,
    kind: Kind,
    /// The releases of one store: the entry is a family, one target per
    /// release (`NAME@RELEASE`, `{release}` filled in), and `NAME` is the
    /// newest.
    releases: Option<Spanned<Vec<String>>>,
    /// A line per release, added to that release's description.
    #[serde(default)]
    release_notes: BTreeMap<String, String>,
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
    requires: Option<Vec<String>>,
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
    max_concurrency: Option<usize>,
}

/// Fields that only some kinds take, for the check that each entry uses
/// only its own.
fn foreign_fields(kind: Kind, t: &RawTarget) -> Vec<&'static str> {
    use Kind::{Container as C, Embedded as E, Endpoint as N, Process as P};
    let fields: [(&str, bool, &[Kind]); 26] = [
        ("faults", t.faults.is_some(), &[E]),
        ("nodes", t.nodes.is_some(), &[E]),
        ("ports", t.ports.is_some(), &[P]),
        ("endpoints", t.endpoints.is_some(), &[N, P]),
        ("command", t.command.is_some(), &[P]),
        ("env", !t.env.is_empty(), &[P, C]),
        ("ready_path", t.ready_path.is_some(), &[P, C]),
        ("ready_body", t.ready_body.is_some(), &[P]),
        ("ready_file", t.ready_file.is_some(), &[P]),
        ("requires", t.requires.is_some(), &[P]),
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

impl RawTarget {
    /// Every text of the entry a `{release}` may stand in (all but its
    /// name, kind and credentials).
    fn templates_mut(&mut self) -> Vec<&mut String> {
        let mut out: Vec<&mut String> = vec![&mut self.description];
        for field in [
            &mut self.version,
            &mut self.ready_path,
            &mut self.ready_body,
            &mut self.ready_file,
            &mut self.install,
            &mut self.preset,
            &mut self.image,
            &mut self.tag,
            &mut self.ready_log,
            &mut self.url,
            &mut self.bucket,
            &mut self.region,
            &mut self.ca_file,
        ] {
            out.extend(field.as_mut());
        }
        for list in [
            &mut self.command,
            &mut self.requires,
            &mut self.container_args,
            &mut self.endpoints,
        ] {
            out.extend(list.iter_mut().flatten());
        }
        out.extend(self.env.values_mut());
        out
    }

    /// The entry for one release of its family: `{release}` filled in and
    /// the release's note added to the description.
    fn for_release(&self, release: &str) -> RawTarget {
        let mut t = self.clone();
        for text in t.templates_mut() {
            *text = text.replace("{release}", release);
        }
        if let Some(note) = self.release_notes.get(release) {
            t.description = format!("{} ({note})", t.description);
        }
        t
    }
}

/// The indexes of the `{portN}` placeholders in a template (`{port}` is 0).
pub(super) fn port_placeholders(template: &str) -> Vec<usize> {
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

/// Parses a targets file's text into its entries; `source` names it in
/// errors, `root` is the folder relative paths start from.
pub(super) fn parse(source: &str, text: &str, root: &Path) -> Result<Vec<TargetSpec>, FileError> {
    // Every error has a place; one the parser does not give is the file's
    // start.
    let at = |span: Option<Range<usize>>, msg: &str| {
        FileError::at(source, text, Some(span.map_or(0, |s| s.start)), msg)
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| FileError::of_toml(source, text, &e))?;
    let mut targets: Vec<TargetSpec> = Vec::new();
    for t in raw.target {
        let span = t.span();
        for spec in family(t.into_inner(), root, &targets)
            .map_err(|(s, msg)| at(Some(s.unwrap_or(span)), &msg))?
        {
            targets.push(spec);
        }
    }
    if targets.is_empty() {
        return Err(at(
            None,
            "no targets: expected at least one `[[target]]` table",
        ));
    }
    Ok(targets)
}

/// An error of one entry: its own place (`None`: the entry's), and what.
type EntryError = (Option<Range<usize>>, String);

/// Whether a release name is fit for a target name and a folder: letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit.
fn valid_release(r: &str) -> bool {
    r.starts_with(|c: char| c.is_ascii_alphanumeric())
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One `[[target]]` entry as its targets: itself, or for a family (an
/// entry with `releases`) the newest release under the plain name, then
/// every release as `NAME@RELEASE`, oldest first.
fn family(
    mut t: RawTarget,
    root: &Path,
    earlier: &[TargetSpec],
) -> Result<Vec<TargetSpec>, EntryError> {
    let Some(releases) = t.releases.take() else {
        if t.templates_mut().iter().any(|s| s.contains("{release}")) {
            return Err((
                None,
                format!(
                    "target `{}`: `{{release}}` stands for a release, and this entry has no `releases = [...]`",
                    t.name.get_ref()
                ),
            ));
        }
        if !t.release_notes.is_empty() {
            return Err((None, "`release_notes` needs `releases = [...]`".into()));
        }
        return Ok(vec![entry(t, root, earlier, None)?]);
    };
    let span = releases.span();
    let mut releases = releases.into_inner();
    if releases.is_empty() {
        return Err((
            Some(span),
            "`releases` is empty: expected one or more release names, such as [\"4.44\", \"4.45\"]"
                .into(),
        ));
    }
    if let Some(bad) = releases.iter().find(|r| !valid_release(r)) {
        return Err((
            Some(span),
            format!("invalid release `{bad}`: expected letters, digits, `-`, `_` or `.`"),
        ));
    }
    releases.sort_by(|a, b| crate::model::compare_versions(a, b));
    if let Some(w) = releases.windows(2).find(|w| w[0] == w[1]) {
        return Err((Some(span), format!("release `{}` is listed twice", w[0])));
    }
    if let Some(r) = t.release_notes.keys().find(|r| !releases.contains(r)) {
        return Err((
            None,
            format!("`release_notes` names `{r}`, which is not in `releases`"),
        ));
    }
    let name = t.name.get_ref().clone();
    let newest = releases.last().expect("not empty").clone();
    let mut out: Vec<TargetSpec> = Vec::new();
    for (release, full_name) in std::iter::once((&newest, name.clone()))
        .chain(releases.iter().map(|r| (r, format!("{name}@{r}"))))
    {
        let mut one = t.for_release(release);
        one.name = Spanned::new(one.name.span(), full_name);
        // The family's own names are distinct by construction: only the
        // entries before it can clash.
        out.push(entry(one, root, earlier, Some((&name, release)))?);
    }
    Ok(out)
}

/// One target, checked against the ones before it; `release` is the family
/// it is a release of (its name then has `@RELEASE`, or is the family's)
/// and which release.
fn entry(
    mut t: RawTarget,
    root: &Path,
    earlier: &[TargetSpec],
    release: Option<(&str, &str)>,
) -> Result<TargetSpec, EntryError> {
    let foreign = foreign_fields(t.kind, &t);
    if !foreign.is_empty() {
        return Err((
            None,
            format!(
                "`{}` does not apply to kind = \"{}\"",
                foreign.join("`, `"),
                t.kind
            ),
        ));
    }
    let name_span = t.name.span();
    let name = t.name.get_ref().clone();
    let plain = release.map_or(name.as_str(), |(family, _)| family);
    if plain.is_empty()
        || !plain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err((
            Some(name_span),
            format!("invalid target name `{plain}`: expected letters, digits, `-`, `_` or `.`"),
        ));
    }
    if earlier.iter().any(|x| x.name == name) {
        return Err((Some(name_span), format!("duplicate target name `{name}`")));
    }
    let faults = match t.faults.take() {
        None => Vec::new(),
        Some(f) => {
            let span = f.span();
            f.into_inner()
                .iter()
                .map(|f| f.parse::<Fault>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (Some(span), e))?
        }
    };
    let whose = |e: String| (None, format!("target `{name}`: {e}"));
    let process = process_spec(&mut t).map_err(whose)?;
    let local_credentials = match (t.kind, t.access_key.take(), t.secret_key.take()) {
        (Kind::Process | Kind::Container, Some(a), Some(s)) => Some((a, s)),
        (Kind::Process | Kind::Container, _, _) => {
            return Err(whose(format!(
                "a {} target needs `access_key` and `secret_key` (the local server's own pair)",
                t.kind
            )))
        }
        _ => None,
    };
    let container = container_spec(&mut t, local_credentials.as_ref()).map_err(whose)?;
    let endpoint = endpoint_spec(&mut t).map_err(whose)?;
    let nodes = t.nodes.unwrap_or(1);
    if !(1..=8).contains(&nodes) {
        return Err(whose(format!("`nodes = {nodes}`: expected 1 to 8")));
    }
    if let Some(n @ (0 | 257..)) = t.max_concurrency {
        return Err(whose(format!("`max_concurrency = {n}`: expected 1 to 256")));
    }
    Ok(TargetSpec {
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
        max_concurrency: t.max_concurrency,
        family: release.map(|(f, _)| f.to_owned()),
        release: release.map(|(_, r)| r.to_owned()),
    })
}

/// How a `process` target starts: its command, ports and endpoints, each
/// `{portN}` one of its ports.
fn process_spec(t: &mut RawTarget) -> Result<Option<ProcessSpec>, String> {
    let command = match (t.kind, t.command.take()) {
        (Kind::Process, Some(command)) if !command.is_empty() => command,
        (Kind::Process, _) => {
            return Err("kind = \"process\" needs `command = [\"program\", \"arg\", ...]`".into())
        }
        _ => return Ok(None),
    };
    let ports = match t.ports.unwrap_or(1) {
        n @ 1..=16 => n,
        n => return Err(format!("`ports = {n}`: expected 1 to 16")),
    };
    let endpoints = match t.endpoints.clone() {
        None => vec!["http://127.0.0.1:{port}".into()],
        Some(e) if e.is_empty() => {
            return Err("`endpoints` is empty: expected one URL template per S3 gateway, such as \"http://127.0.0.1:{port1}\"".into())
        }
        Some(e) => e,
    };
    let p = ProcessSpec {
        command,
        ports,
        endpoints,
        env: t.env.clone(),
        ready_path: t.ready_path.clone(),
        ready_body: t.ready_body.take(),
        ready_file: t.ready_file.take(),
        requires: t.requires.take().unwrap_or_default(),
        start_timeout: Duration::from_secs(t.start_timeout_s.unwrap_or(60)),
        stop_timeout: Duration::from_secs(t.stop_timeout_s.unwrap_or(10)),
        install: t.install.take(),
    };
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
        return Err(format!(
            "`{{port{bad}}}` needs `ports = {}` or more (ports are {{port}}, {{port1}} … {{port{}}})",
            bad + 1,
            p.ports - 1
        ));
    }
    Ok(Some(p))
}

/// How a `container` target starts: a preset, or its own port, command,
/// environment and readiness.
fn container_spec(
    t: &mut RawTarget,
    credentials: Option<&(String, String)>,
) -> Result<Option<ContainerSpec>, String> {
    if t.kind != Kind::Container {
        return Ok(None);
    }
    let (Some(image), Some(tag)) = (t.image.take(), t.tag.take()) else {
        return Err("a container target needs `image` and `tag`".into());
    };
    let (ak, sk) = credentials.expect("checked before: a container has credentials");
    let mut spec = match t.preset.as_deref() {
        Some("minio") => ContainerSpec::minio(image, tag, ak, sk),
        Some(other) => return Err(format!("unknown preset `{other}`; known presets: minio")),
        None => {
            let Some(port) = t.container_port else {
                return Err(
                    "a container without a preset needs `container_port` (the S3 port inside it)"
                        .into(),
                );
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
    if let Some(args) = t.container_args.take() {
        spec.args = args;
    }
    if t.ready_log.is_some() || t.ready_path.is_some() {
        spec.ready_log = t.ready_log.take();
        spec.ready_path = t.ready_path.take();
    }
    spec.env.extend(t.env.clone());
    if let Some(s) = t.start_timeout_s {
        spec.start_timeout = Duration::from_secs(s);
    }
    Ok(Some(spec))
}

/// Where an `endpoint` target is: a URL or a cluster's, or AWS by region;
/// the names of its credential variables, or none (the AWS chain).
fn endpoint_spec(t: &mut RawTarget) -> Result<Option<EndpointSpec>, String> {
    if t.kind != Kind::Endpoint {
        return Ok(None);
    }
    if t.access_key_env.is_some() != t.secret_key_env.is_some() {
        return Err("give both `access_key_env` and `secret_key_env`, or neither (the AWS credential chain)".into());
    }
    let mut urls = t.endpoints.clone().unwrap_or_default();
    if t.url.is_some() && !urls.is_empty() {
        return Err("give `url` or `endpoints = [...]`, not both".into());
    }
    if t.endpoints.is_some() && urls.is_empty() {
        return Err("`endpoints` is empty: expected one URL per node".into());
    }
    if t.url.is_none() && urls.is_empty() && t.region.is_none() {
        return Err("an endpoint needs a `url`, or a `region` for AWS S3".into());
    }
    let url = t
        .url
        .take()
        .or_else(|| (!urls.is_empty()).then(|| urls.remove(0)));
    Ok(Some(EndpointSpec {
        url,
        more_urls: urls,
        bucket: t.bucket.take(),
        access_key_env: t.access_key_env.take(),
        secret_key_env: t.secret_key_env.take(),
    }))
}
