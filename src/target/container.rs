//! Container targets: an image started through testcontainers (MinIO
//! releases and other S3-compatible images), its port mapped to loopback,
//! removed when the run ends.
//!
//! Where no Docker engine answers, [`docker_preflight`] says so in one line,
//! quickly, before anything is started.

use std::collections::BTreeMap;
use std::time::Duration;

use testcontainers_modules::testcontainers::core::client::docker_client_instance;
use testcontainers_modules::testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};

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
    /// How long to wait for readiness (including the image pull).
    pub start_timeout: Duration,
}

impl ContainerSpec {
    /// A MinIO release: `server /data` on port 9000, root credentials from
    /// the target's pair, ready when it prints its `API:` line.
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
            ready_log: Some("API:".into()),
            start_timeout: Duration::from_secs(180),
        }
    }
}

/// Checks that a Docker engine answers; the error is one line that says
/// what is missing and how to fix it.
pub async fn docker_preflight() -> Result<(), String> {
    let fix = "container targets need a running Docker engine: start Docker (or point DOCKER_HOST at one) and run again";
    let ping = async {
        let docker = docker_client_instance().await.map_err(|e| e.to_string())?;
        docker.ping().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(10), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("no Docker engine answers ({e}); {fix}")),
        Err(_) => Err(format!(
            "the Docker engine did not answer within 10 s; {fix}"
        )),
    }
}

/// A running container.
pub struct RunningContainer {
    container: ContainerAsync<GenericImage>,
    port: u16,
}

impl RunningContainer {
    /// Pulls (if needed) and starts the image, and waits until it is ready.
    pub async fn start(spec: &ContainerSpec) -> Result<Self, String> {
        let mut image = GenericImage::new(spec.image.clone(), spec.tag.clone())
            .with_exposed_port(spec.port.tcp());
        if let Some(text) = &spec.ready_log {
            image = image.with_wait_for(WaitFor::message_on_stdout(text.clone()));
        }
        let mut request = image
            .with_cmd(spec.args.clone())
            .with_startup_timeout(spec.start_timeout);
        for (k, v) in &spec.env {
            request = request.with_env_var(k.clone(), v.clone());
        }
        let container = request
            .start()
            .await
            .map_err(|e| format!("starting {}:{} failed: {e}", spec.image, spec.tag))?;
        let port = match container.get_host_port_ipv4(spec.port.tcp()).await {
            Ok(p) => p,
            Err(e) => {
                let _ = container.rm().await;
                return Err(format!("no host port for {}: {e}", spec.port));
            }
        };
        Ok(Self { container, port })
    }

    /// The loopback port the S3 port is mapped to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Removes the container.
    pub async fn stop(self) -> Result<(), String> {
        self.container.rm().await.map_err(|e| e.to_string())
    }
}
