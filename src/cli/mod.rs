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

// The command line is where the program speaks.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod check;
mod commands;
pub mod docs;
mod doctor;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use libtest_mimic::Arguments;

use crate::catalog::Catalog;
use crate::targets::Targets;
use check::check;
use commands::{list, list_targets, report, serve};
use output::{or_usage, usage_error, Usage};

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
  condwrite targets --json 'minio@*'          a store's releases, for a CI matrix
  condwrite doctor --target minio --profile terraform   is Terraform's lock safe on minio?
  condwrite bench --target minio --json bench.json      what conditional writes cost there";

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
    Serve(ServeArgs),
    /// Merge `--json` results of separate runs and render them
    Report(ReportArgs),
    /// Can I run these applications on these stores? Runs the scenarios
    /// the application profiles need and prints applications × targets
    Doctor(DoctorArgs),
    /// What conditional writes cost on each target: PUT latency plain vs
    /// If-None-Match vs If-Match, the CAS counter at 1 to 32 workers, races
    Bench(BenchArgs),
    /// Write the generated reference pages (scenarios, faults, targets)
    /// into DIR
    Docs(DocsArgs),
    /// List the targets of the targets file (for a CI matrix)
    Targets(TargetsArgs),
    /// Print the scenario catalog: id, title, operation, AWS reference
    List(ListArgs),
}

/// The arguments of `condwrite serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one); with --nodes, one port
    /// per node, comma-separated (nodes without one pick a free port)
    #[arg(
        long,
        value_name = "PORT[,PORT...]",
        value_delimiter = ',',
        default_value = "9000"
    )]
    pub(super) port: Vec<u16>,
    /// Break one rule on purpose (repeatable); docs/faults.md lists them,
    /// and an unknown name prints them
    #[arg(long = "fault", value_name = "FAULT")]
    pub(super) faults: Vec<String>,
    /// Serve one store on this many ports, like the nodes of a cluster
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub(super) nodes: u16,
}

/// The arguments of `condwrite report`.
#[derive(Args, Debug)]
struct ReportArgs {
    /// Result files written by `condwrite --json`
    #[arg(value_name = "IN.json", required = true)]
    pub(super) inputs: Vec<PathBuf>,
    /// Write the merged matrix as Markdown (summary, matrix, legend, reasons)
    #[arg(long, value_name = "PATH")]
    pub(super) markdown: Option<PathBuf>,
    /// Write one self-contained HTML page; each cell opens its reason,
    /// evidence and a curl repro
    #[arg(long, value_name = "PATH")]
    pub(super) html: Option<PathBuf>,
    /// Write JUnit XML: a test case per cell, unsafe and error as failures
    #[arg(long, value_name = "PATH")]
    pub(super) junit: Option<PathBuf>,
    /// Write the merged result as JSON
    #[arg(long, value_name = "PATH")]
    pub(super) json: Option<PathBuf>,
    /// Compare with an earlier result; exit 101 only on a regression
    #[arg(long, value_name = "PATH")]
    pub(super) baseline: Option<PathBuf>,
}

/// The arguments of `condwrite doctor`.
#[derive(Args, Debug)]
struct DoctorArgs {
    /// Targets to check, as for a run [default: embedded]
    #[arg(long = "target", value_name = "NAME[,NAME...]", action = ArgAction::Append)]
    pub(super) targets: Vec<String>,
    /// Application profiles to check (comma-separated or repeated)
    /// [default: all]
    #[arg(long = "profile", value_name = "ID[,ID...]", action = ArgAction::Append)]
    pub(super) profiles: Vec<String>,
    /// Also write the run, with its applications roll-up, as JSON to PATH
    #[arg(long, value_name = "PATH")]
    pub(super) json: Option<PathBuf>,
    /// Give every request this long, on every target
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) request_timeout: Option<u64>,
    /// Also run each application's real client (Terraform, deltalake,
    /// obstore, …: `scripts/install-apps` installs them) on each target
    /// and set what it did beside the inferred verdict
    #[arg(long)]
    pub(super) confirm: bool,
}

/// The arguments of `condwrite bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Targets to measure, one at a time [default: embedded]
    #[arg(long = "target", value_name = "NAME[,NAME...]", action = ArgAction::Append)]
    pub(super) targets: Vec<String>,
    /// Also write the figures as JSON to PATH (`condwrite report` plots them)
    #[arg(long, value_name = "PATH")]
    pub(super) json: Option<PathBuf>,
    /// Requests per kind of PUT
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub(super) samples: u64,
}

/// The arguments of `condwrite docs`.
#[derive(Args, Debug)]
struct DocsArgs {
    /// The folder to write into (this repository keeps them in docs/)
    #[arg(value_name = "DIR")]
    pub(super) dir: PathBuf,
}

/// The arguments of `condwrite targets`.
#[derive(Args, Debug)]
struct TargetsArgs {
    /// Only targets whose name matches (`*` patterns, comma lists)
    #[arg(value_name = "PATTERN")]
    pub(super) pattern: Option<String>,
    /// A JSON array of {name, kind, description, version}
    #[arg(long)]
    pub(super) json: bool,
}

/// The arguments of `condwrite list`.
#[derive(Args, Debug)]
struct ListArgs {
    /// `text` for a terminal, `markdown` for a docs page
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub(super) format: ListFormat,
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
    let Some(command) = &cli.command else {
        return or_usage(check(&runtime, cli));
    };
    let targets_file = cli.targets_file.as_deref();
    or_usage(match command {
        Command::Serve(a) => serve(&runtime, a),
        Command::Docs(a) => docs::docs(&a.dir),
        Command::Bench(a) => bench::run(&runtime, a, targets_file),
        Command::Doctor(a) => doctor::doctor(&runtime, a, targets_file),
        Command::List(a) => list(cli.suites.as_deref(), a.format),
        Command::Report(a) => report(a),
        Command::Targets(a) => list_targets(targets_file, a.pattern.as_deref(), a.json),
    })
}

fn load_catalog(suites: Option<&Path>) -> Result<Catalog, Usage> {
    match suites {
        Some(dir) => Catalog::load_dir(dir),
        None => Catalog::builtin(),
    }
    .map_err(|e| {
        Usage(format!(
            "{e} (fix the suite file; the format is described at the top of suites/put.toml)"
        ))
    })
}

/// The targets a command runs on: `wanted` (names or `*` patterns; `embedded`
/// when none) from the targets file, with `request_timeout` (seconds) set
/// on every one when given. The error is one line for the user.
fn select_targets(
    file: Option<&Path>,
    wanted: &[String],
    request_timeout: Option<u64>,
) -> Result<Vec<crate::targets::TargetSpec>, Usage> {
    let targets = load_targets(file)?;
    let wanted = if wanted.is_empty() {
        vec!["embedded".to_owned()]
    } else {
        wanted.to_vec()
    };
    let mut selected = targets.select(&wanted).map_err(|e| {
        Usage(format!(
            "{e}\n  (add a `[[target]]` to targets.toml or pick one of these)"
        ))
    })?;
    if let Some(t) = request_timeout {
        for spec in &mut selected {
            spec.client.request_timeout = std::time::Duration::from_secs(t);
        }
    }
    Ok(selected)
}

fn load_targets(file: Option<&Path>) -> Result<Targets, Usage> {
    Ok(match file {
        Some(path) => Targets::load(path)?,
        None if Path::new("targets.toml").is_file() => Targets::load(Path::new("targets.toml"))?,
        None => Targets::builtin(),
    })
}
