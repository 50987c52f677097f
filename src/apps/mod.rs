//! Application checks: the real client of an application, run against a
//! started target, so that what `condwrite doctor` infers from the cells
//! can be set beside what the application does (`doctor --confirm`).
//!
//! A check is a workload in `apps/<profile id>/check.py`, run by the
//! Python of its own venv (`.servers/apps/<id>`, made by
//! `scripts/install-apps` from the folder's pinned requirements) with the
//! target's endpoint, credentials, bucket and a fresh prefix in its
//! environment. It judges the run by the application's own invariants
//! (every acknowledged commit in the table, one holder of the lock) and
//! prints one JSON line last on stdout: the client it ran, the outcome (one
//! of the roll-up's states), what happened in a sentence, and its counts.
//! A check that cannot run (no venv, no binary, a target over HTTPS with a
//! private CA) is `unknown` with why, never a guess. Everything the
//! workload wrote under its prefix is removed after it, and its scratch
//! folder too; an interrupted run kills its process group.
//!
//! This module prints nothing; the caller says what it returns.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::profiles::{Fitness, Observed};
use crate::store::{ClientSettings, Store};

/// The longest one check may take; the workload is told a little less so
/// that it can stop and say so itself.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// Where the checks and their venvs live: the folder holding `apps/` (the
/// targets file's folder, else the source tree condwrite was built from).
pub fn root(near: &Path) -> PathBuf {
    let here = near.to_path_buf();
    if here.join("apps").is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `profile` has a check in `root`.
pub fn has_check(root: &Path, profile: &str) -> bool {
    root.join("apps").join(profile).join("check.py").is_file()
}

/// The JSON line a workload prints last.
#[derive(Deserialize)]
struct Printed {
    client: Option<String>,
    outcome: String,
    summary: String,
    #[serde(default)]
    facts: serde_json::Value,
}

/// Runs `profile`'s check against `store`'s bucket under `prefix` (which
/// must be unused), then removes what it wrote there.
pub async fn confirm(
    root: &Path,
    profile: &str,
    target: &str,
    settings: &ClientSettings,
    store: &Store,
    prefix: &str,
) -> Observed {
    let started = Instant::now();
    let mut observed = Observed {
        profile: profile.to_owned(),
        target: target.to_owned(),
        fitness: Fitness::Unknown,
        client: None,
        summary: String::new(),
        facts: serde_json::Value::Null,
        duration_ms: 0,
    };
    match run_check(root, profile, settings, store.bucket(), prefix).await {
        Ok(p) => {
            observed.fitness = fitness_of(&p.outcome).unwrap_or(Fitness::Unknown);
            observed.summary = if fitness_of(&p.outcome).is_some() {
                p.summary
            } else {
                format!(
                    "the check printed an outcome `{}` it may not: {}",
                    p.outcome, p.summary
                )
            };
            observed.client = p.client;
            observed.facts = p.facts;
        }
        Err(why) => observed.summary = why,
    }
    // What the workload wrote (a Terraform state, a Delta table) goes.
    if let Err(e) = store.delete_prefix(prefix).await {
        observed
            .summary
            .push_str(&format!(" (removing what it wrote failed: {e})"));
    }
    observed.duration_ms = started.elapsed().as_millis() as u64;
    observed
}

fn fitness_of(outcome: &str) -> Option<Fitness> {
    Some(match outcome {
        "safe" => Fitness::Safe,
        "safe-with-caveats" => Fitness::SafeWithCaveats,
        "unknown" => Fitness::Unknown,
        "does-not-work" => Fitness::DoesNotWork,
        "unsafe" => Fitness::Unsafe,
        _ => return None,
    })
}

/// Runs one application check; the error (it could not be started, it
/// printed no result) is the reason of an `unknown` observation, in words.
async fn run_check(
    root: &Path,
    profile: &str,
    settings: &ClientSettings,
    bucket: &str,
    prefix: &str,
) -> Result<Printed, String> {
    let script = root.join("apps").join(profile).join("check.py");
    if !script.is_file() {
        return Err(format!(
            "no check for {profile}: {} is missing",
            script.display()
        ));
    }
    let python = root.join(".servers/apps").join(profile).join("bin/python");
    if !python.is_file() {
        return Err(format!(
            "the {profile} check is not installed: run scripts/install-apps {profile}"
        ));
    }
    if settings.ca_pem.is_some() {
        return Err(
            "the checks do not take a private CA yet: run them on an endpoint the system trusts"
                .into(),
        );
    }
    let work = std::env::temp_dir().join(crate::targets::fresh_name(&format!(
        "condwrite-app-{profile}"
    )));
    std::fs::create_dir_all(&work)
        .map_err(|e| format!("cannot make a scratch folder {}: {e}", work.display()))?;
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .current_dir(root)
        .env("CONDWRITE_ENDPOINT", &settings.endpoint_url)
        .env("CONDWRITE_REGION", &settings.region)
        .env("CONDWRITE_ACCESS_KEY", &settings.access_key)
        .env("CONDWRITE_SECRET_KEY", &settings.secret_key)
        .env("CONDWRITE_BUCKET", bucket)
        .env("CONDWRITE_PREFIX", prefix)
        .env("CONDWRITE_WORKDIR", &work)
        .env(
            "CONDWRITE_DEADLINE_S",
            (DEADLINE.as_secs() - 15).to_string(),
        )
        // The workload talks to this endpoint only.
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &settings.session_token {
        Some(t) => cmd.env("AWS_SESSION_TOKEN", t),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let work_for_thread = work.clone();
    let ran = tokio::task::spawn_blocking(move || run_bounded(cmd, &work_for_thread))
        .await
        .map_err(|e| format!("the check's thread failed: {e}"));
    let _ = std::fs::remove_dir_all(&work);
    let (status, stdout, stderr) = ran??;
    // No secret is ever printed, whatever a workload wrote.
    let hide = |s: &str| s.replace(settings.secret_key.as_str(), "<redacted>");
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    match last.map(serde_json::from_str::<Printed>) {
        Some(Ok(mut p)) => {
            p.summary = hide(&p.summary);
            Ok(p)
        }
        _ => Err(hide(&format!(
            "the {profile} check ended ({status}) without its result line{}",
            tail(&stderr)
        ))),
    }
}

/// Runs `cmd` to its end or to [`DEADLINE`] (then kills its process
/// group): its exit status, stdout and stderr; the error says why it could
/// not be run, for [`run_check`]'s message.
fn run_bounded(mut cmd: Command, work: &Path) -> Result<(String, String, String), String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let pgid = child.id() as i32;
    crate::targets::process::track(pgid, work.to_path_buf());
    // Readers on their own threads, so a full pipe cannot stall the child.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.to_string(),
            Ok(None) if started.elapsed() > DEADLINE => {
                // SAFETY: kill(2) of the process group the check leads.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                let _ = child.wait();
                crate::targets::process::untrack(pgid);
                return Err(format!(
                    "the check took longer than {} s and was stopped",
                    DEADLINE.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => break format!("unknown status ({e})"),
        }
    };
    // A workload's own children (Terraform's) end with it.
    // SAFETY: as above.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    crate::targets::process::untrack(pgid);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

/// The last lines of a workload's stderr, for a check that failed.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(3);
    format!(": {}", lines[from..].join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_a_check_may_print_is_a_state_of_the_roll_up() {
        for f in [
            Fitness::Safe,
            Fitness::SafeWithCaveats,
            Fitness::Unknown,
            Fitness::DoesNotWork,
            Fitness::Unsafe,
        ] {
            let name = serde_json::to_value(f).unwrap();
            assert_eq!(fitness_of(name.as_str().unwrap()), Some(f));
        }
        assert_eq!(fitness_of("fine"), None);
        assert_eq!(tail("a\n\nb\nc\nd\n"), ": b | c | d");
        assert_eq!(tail(""), "");
    }
}
