//! A started target: the server (embedded, process or container) or the
//! existing service, a bucket (or a prefix in a given one) to work in, and
//! its clients; stopped with everything it wrote removed. Also what an
//! interrupted run ends.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::container::{self, RunningContainer};
use super::process::{self, ServerProcess};
use super::{
    fresh_name, EndpointSpec, Kind, TargetError, TargetSpec, EMBEDDED_ACCESS_KEY,
    EMBEDDED_SECRET_KEY,
};
use crate::reference::{self, RunningServer};
use crate::store::{open_scenario_buckets, ClientSettings, Health, RequestError, Store};

/// The first request's failure as the target's: a TLS certificate problem
/// says how to trust the endpoint's CA. The SDK reports a rejected
/// certificate only in the text of its error chain (rustls's error is not
/// reachable through it), so that text is what tells the two apart.
fn first_request_failed(e: RequestError) -> TargetError {
    let message = e.message;
    let tls = [
        "certificate",
        "UnknownIssuer",
        "invalid peer",
        "tls handshake",
    ]
    .iter()
    .any(|w| message.to_lowercase().contains(&w.to_lowercase()));
    if tls {
        TargetError::UntrustedTls(format!("{message} (the endpoint's TLS certificate is not trusted: give its CA as a PEM file with `ca_file = \"ca.pem\"` in the target, or --ca-file)"))
    } else {
        TargetError::BucketSetUp(message)
    }
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
/// containers removed. Returns what was done, and what went wrong, for
/// the caller to say.
pub async fn interrupt() -> Interrupted {
    let started: Vec<(String, Arc<Health>, Option<Cleanup>)> = std::mem::take(&mut *started());
    for (_, health, _) in &started {
        health.shut_down();
    }
    // Let the requests already on their way land (within a few seconds),
    // so that the clean-up's listings include what they create.
    for (_, health, _) in &started {
        health.settled(Duration::from_secs(5)).await;
    }
    let cleanups: Vec<(String, Cleanup)> = started
        .into_iter()
        .filter_map(|(n, _, c)| c.map(|c| (n, c)))
        .collect();
    let mut said = String::from("stopped the servers and removed the containers this run started");
    let mut warnings = Vec::new();
    if !cleanups.is_empty() {
        let failed = std::sync::Mutex::new(Vec::new());
        let work = async {
            for (n, c) in &cleanups {
                if let Err(e) = c.run().await {
                    let mut failed = failed.lock().unwrap_or_else(|e| e.into_inner());
                    failed.push(format!("cleaning up target {n} failed: {e}"));
                }
            }
        };
        let late = tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .is_err();
        warnings = failed.into_inner().unwrap_or_else(|e| e.into_inner());
        if late {
            warnings.push(
                "cleaning up took more than 20 s; some of what the run wrote may be left".into(),
            );
        }
        said.push_str(&format!(
            ", removed what it wrote to {} endpoint target(s)",
            cleanups.len()
        ));
    }
    process::stop_all();
    container::remove_all().await;
    Interrupted {
        done: said,
        warnings,
    }
}

/// What [`interrupt`] did: one line, and a line per thing that went wrong.
pub struct Interrupted {
    /// What was done, in one line.
    pub done: String,
    /// What could not be done (a clean-up that failed or took too long).
    pub warnings: Vec<String>,
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
    pub async fn run(&self) -> Result<(), TargetError> {
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
        for bucket in open_scenario_buckets(self.store.bucket()) {
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
        problems.retain(|p: &RequestError| !p.failure.is_code("NoSuchBucket"));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TargetError::CleanUp(joined(&problems)))
        }
    }
}

/// Problems, one after the other.
fn joined(problems: &[impl std::fmt::Display]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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

fn env_var(name: &str, target: &str) -> Result<String, TargetError> {
    std::env::var(name).map_err(|_| {
        TargetError::MissingCredentials(format!("target {target} reads its credentials from ${name}, which is not set: export it and run again"))
    })
}

/// Credentials of an endpoint target: the variables it names, else the AWS
/// credential chain.
async fn endpoint_credentials(
    spec: &TargetSpec,
    endpoint: &EndpointSpec,
) -> Result<(String, String, Option<String>), TargetError> {
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
        TargetError::MissingCredentials(format!(
            "target {}: no AWS credential provider is configured",
            spec.name
        ))
    })?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        TargetError::MissingCredentials(format!(
            "target {}: no AWS credentials found ({e}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or log in with `aws sso login`",
            spec.name
        ))
    })?;
    Ok((
        creds.access_key_id().to_owned(),
        creds.secret_access_key().to_owned(),
        creds.session_token().map(str::to_owned),
    ))
}

/// What a target's start gives: how to reach it, what runs for it, the
/// bucket it names (if any), and its further endpoints.
type Launched = (ClientSettings, Running, Option<String>, Vec<String>);

/// Starts what a target needs (the embedded server, the process, the
/// container; nothing for an endpoint) and says how to reach it.
async fn launch(spec: &TargetSpec) -> Result<Launched, TargetError> {
    let ca_pem = match &spec.client.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            TargetError::File(format!(
                "target {}: cannot read its ca_file {}: {e}",
                spec.name,
                path.display()
            ))
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
    let credentials = || {
        spec.local_credentials
            .as_ref()
            .expect("validated: a process or container target has credentials")
    };
    Ok(match spec.kind {
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
                .map_err(|e| {
                    TargetError::Other(format!("starting the embedded server failed: {e}"))
                })?;
            let settings = local(server.url(), EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY);
            let more = server.urls().split_off(1);
            (settings, Running::Embedded(server), None, more)
        }
        Kind::Process => {
            let process_spec = spec
                .process
                .as_ref()
                .expect("validated: process has a command");
            let (ak, sk) = credentials();
            let server = ServerProcess::start(&spec.name, process_spec, &spec.root).await?;
            let more = server.urls()[1..].to_vec();
            let url = server.urls()[0].clone();
            (local(url, ak, sk), Running::Process(server), None, more)
        }
        Kind::Container => {
            let container_spec = spec.container.as_ref().expect("validated: container spec");
            let (ak, sk) = credentials();
            container::docker_preflight().await?;
            let running = RunningContainer::start(&spec.name, container_spec).await?;
            let url = format!("http://127.0.0.1:{}", running.port());
            let running = Running::Container(Box::new(running));
            (local(url, ak, sk), running, None, Vec::new())
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
            let more = endpoint.more_urls.clone();
            (settings, Running::Nothing, endpoint.bucket.clone(), more)
        }
    })
}

impl LiveTarget {
    /// Starts the target and makes sure a bucket is there to work in. Must
    /// be called on a tokio runtime that outlives the target.
    pub async fn start(spec: &TargetSpec) -> Result<Self, TargetError> {
        let (settings, running, bucket, more_urls) = launch(spec).await?;
        let owns_bucket = bucket.is_none();
        let store = Store::try_new(&settings, bucket.unwrap_or_else(|| fresh_name("condwrite")))
            .map_err(|e| TargetError::Other(format!("target {}: {e}", spec.name)))?;
        let mut peers = Vec::new();
        for url in more_urls {
            let mut s = settings.clone();
            s.endpoint_url = url;
            peers.push(
                Store::try_new(&s, store.bucket())
                    .map_err(|e| TargetError::Other(format!("target {}: {e}", spec.name)))?
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
            let e = first_request_failed(e);
            let stopped = live.shutdown().await;
            return Err(match stopped {
                Ok(()) => e,
                Err(s) => e.and(s),
            });
        }
        if !live.owns_bucket {
            live.bucket_versioned = live.store.versioning_enabled().await.unwrap_or(false);
        }
        Ok(live)
    }

    /// A client for the run's bucket.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Clients of the run's bucket through the target's other endpoints.
    pub fn peers(&self) -> &[Store] {
        &self.peers
    }

    /// Whether the run made its bucket (and so may make others beside it,
    /// as versioning scenarios do), rather than working in a given one.
    pub fn owns_bucket(&self) -> bool {
        self.owns_bucket
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
    async fn shutdown(self) -> Result<(), TargetError> {
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
                container.stop().await.map_err(|e| {
                    TargetError::CleanUp(format!("removing the container failed: {e}"))
                })?;
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
    pub async fn stop(self) -> Result<Option<String>, TargetError> {
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
                joined(&problems)
            ));
            problems.clear();
        }
        let mut failed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        if let Err(e) = self.shutdown().await {
            failed.push(e.to_string());
        }
        if failed.is_empty() {
            Ok(note)
        } else {
            Err(TargetError::CleanUp(failed.join("; ")))
        }
    }
}
