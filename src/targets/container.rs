//! Container targets: an image started through testcontainers (MinIO
//! releases and other S3-compatible images), its port mapped to loopback,
//! removed when the run ends.
//!
//! Where no Docker engine answers, [`docker_preflight`] says so in one line,
//! quickly, before anything is started. The S3 port is published on
//! 127.0.0.1 only. Every container is labelled `condwrite.pid=<pid>` and
//! registered while it runs, so that Ctrl-C or SIGTERM (see [`remove_all`])
//! never leaves one behind.

use super::TargetError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use testcontainers_modules::testcontainers::bollard::models::PortBinding;
use testcontainers_modules::testcontainers::bollard::query_parameters::{
    ListContainersOptions, RemoveContainerOptions,
};
use testcontainers_modules::testcontainers::core::client::docker_client_instance;
use testcontainers_modules::testcontainers::core::error::{ClientError, TestcontainersError};
use testcontainers_modules::testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Label every container condwrite starts carries (with the run's pid).
pub const PID_LABEL: &str = "condwrite.pid";
/// Label naming the target a container was started for.
pub const TARGET_LABEL: &str = "condwrite.target";

/// Ids of the containers that are running, for [`remove_all`].
static RUNNING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether this process ever asked the engine for a container.
static STARTED_ANY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn running() -> std::sync::MutexGuard<'static, Vec<String>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Force-removes every container this process started and has not removed
/// yet (for Ctrl-C and SIGTERM, where no destructor runs): those it knows,
/// and any carrying its pid label (one caught between creation and
/// registration). Bounded in time.
pub async fn remove_all() {
    let mut ids: Vec<String> = running().drain(..).collect();
    if ids.is_empty() && !STARTED_ANY.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let remove = async {
        let Ok(docker) = docker_client_instance().await else {
            return;
        };
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{PID_LABEL}={}", std::process::id())],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        if let Ok(listed) = docker.list_containers(Some(options)).await {
            ids.extend(listed.into_iter().filter_map(|c| c.id));
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), remove).await;
}

/// How a container target is started.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// Image name, e.g. `quay.io/minio/minio`.
    pub image: String,
    /// Image tag, e.g. `RELEASE.2025-07-23T15-54-02Z`.
    pub tag: String,
    /// The S3 port inside the container.
    pub port: u16,
    /// Arguments of the container's command.
    pub args: Vec<String>,
    /// Environment of the container.
    pub env: BTreeMap<String, String>,
    /// Text on the container's stdout that means ready.
    pub ready_log: Option<String>,
    /// HTTP path that must answer (below 500) through the mapped port.
    pub ready_path: Option<String>,
    /// How long to wait for readiness (including the image pull).
    pub start_timeout: Duration,
}

impl ContainerSpec {
    /// A MinIO release: `server /data` on port 9000, root credentials from
    /// the target's pair, ready when `/minio/health/ready` answers (the
    /// health check MinIO documents for orchestrators).
    pub fn minio(image: String, tag: String, access_key: &str, secret_key: &str) -> Self {
        let env = [
            ("MINIO_ROOT_USER".to_owned(), access_key.to_owned()),
            ("MINIO_ROOT_PASSWORD".to_owned(), secret_key.to_owned()),
        ]
        .into_iter()
        .collect();
        Self {
            image,
            tag,
            port: 9000,
            args: vec!["server".into(), "/data".into()],
            env,
            ready_log: None,
            ready_path: Some("/minio/health/ready".into()),
            start_timeout: Duration::from_secs(180),
        }
    }
}

/// Checks that a Docker engine answers; the error is one line that says
/// what is missing and how to fix it.
pub async fn docker_preflight() -> Result<(), TargetError> {
    let fix = "container targets need a running Docker engine: start Docker (or point DOCKER_HOST at one) and run again";
    let ping = async {
        let docker = docker_client_instance().await.map_err(|e| e.to_string())?;
        docker.ping().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(10), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(TargetError::NoDocker(format!(
            "no Docker engine answers ({e}); {fix}"
        ))),
        Err(_) => Err(TargetError::NoDocker(format!(
            "the Docker engine did not answer within 10 s; {fix}"
        ))),
    }
}

/// A running container.
pub struct RunningContainer {
    container: ContainerAsync<GenericImage>,
    port: u16,
}

/// The one-line message for a failed start: a missing image says how to get
/// one instead of the engine's pull error.
fn start_error(spec: &ContainerSpec, e: &TestcontainersError) -> TargetError {
    let image = format!("{}:{}", spec.image, spec.tag);
    match e {
        TestcontainersError::Client(ClientError::PullImage { err, .. }) => TargetError::NoImage(format!(
            "image {image} is not on the Docker engine and could not be pulled ({}): build or load it there (scripts/build-images builds condwrite.local/* images), or pull it on a machine with a registry",
            first_line(&err.to_string())
        )),
        other => TargetError::Other(format!(
            "starting {image} failed: {}",
            first_line(&other.to_string())
        )),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

impl RunningContainer {
    /// Pulls (if needed) and starts the image, and waits until it is ready.
    /// `target` names the target in the container's labels.
    pub async fn start(target: &str, spec: &ContainerSpec) -> Result<Self, TargetError> {
        let mut image = GenericImage::new(spec.image.clone(), spec.tag.clone())
            .with_exposed_port(spec.port.tcp());
        if let Some(text) = &spec.ready_log {
            image = image.with_wait_for(WaitFor::message_on_stdout(text.clone()));
        }
        // Publish the S3 port on loopback only (testcontainers would
        // publish every exposed port on all interfaces).
        let port_key = format!("{}/tcp", spec.port);
        let mut request = image
            .with_cmd(spec.args.clone())
            .with_startup_timeout(spec.start_timeout)
            .with_label(PID_LABEL, std::process::id().to_string())
            .with_label(TARGET_LABEL, target)
            .with_host_config_modifier(move |host| {
                host.publish_all_ports = Some(false);
                host.port_bindings = Some(HashMap::from([(
                    port_key.clone(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )]));
            });
        for (k, v) in &spec.env {
            request = request.with_env_var(k.clone(), v.clone());
        }
        let started = Instant::now();
        STARTED_ANY.store(true, std::sync::atomic::Ordering::SeqCst);
        let container = request.start().await.map_err(|e| start_error(spec, &e))?;
        running().push(container.id().to_owned());
        let mut this = Self { container, port: 0 };
        match this.container.get_host_port_ipv4(spec.port.tcp()).await {
            Ok(p) => this.port = p,
            Err(e) => {
                let e =
                    TargetError::Other(format!("no loopback port is mapped to {}: {e}", spec.port));
                let _ = this.stop().await;
                return Err(e);
            }
        }
        if let Some(path) = &spec.ready_path {
            loop {
                let (port, probe_path) = (this.port, path.clone());
                let ready = tokio::task::spawn_blocking(move || {
                    super::process::probe(port, Some(&probe_path), None)
                })
                .await
                .unwrap_or(false);
                if ready {
                    break;
                }
                if started.elapsed() > spec.start_timeout {
                    let tail = this.log_tail().await;
                    let _ = this.stop().await;
                    return Err(TargetError::NeverReady(format!(
                        "{}:{} was not ready ({path} did not answer) after {} s; last log lines: {tail}",
                        spec.image,
                        spec.tag,
                        spec.start_timeout.as_secs()
                    )));
                }
                if !this.container.is_running().await.unwrap_or(true) {
                    let tail = this.log_tail().await;
                    let _ = this.stop().await;
                    return Err(TargetError::ExitedEarly(format!(
                        "{}:{} exited before it was ready; last log lines: {tail}",
                        spec.image, spec.tag
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(this)
    }

    /// The container's last log lines, one string.
    async fn log_tail(&self) -> String {
        let mut text = self.container.stdout_to_vec().await.unwrap_or_default();
        text.extend(self.container.stderr_to_vec().await.unwrap_or_default());
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(8)..];
        if tail.is_empty() {
            "(the log is empty)".into()
        } else {
            tail.join(" | ")
        }
    }

    /// The loopback port the S3 port is mapped to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Removes the container.
    pub async fn stop(self) -> Result<(), TargetError> {
        let id = self.container.id().to_owned();
        let removed = self
            .container
            .rm()
            .await
            .map_err(|e| TargetError::CleanUp(e.to_string()));
        running().retain(|i| *i != id);
        removed
    }
}
