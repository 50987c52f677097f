//! The command line: argument parsing and wiring, nothing the library
//! should own.
//!
//! `condwrite [--target NAME,...] [FILTER]` runs the catalog on the chosen
//! targets. Each target × scenario is a libtest-mimic trial, so `--list`,
//! name filters, `--exact`, `--skip` and the cargo-test-like lines work as in
//! `cargo test`; after the trials the matrix and the reasons of every
//! non-pass cell are printed. `condwrite serve` runs the reference server on
//! its own, `condwrite report` merges and renders results, `condwrite
//! targets` lists targets for a CI matrix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};
use libtest_mimic::{Arguments, Failed, FormatSetting, Trial};

use crate::catalog::{Catalog, Scenario};
use crate::engine;
use crate::model::Verdict;
use crate::reference::{self, Fault};
use crate::report::{CellResult, Report, ScenarioInfo, TargetInfo};
use crate::store::Health;
use crate::target::{self, LiveTarget, TargetSpec, Targets};

const ABOUT: &str = "Checks whether S3-compatible stores really honour conditional writes \
(If-None-Match / If-Match) and prints a compatibility matrix.";

const HELP_TEMPLATE: &str =
    "{name} {version}\n{about}\n\n{usage-heading} {usage}\n\n{all-args}{after-help}";

const AFTER_HELP: &str = "\
Verdicts: pass (as AWS documents), deviates (safe, answers differently), unsupported
(refuses the conditional request, changes nothing), unsafe (condition ignored or
violated), error (could not judge), info (a property recorded, never a failure).
The exit status is non-zero when a cell is unsafe or error, and with --strict also
when one deviates or is unsupported; with --baseline only when a cell got worse.

Examples:
  condwrite                                   run the catalog on the embedded server
  condwrite --target embedded,embedded-racy   two targets side by side
  condwrite --target 'embedded-*' race        only the race scenarios, on the fault profiles
  condwrite --list                            list the trials without running them
  condwrite list --format markdown            the catalog as a docs page
  condwrite serve --port 9000                 a strict local S3 to develop against
  condwrite --target minio --json m.json --baseline old.json   fail only on regressions
  condwrite report a.json b.json --markdown r.md --html r.html --junit junit.xml
  condwrite targets --json 'minio*'           targets for a CI matrix";

/// The exit code of the signal being handled (130 SIGINT, 143 SIGTERM), or 0.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// Exit status for bad input (a malformed file, an unknown target).
const EXIT_USAGE: u8 = 2;
/// Exit status of a failed run, as `cargo test`'s.
const EXIT_FAILED: u8 = 101;

#[derive(Parser, Debug)]
#[command(name = "condwrite", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Targets to check: names from targets.toml, comma-separated or
    /// repeated; `*` patterns select several [default: embedded]
    #[arg(long = "target", value_name = "NAME[,NAME...]", action = ArgAction::Append)]
    targets: Vec<String>,

    /// The targets file [default: ./targets.toml if present, else the built-in one]
    #[arg(long, value_name = "FILE", global = true)]
    targets_file: Option<PathBuf>,

    /// A folder of suite files to run instead of the built-in catalog
    #[arg(long, value_name = "DIR", global = true)]
    suites: Option<PathBuf>,

    /// Also write the results as JSON to PATH
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Fail the run also when a cell deviates or is unsupported
    #[arg(long)]
    strict: bool,

    /// Compare with an earlier `--json` result: list improvements and
    /// regressions, and fail only on a regression (a cell that got worse)
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,

    /// Give every request this long, on every target (overrides each
    /// target's request_timeout_s)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout: Option<u64>,

    /// Trust this CA (a PEM file) for HTTPS endpoints, besides the system's
    /// (overrides each target's ca_file)
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,

    #[command(flatten)]
    test: Arguments,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the embedded reference S3 server on its own until Ctrl-C
    Serve {
        /// Port on 127.0.0.1 (0 picks a free one); with --nodes, one port
        /// per node, comma-separated (nodes without one pick a free port)
        #[arg(
            long,
            value_name = "PORT[,PORT...]",
            value_delimiter = ',',
            default_value = "9000"
        )]
        port: Vec<u16>,
        /// Break one rule on purpose (repeatable); README lists the faults,
        /// and an unknown name prints them
        #[arg(long = "fault", value_name = "FAULT")]
        faults: Vec<String>,
        /// Serve one store on this many ports, like the nodes of a cluster
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
        nodes: u16,
    },
    /// Merge `--json` results of separate runs and render them
    Report {
        /// Result files written by `condwrite --json`
        #[arg(value_name = "IN.json", required = true)]
        inputs: Vec<PathBuf>,
        /// Write the merged matrix as Markdown (summary, matrix, legend, reasons)
        #[arg(long, value_name = "PATH")]
        markdown: Option<PathBuf>,
        /// Write one self-contained HTML page; each cell opens its reason,
        /// evidence and a curl repro
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
        /// Write JUnit XML: a test case per cell, unsafe and error as failures
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
        /// Write the merged result as JSON
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Compare with an earlier result; exit 101 only on a regression
        #[arg(long, value_name = "PATH")]
        baseline: Option<PathBuf>,
    },
    /// List the targets of the targets file (for a CI matrix)
    Targets {
        /// Only targets whose name matches (`*` patterns, comma lists)
        #[arg(value_name = "PATTERN")]
        pattern: Option<String>,
        /// A JSON array of {name, kind, description, version}
        #[arg(long)]
        json: bool,
    },
    /// Print the scenario catalog: id, title, operation, AWS reference
    List {
        /// `text` for a terminal, `markdown` for a docs page
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ListFormat {
    Text,
    Markdown,
}

/// Restores the default SIGPIPE action so `condwrite --list | head` ends
/// quietly instead of panicking on a closed pipe.
fn reset_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread exists; setting a
    // signal disposition to its default is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// The program: parses `std::env::args` and runs.
pub fn main() -> ExitCode {
    reset_sigpipe();
    let command = Cli::command()
        .about(ABOUT)
        .long_about(ABOUT)
        .help_template(HELP_TEMPLATE)
        .after_help(AFTER_HELP);
    let matches = command.get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        Some(Command::Serve {
            ref port,
            ref faults,
            nodes,
        }) => serve(&runtime, port, faults, nodes.into()),
        Some(Command::List { format }) => list(cli.suites.as_deref(), format),
        Some(Command::Report {
            ref inputs,
            ref markdown,
            ref html,
            ref junit,
            ref json,
            ref baseline,
        }) => report(
            inputs,
            Outputs {
                markdown: markdown.as_deref(),
                html: html.as_deref(),
                junit: junit.as_deref(),
                json: json.as_deref(),
            },
            baseline.as_deref(),
        ),
        Some(Command::Targets { ref pattern, json }) => {
            list_targets(cli.targets_file.as_deref(), pattern.as_deref(), json)
        }
        None => check(&runtime, cli),
    }
}

fn serve(
    runtime: &tokio::runtime::Runtime,
    ports: &[u16],
    faults: &[String],
    nodes: usize,
) -> ExitCode {
    if ports.len() > nodes {
        return usage_error(format!(
            "{} ports for {nodes} node(s): give --nodes {} or fewer ports",
            ports.len(),
            ports.len()
        ));
    }
    let faults = match faults
        .iter()
        .map(|f| f.parse::<Fault>())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(f) => f,
        Err(e) => return usage_error(e),
    };
    runtime.block_on(async {
        let options = reference::Options {
            faults: faults.clone(),
            access_key: target::EMBEDDED_ACCESS_KEY.into(),
            secret_key: target::EMBEDDED_SECRET_KEY.into(),
            nodes,
            anonymous: false,
        };
        let server = match reference::start_on(options, ports).await {
            Ok(s) => s,
            Err(e) => {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                return usage_error(format!(
                    "cannot listen on 127.0.0.1 port {}: {e}; pick another port with --port (0 picks a free one)",
                    list.join(", ")
                ));
            }
        };
        let fault_list = if faults.is_empty() {
            "none (AWS semantics)".to_owned()
        } else {
            faults
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "condwrite reference S3 server listening on {}",
            server.urls().join(", ")
        );
        println!("  region us-east-1, path-style addressing, in memory");
        println!(
            "  credentials: access key {}, secret key {} (the built-in local pair)",
            target::EMBEDDED_ACCESS_KEY,
            target::EMBEDDED_SECRET_KEY
        );
        println!("  faults: {fault_list}");
        println!("Press Ctrl-C to stop.");
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        server.stop();
        eprintln!("stopped");
        ExitCode::SUCCESS
    })
}

fn load_catalog(suites: Option<&Path>) -> Result<Catalog, String> {
    match suites {
        Some(dir) => Catalog::load_dir(dir),
        None => Catalog::builtin(),
    }
    .map_err(|e| {
        format!("{e} (fix the suite file; the format is described at the top of suites/put.toml)")
    })
}

fn list(suites: Option<&Path>, format: ListFormat) -> ExitCode {
    let catalog = match load_catalog(suites) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let text = match format {
        ListFormat::Text => catalog.to_text(),
        ListFormat::Markdown => catalog.to_markdown(),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

/// Where `condwrite report` writes.
struct Outputs<'a> {
    markdown: Option<&'a Path>,
    html: Option<&'a Path>,
    junit: Option<&'a Path>,
    json: Option<&'a Path>,
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Prints the comparison with a baseline; whether a cell got worse.
fn print_comparison(report: &Report, baseline: &Report) -> bool {
    let cmp = report.compare(baseline);
    println!();
    for line in cmp.lines() {
        println!("{line}");
    }
    !cmp.regressions.is_empty()
}

fn report(inputs: &[PathBuf], outputs: Outputs<'_>, baseline: Option<&Path>) -> ExitCode {
    let mut runs = Vec::new();
    for path in inputs {
        match Report::load(path) {
            Ok(r) => runs.push(r),
            Err(e) => return usage_error(e),
        }
    }
    let baseline = match baseline.map(Report::load).transpose() {
        Ok(b) => b,
        Err(e) => return usage_error(e),
    };
    let merged = Report::merge(runs);
    print_report(&merged, false);
    let writes = [
        (outputs.markdown, merged.to_markdown()),
        (outputs.html, merged.to_html()),
        (outputs.junit, merged.to_junit()),
        (outputs.json, merged.to_json() + "\n"),
    ];
    for (path, text) in writes {
        if let Some(path) = path {
            if let Err(e) = write_file(path, &text) {
                return usage_error(e);
            }
            println!("wrote {}", path.display());
        }
    }
    match baseline {
        Some(b) if print_comparison(&merged, &b) => ExitCode::from(EXIT_FAILED),
        _ => ExitCode::SUCCESS,
    }
}

fn list_targets(file: Option<&Path>, pattern: Option<&str>, json: bool) -> ExitCode {
    let targets = match load_targets(file) {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let selected = match pattern {
        Some(p) => match targets.select(&[p.to_owned()]) {
            Ok(s) => s,
            Err(e) => return usage_error(e),
        },
        None => targets.targets.clone(),
    };
    if json {
        let list: Vec<TargetInfo> = selected.iter().map(|t| t.info(None)).collect();
        println!(
            "{}",
            serde_json::to_string(&list).expect("target infos serialize")
        );
    } else {
        let width = selected.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &selected {
            println!(
                "{:width$}  {:9}  {}",
                t.name,
                t.kind.to_string(),
                t.description
            );
        }
    }
    ExitCode::SUCCESS
}

fn load_targets(file: Option<&Path>) -> Result<Targets, String> {
    match file {
        Some(path) => Targets::load(path),
        None if Path::new("targets.toml").is_file() => Targets::load(Path::new("targets.toml")),
        None => Ok(Targets::builtin()),
    }
}

fn check(runtime: &tokio::runtime::Runtime, cli: Cli) -> ExitCode {
    let catalog = match load_catalog(cli.suites.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let targets = match load_targets(cli.targets_file.as_deref()) {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    // Read the baseline before anything starts: a bad path is bad input.
    let baseline = match cli.baseline.as_deref().map(Report::load).transpose() {
        Ok(b) => b,
        Err(e) => return usage_error(e),
    };
    let run_at = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    let wanted = if cli.targets.is_empty() {
        vec!["embedded".to_owned()]
    } else {
        cli.targets.clone()
    };
    let mut selected = match targets.select(&wanted) {
        Ok(s) => s,
        Err(e) => {
            return usage_error(format!(
                "{e}\n  (add a `[[target]]` to targets.toml or pick one of these)"
            ))
        }
    };

    if let Some(ca) = &cli.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            return usage_error(format!("--ca-file {}: {e}", ca.display()));
        }
    }
    for spec in &mut selected {
        if let Some(t) = cli.request_timeout {
            spec.client.request_timeout = std::time::Duration::from_secs(t);
        }
        if let Some(ca) = &cli.ca_file {
            spec.client.ca_file = Some(ca.clone());
        }
    }
    let trial_name = |s: &Scenario| s.id.clone();
    // Start only targets with at least one trial the filter keeps.
    let needed: Vec<&TargetSpec> = if cli.test.list {
        Vec::new()
    } else {
        selected
            .iter()
            .filter(|t| {
                catalog.scenarios.iter().any(|s| {
                    let probe = Trial::test(trial_name(s), || Ok(())).with_kind(&t.name);
                    !cli.test.is_filtered_out(&probe)
                })
            })
            .collect()
    };
    let matrix_to_stderr = cli.test.format == Some(FormatSetting::Json);
    // Ctrl-C or SIGTERM (what CI sends when it cancels a job): stop every
    // server and remove every container this run started, then leave as a
    // shell would (130 for SIGINT, 143 for SIGTERM).
    runtime.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let (name, code) = tokio::select! {
            _ = int.recv() => ("interrupted", 130),
            _ = term.recv() => ("terminated", 143),
        };
        SIGNALLED.store(code, Ordering::SeqCst);
        let done = target::interrupt().await;
        eprintln!("\n{name}: {done}");
        std::process::exit(code);
    });
    let live: Vec<(String, Arc<Result<LiveTarget, String>>)> = runtime.block_on(async {
        let mut out = Vec::new();
        // One Docker check for all container targets, said once.
        let containers: Vec<&str> = needed
            .iter()
            .filter(|t| t.kind == target::Kind::Container)
            .map(|t| t.name.as_str())
            .collect();
        let docker = if containers.is_empty() {
            Ok(())
        } else {
            target::container::docker_preflight().await
        };
        if let Err(e) = &docker {
            eprintln!(
                "error: {e} (target{} {} marked error)",
                if containers.len() == 1 { "" } else { "s" },
                containers.join(", ")
            );
        }
        for spec in &needed {
            if let (target::Kind::Container, Err(e)) = (spec.kind, &docker) {
                out.push((spec.name.clone(), Arc::new(Err(e.clone()))));
                continue;
            }
            if !matrix_to_stderr {
                eprintln!("    Starting target {} ({})", spec.name, spec.kind);
            }
            let started = LiveTarget::start(spec).await;
            if let Err(e) = &started {
                eprintln!("warning: target {} did not start: {e}", spec.name);
            }
            out.push((spec.name.clone(), Arc::new(started)));
        }
        out
    });

    // A target that stops answering is said once, when it does.
    let watched: Vec<(String, Arc<Health>)> = live
        .iter()
        .filter_map(|(n, l)| {
            l.as_ref()
                .as_ref()
                .ok()
                .map(|l| (n.clone(), l.store().health().clone()))
        })
        .collect();
    runtime.spawn(async move {
        let mut said = vec![false; watched.len()];
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            for (i, (name, health)) in watched.iter().enumerate() {
                if let (false, Some(why)) = (said[i], health.stalled()) {
                    eprintln!("warning: target {name}: {why}; its remaining cells end as error");
                    said[i] = true;
                }
            }
        }
    });
    let results: Arc<Mutex<Vec<CellResult>>> = Arc::default();
    let prefix = format!("{}/", target::fresh_name("run"));
    let strict = cli.strict;
    let mut trials = Vec::new();
    for spec in &selected {
        let live_target = live
            .iter()
            .find(|(n, _)| *n == spec.name)
            .map(|(_, l)| l.clone());
        for scenario in &catalog.scenarios {
            let scenario = scenario.clone();
            let results = results.clone();
            let handle = runtime.handle().clone();
            let live_target = live_target.clone();
            let target_name = spec.name.clone();
            let prefix = prefix.clone();
            trials.push(
                Trial::test(trial_name(&scenario), move || {
                    let cell = match live_target.as_deref() {
                        Some(Ok(live)) => {
                            let prefix = format!("{}{prefix}{}/", live.prefix(), scenario.id);
                            let j = handle.block_on(engine::run(&live.site(), &scenario, &prefix));
                            CellResult {
                                target: target_name,
                                scenario: scenario.id.clone(),
                                verdict: j.verdict,
                                reason: j.reason,
                                duration_ms: j.duration_ms,
                                evidence: j.evidence,
                            }
                        }
                        Some(Err(e)) => CellResult {
                            target: target_name,
                            scenario: scenario.id.clone(),
                            verdict: Verdict::Error,
                            reason: format!("the target did not start: {e}"),
                            duration_ms: 0,
                            evidence: Vec::new(),
                        },
                        None => return Err(Failed::from("the target was not started")),
                    };
                    let outcome = if cell.verdict.fails(strict) {
                        let reason = match live_target.as_deref() {
                            Some(Err(_)) => {
                                "the target did not start (the reason is printed after the matrix)"
                            }
                            _ => cell.reason.as_str(),
                        };
                        Err(Failed::from(format!(
                            "{} on {}: {reason}",
                            cell.verdict, cell.target
                        )))
                    } else {
                        Ok(())
                    };
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(cell);
                    outcome
                })
                .with_kind(&spec.name),
            );
        }
    }

    let conclusion = libtest_mimic::run(&cli.test, trials);
    if SIGNALLED.load(Ordering::SeqCst) != 0 {
        // The signal handler is cleaning up and ends the process with the
        // signal's exit code; the trials that ended early prove nothing.
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    let endpoints: Vec<(String, String)> = live
        .iter()
        .filter_map(|(n, l)| match l.as_ref() {
            Ok(l) => Some((n.clone(), l.settings.endpoint_url.clone())),
            Err(_) => None,
        })
        .collect();
    let mut cleanup_failed = false;
    runtime.block_on(async {
        for (name, live) in live {
            if let Ok(live) = Arc::into_inner(live).expect("every trial has finished") {
                match live.stop().await {
                    Ok(None) => {}
                    Ok(Some(note)) => eprintln!("note: cleaning up target {name}: {note}"),
                    Err(e) => {
                        cleanup_failed = true;
                        eprintln!("warning: cleaning up target {name} failed: {e}");
                    }
                }
            }
        }
    });
    if cli.test.list {
        return conclusion.exit_code();
    }

    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let order = |c: &CellResult| {
        (
            selected.iter().position(|t| t.name == c.target),
            catalog.scenarios.iter().position(|s| s.id == c.scenario),
        )
    };
    results.sort_by_key(order);
    let report = Report {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_at,
        scenarios: catalog
            .scenarios
            .iter()
            .map(|s| ScenarioInfo {
                id: s.id.clone(),
                title: s.title.clone(),
                operation: s.operation.clone(),
                aws_doc: s.aws_doc.clone(),
                informational: s.informational,
            })
            .collect(),
        targets: selected
            .iter()
            .map(|t| {
                let url = endpoints.iter().find(|(n, _)| *n == t.name);
                t.info(url.map(|(_, u)| u.as_str()))
            })
            .collect(),
        results,
    };
    print_report(&report, matrix_to_stderr);
    if let Some(path) = &cli.json {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if let Some(baseline) = &baseline {
        // With a baseline only a cell that got worse fails the run.
        let regressed = print_comparison(&report, baseline);
        if regressed {
            return ExitCode::from(EXIT_FAILED);
        }
        return if cleanup_failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if cleanup_failed && !conclusion.has_failed() {
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}

fn print_report(report: &Report, to_stderr: bool) {
    if report.results.is_empty() {
        return;
    }
    let mut text = String::new();
    text.push('\n');
    text.push_str(&report.matrix(None));
    text.push('\n');
    let reasons = report.reasons();
    if !reasons.is_empty() {
        text.push_str("\nreasons:\n");
        for r in reasons {
            text.push_str("  ");
            text.push_str(&r);
            text.push('\n');
        }
    }
    text.push('\n');
    text.push_str(&report.summary());
    text.push('\n');
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}
