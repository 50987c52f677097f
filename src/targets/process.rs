//! Local server processes: started from a command template on a free
//! loopback port and a fresh folder, waited for, and stopped by process id.
//!
//! Each server runs in a process group of its own, so that stopping it stops
//! whatever it started too; every group is registered so that Ctrl-C (see
//! [`stop_all`]) and a dropped guard never leave a server behind.

use super::TargetError;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a process target is started and when it counts as ready.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    /// Program and arguments; `{port}` (and `{port1}`, `{port2}` … when
    /// `ports` > 1), `{dir}` and `{root}` are filled in.
    pub command: Vec<String>,
    /// How many free loopback ports to pick: `{port}`, `{port1}` …
    pub ports: usize,
    /// The server's S3 endpoints, templated like the command (default:
    /// `http://127.0.0.1:{port}`); several make a cluster, and racers are
    /// spread over them. Each must be `http://127.0.0.1:<port>`.
    pub endpoints: Vec<String>,
    /// Extra environment, templated the same way.
    pub env: BTreeMap<String, String>,
    /// HTTP path that must answer (any status below 500); `None`: the port
    /// accepting connections is enough.
    pub ready_path: Option<String>,
    /// Text the readiness answer must contain, if any.
    pub ready_body: Option<String>,
    /// A file (templated) that must exist before the server counts as
    /// ready: a wrapper that sets the server up after it listens (a layout,
    /// a key) writes it when done.
    pub ready_file: Option<String>,
    /// Files (templated with `{root}`) the server needs, such as the binary a
    /// wrapper script runs: a missing one means the server is not installed.
    pub requires: Vec<String>,
    /// How long to wait for readiness.
    pub start_timeout: Duration,
    /// How long the server may take to stop before it is killed.
    pub stop_timeout: Duration,
    /// The command that installs the server, for messages.
    pub install: Option<String>,
}

/// Process groups (and folders) of servers that are running, for
/// [`stop_all`].
static RUNNING: Mutex<Vec<(i32, PathBuf)>> = Mutex::new(Vec::new());

/// Set once [`stop_all`] has run: the run is ending.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn running() -> std::sync::MutexGuard<'static, Vec<(i32, PathBuf)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a process group that is not a server (an application check)
/// and its scratch folder, so that an interrupted run kills and removes
/// them with the servers.
pub fn track(pgid: i32, dir: PathBuf) {
    running().push((pgid, dir));
}

/// Forgets a group [`track`] registered, once it has ended.
pub fn untrack(pgid: i32) {
    running().retain(|(g, _)| *g != pgid);
}

/// Kills every server process group still running and removes its folder
/// (for Ctrl-C, where no destructor runs).
pub fn stop_all() {
    // A server whose start is under way sees this once it is registered,
    // and stops itself: none is started after the others were killed.
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    for (pgid, dir) in running().drain(..) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // the group was created by us for the server.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A running server process; stopping it (or dropping it) ends its group and
/// removes its folder.
pub struct ServerProcess {
    child: Child,
    pgid: i32,
    dir: PathBuf,
    log: PathBuf,
    urls: Vec<String>,
    /// Its ports, reserved until it is gone.
    _ports: Reserved,
}

/// Where servers' ports are picked: below the range the kernel takes the
/// source ports of outgoing connections from (32768–60999 on Linux), so
/// that no connection of another server can take a port between its pick
/// and the server's bind (SeaweedFS's servers, sixteen at once, lost a
/// port that way); and low enough that a port + 10000, where SeaweedFS
/// puts a gRPC port it is not told, is still a port.
const PORT_RANGE: std::ops::Range<u16> = 10000..20000;

/// Ports handed to servers of this run that are still running: never
/// handed out twice, though a server may not have bound them yet.
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserved() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    RESERVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` distinct free ports on 127.0.0.1 in [`PORT_RANGE`], none handed to
/// another running server of this run: the first free ones from a place
/// that differs per process and call (so that two runs side by side rarely
/// meet), each bound to check it is free, then released and reserved
/// until [`release_ports`].
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let mut reserved = reserved();
    let len = PORT_RANGE.len();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as usize
        ^ (std::process::id() as usize).wrapping_mul(7919);
    let mut listeners = Vec::with_capacity(n);
    for i in 0..len {
        if listeners.len() == n {
            break;
        }
        let port = PORT_RANGE.start + ((seed + i) % len) as u16;
        if reserved.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            listeners.push(l);
        }
    }
    if listeners.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!(
                "only {} of the {n} ports needed are free in {}-{}",
                listeners.len(),
                PORT_RANGE.start,
                PORT_RANGE.end - 1
            ),
        ));
    }
    let ports = listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<std::io::Result<Vec<u16>>>()?;
    reserved.extend(&ports);
    Ok(ports)
}

/// Gives a stopped server's ports back.
fn release_ports(ports: &[u16]) {
    let mut reserved = reserved();
    for p in ports {
        reserved.remove(p);
    }
}

/// Ports from [`free_ports`], given back when dropped: when the server
/// that had them is gone, or its start failed.
struct Reserved(Vec<u16>);

impl Drop for Reserved {
    fn drop(&mut self) {
        release_ports(&self.0);
    }
}

/// Fills `{port}`, `{port1}` …, `{dir}` and `{root}` into a template.
fn fill(template: &str, ports: &[u16], dir: &Path, root: &Path) -> String {
    let mut s = template.to_owned();
    for (i, p) in ports.iter().enumerate() {
        if i == 0 {
            s = s.replace("{port}", &p.to_string());
        }
        s = s.replace(&format!("{{port{i}}}"), &p.to_string());
    }
    s.replace("{dir}", &dir.display().to_string())
        .replace("{root}", &root.display().to_string())
}

/// The port of a filled `http://127.0.0.1:<port>` endpoint.
fn loopback_port(url: &str) -> Option<u16> {
    url.strip_prefix("http://127.0.0.1:")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// Whether `program` can be run: a path that exists, or a name on PATH.
fn findable(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

/// Whether a log line looks like the reason a server stopped: a glog
/// fatal line (`F1203 19:21:05…`), a panic, or an error line.
fn states_a_cause(line: &str) -> bool {
    let l = line.trim_start();
    let glog_fatal = l.starts_with('F') && l[1..].chars().take(4).all(|c| c.is_ascii_digit());
    glog_fatal
        || [
            "panic:", "fatal", "Fatal", "FATAL", "Error:", "ERROR", "error:",
        ]
        .iter()
        .any(|w| l.contains(w))
}

/// The last `n` lines of the server's log, one string; when none of them
/// says why it stopped (a Go stack trace), the last line that does comes
/// first.
fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    let tail = &lines[start..];
    if tail.is_empty() {
        return "(the log is empty)".into();
    }
    let cause = (!tail.iter().any(|l| states_a_cause(l)))
        .then(|| lines[..start].iter().rev().find(|l| states_a_cause(l)))
        .flatten();
    match cause {
        Some(c) => format!("{} | … | {}", c.trim(), tail.join(" | ")),
        None => tail.join(" | "),
    }
}

/// One readiness probe: the port accepts, and (if asked) the path answers
/// below 500 with the wanted text.
pub(crate) fn probe(port: u16, path: Option<&str>, body: Option<&str>) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(1 << 20).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (100..500).contains(&status) && body.is_none_or(|b| answer.contains(b))
}

impl ServerProcess {
    /// Starts the server and waits until it is ready. `name` is the target's,
    /// `root` the folder of the targets file.
    pub async fn start(name: &str, spec: &ProcessSpec, root: &Path) -> Result<Self, TargetError> {
        let install_hint = spec
            .install
            .as_deref()
            .map(|i| format!("; install it with `{i}`"))
            .unwrap_or_default();
        let reserved = Reserved(
            free_ports(spec.ports)
                .map_err(|e| TargetError::Other(format!("no free port on 127.0.0.1: {e}")))?,
        );
        let ports = reserved.0.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "condwrite-{name}-{}-{}",
            std::process::id(),
            now.as_nanos()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| TargetError::Other(format!("cannot create {}: {e}", dir.display())))?;
        let log = dir.join("server.log");
        let args: Vec<String> = spec
            .command
            .iter()
            .map(|a| fill(a, &ports, &dir, root))
            .collect();
        let urls: Vec<String> = spec
            .endpoints
            .iter()
            .map(|u| fill(u, &ports, &dir, root))
            .collect();
        let ready_file = spec
            .ready_file
            .as_ref()
            .map(|f| PathBuf::from(fill(f, &ports, &dir, root)));
        let endpoint_ports = urls
            .iter()
            .map(|u| loopback_port(u).ok_or(u))
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|u| {
                let _ = std::fs::remove_dir_all(&dir);
                TargetError::Other(format!("endpoint `{u}` is not http://127.0.0.1:<port>: a process target serves on loopback"))
            })?;
        let missing = std::iter::once(args[0].clone())
            .filter(|program| !findable(program))
            .chain(
                spec.requires
                    .iter()
                    .map(|f| fill(f, &ports, &dir, root))
                    .filter(|f| !Path::new(f).exists()),
            )
            .next();
        if let Some(missing) = missing {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(TargetError::NotInstalled(format!(
                "`{missing}` not found: {name} is not installed{install_hint}"
            )));
        }
        let log_file = std::fs::File::create(&log)
            .map_err(|e| TargetError::Other(format!("cannot create {}: {e}", log.display())))?;
        let mut command = Command::new(&args[0]);
        command
            .args(&args[1..])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .map_err(|e| TargetError::Other(e.to_string()))?,
            )
            .stderr(log_file)
            .process_group(0);
        for (k, v) in &spec.env {
            command.env(k, fill(v, &ports, &dir, root));
        }
        let child = command.spawn().map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "; make it executable (chmod +x)".to_owned()
                }
                _ => install_hint.clone(),
            };
            TargetError::Other(format!("cannot start `{}`: {e}{hint}", args[0]))
        })?;
        let pgid = child.id() as i32;
        running().push((pgid, dir.clone()));
        let stopping = STOPPING.load(std::sync::atomic::Ordering::SeqCst);
        let mut server = Self {
            child,
            pgid,
            dir,
            log,
            urls,
            _ports: reserved,
        };
        if stopping {
            // Dropped: killed, its folder removed.
            return Err(TargetError::Other(
                "the run is stopping (interrupted)".into(),
            ));
        }
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let tail = log_tail(&server.log, 8);
                return Err(TargetError::ExitedEarly(format!(
                    "the server exited early ({status}); last log lines: {tail}"
                )));
            }
            let (ports, path, body) = (
                endpoint_ports.clone(),
                spec.ready_path.clone(),
                spec.ready_body.clone(),
            );
            // Every endpoint must be ready: a cluster's gateways each answer.
            let file = ready_file.clone();
            let ready = tokio::task::spawn_blocking(move || {
                file.as_ref().is_none_or(|f| f.exists())
                    && ports
                        .iter()
                        .all(|p| probe(*p, path.as_deref(), body.as_deref()))
            })
            .await
            .unwrap_or(false);
            if ready {
                return Ok(server);
            }
            if started.elapsed() > spec.start_timeout {
                let tail = log_tail(&server.log, 8);
                return Err(TargetError::NeverReady(format!(
                    "the server was not ready after {} s; last log lines: {tail}",
                    spec.start_timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its S3 endpoints, the first one first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signals the server's own process group.
        unsafe {
            libc::kill(-self.pgid, sig);
        }
    }

    /// Stops the server: SIGTERM to the process it started (so a wrapper
    /// script can stop its daemons in order), up to `grace` for it to exit,
    /// then SIGKILL to the whole group.
    pub async fn stop(mut self, grace: Duration) {
        // SAFETY: signals the server's own leading process.
        unsafe {
            libc::kill(self.pgid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drop kills what is left and removes the folder.
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        running().retain(|(p, _)| *p != self.pgid);
        let _ = std::fs::remove_dir_all(&self.dir);
        // The ports are given back when `_ports` drops, after the kill.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_port_the_folder_and_the_root() {
        let ports = [
            1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010,
        ];
        let filled = fill(
            "{port} {port0} {port1} {port10} {dir} {root}",
            &ports,
            Path::new("/d"),
            Path::new("/r"),
        );
        assert_eq!(filled, "1000 1000 1001 1010 /d /r");
        assert_eq!(loopback_port("http://127.0.0.1:1234/"), Some(1234));
        assert_eq!(loopback_port("http://0.0.0.0:1234"), None);
    }

    #[test]
    fn a_log_tail_without_the_cause_leads_with_it() {
        let dir = std::env::temp_dir().join(format!("condwrite-log-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("server.log");
        let mut text = String::from("starting\nF1203 19:21:05.826032 s3.go:633 listen tcp 127.0.0.1:9101: bind: address already in use\ngoroutine 1 [running]:\n");
        for i in 0..10 {
            text.push_str(&format!("\tgithub.com/x/y.go:{i} +0x12a\n"));
        }
        std::fs::write(&log, &text).unwrap();
        let tail = log_tail(&log, 8);
        assert!(
            tail.starts_with("F1203 19:21:05.826032 s3.go:633 listen tcp"),
            "{tail}"
        );
        assert!(tail.ends_with("github.com/x/y.go:9 +0x12a"), "{tail}");
        // A tail that says why is left as it is.
        std::fs::write(&log, "a\nb\nError: bad config\n").unwrap();
        assert_eq!(log_tail(&log, 8), "a | b | Error: bad config");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn free_ports_are_distinct_below_the_ephemeral_range_and_never_handed_out_twice() {
        let ports = free_ports(8).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        assert!(ports.iter().all(|p| PORT_RANGE.contains(p)), "{ports:?}");
        // Until they are released, no other call gets them, though nothing
        // listens on them.
        let more: Vec<u16> = (0..50).flat_map(|_| free_ports(10).unwrap()).collect();
        assert!(more.iter().all(|p| !ports.contains(p)), "{more:?}");
        let mut all = more.clone();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 500);
        release_ports(&more);
        release_ports(&ports);
        assert!(reserved().iter().all(|p| !ports.contains(p)));
    }
}
