//! Why a target could not be read, started or stopped: one variant per
//! kind of failure, for code to decide on (a test that skips a server not
//! installed here, the runner that marks a target's cells). Each carries
//! the message users see, word for word, with what to do next.

/// Why a target could not be started or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The server's program or a file it needs is not installed here (the
    /// message names the install command).
    #[error("{0}")]
    NotInstalled(String),
    /// No Docker engine answers, so no container target can start.
    #[error("{0}")]
    NoDocker(String),
    /// The container's image is not built here (`scripts/build-images`).
    #[error("{0}")]
    NoImage(String),
    /// The server exited before it was ready (with its log's last lines).
    #[error("{0}")]
    ExitedEarly(String),
    /// The server did not get ready in time (with its log's last lines).
    #[error("{0}")]
    NeverReady(String),
    /// The credentials the target names are not there.
    #[error("{0}")]
    MissingCredentials(String),
    /// The endpoint's TLS certificate is not trusted (the message says how
    /// to give its CA).
    #[error("{0}")]
    UntrustedTls(String),
    /// The run's bucket could not be made, or the given one not listed.
    #[error("{0}")]
    BucketSetUp(String),
    /// A file the target names cannot be read.
    #[error("{0}")]
    File(String),
    /// The start panicked (a bug in condwrite: the message has the panic's).
    #[error("{0}")]
    Panicked(String),
    /// Cleaning up or stopping what the run started failed.
    #[error("{0}")]
    CleanUp(String),
    /// A name or pattern that names no target of the targets file.
    #[error("{0}")]
    Unknown(String),
    /// Anything else that kept it from starting (no free port, a program
    /// that cannot be run, an interrupted run).
    #[error("{0}")]
    Other(String),
}

impl TargetError {
    /// Whether this machine lacks what the target needs (its program, a
    /// Docker engine, its image), as opposed to a target that is there and
    /// fails: what a test may skip outside CI.
    pub fn is_missing_here(&self) -> bool {
        matches!(
            self,
            TargetError::NotInstalled(_) | TargetError::NoDocker(_) | TargetError::NoImage(_)
        )
    }

    /// The same kind of failure, with more said after it.
    pub fn and(self, more: impl std::fmt::Display) -> Self {
        let with = |m: String| format!("{m}; {more}");
        match self {
            TargetError::NotInstalled(m) => TargetError::NotInstalled(with(m)),
            TargetError::NoDocker(m) => TargetError::NoDocker(with(m)),
            TargetError::NoImage(m) => TargetError::NoImage(with(m)),
            TargetError::ExitedEarly(m) => TargetError::ExitedEarly(with(m)),
            TargetError::NeverReady(m) => TargetError::NeverReady(with(m)),
            TargetError::MissingCredentials(m) => TargetError::MissingCredentials(with(m)),
            TargetError::UntrustedTls(m) => TargetError::UntrustedTls(with(m)),
            TargetError::BucketSetUp(m) => TargetError::BucketSetUp(with(m)),
            TargetError::File(m) => TargetError::File(with(m)),
            TargetError::Panicked(m) => TargetError::Panicked(with(m)),
            TargetError::CleanUp(m) => TargetError::CleanUp(with(m)),
            TargetError::Unknown(m) => TargetError::Unknown(with(m)),
            TargetError::Other(m) => TargetError::Other(with(m)),
        }
    }
}
