//! The subcommands other than the run itself: `serve` (the reference
//! server on its own), `list` (the catalog), `report` (merge and render
//! saved results) and `targets` (for a CI matrix).

use crate::profiles::Profiles;
use crate::runner::target_info;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::output::{exit, print_comparison, print_report, write_file, Usage};
use super::{load_catalog, load_targets, ListFormat, ReportArgs, ServeArgs};
use crate::reference::{self, Fault};
use crate::report::{Report, TargetInfo};
use crate::targets;

pub(super) fn serve(
    runtime: &tokio::runtime::Runtime,
    args: &ServeArgs,
) -> Result<ExitCode, Usage> {
    let (ports, faults, nodes) = (&args.port, &args.faults, usize::from(args.nodes));
    if ports.len() > nodes {
        return Err(Usage(format!(
            "{} ports for {nodes} node(s): give --nodes {} or fewer ports",
            ports.len(),
            ports.len()
        )));
    }
    let faults = faults
        .iter()
        .map(|f| f.parse::<Fault>())
        .collect::<Result<Vec<_>, _>>()?;
    runtime.block_on(async {
        let options = reference::Options {
            faults: faults.clone(),
            access_key: targets::EMBEDDED_ACCESS_KEY.into(),
            secret_key: targets::EMBEDDED_SECRET_KEY.into(),
            nodes,
            anonymous: false,
        };
        let server = reference::start_on(options, ports).await.map_err(|e| {
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            Usage(format!(
                "cannot listen on 127.0.0.1 port {}: {e}; pick another port with --port (0 picks a free one)",
                list.join(", ")
            ))
        })?;
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
            targets::EMBEDDED_ACCESS_KEY,
            targets::EMBEDDED_SECRET_KEY
        );
        println!("  faults: {fault_list}");
        println!("Press Ctrl-C to stop.");
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        server.stop();
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn list(suites: Option<&Path>, format: ListFormat) -> Result<ExitCode, Usage> {
    let catalog = load_catalog(suites)?;
    let text = match format {
        ListFormat::Text => catalog.to_text(),
        ListFormat::Markdown => catalog.to_markdown(),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn report(args: &ReportArgs) -> Result<ExitCode, Usage> {
    let mut runs = Vec::new();
    for path in &args.inputs {
        runs.push(Report::load(path)?);
    }
    let baseline = args.baseline.as_deref().map(Report::load).transpose()?;
    let merged = Report::merge(runs).with_applications(&Profiles::shipped()?.all());
    print_report(&merged, false);
    let writes = [
        (&args.markdown, merged.to_markdown()),
        (&args.html, merged.to_html()),
        (&args.junit, merged.to_junit()),
        (&args.json, merged.to_json() + "\n"),
    ];
    for (path, text) in writes {
        if let Some(path) = path {
            write_file(path, &text)?;
            println!("wrote {}", path.display());
        }
    }
    // Merging and rendering fail on nothing but a regression.
    let cmp = baseline.map(|b| merged.compare(&b));
    if let Some(cmp) = &cmp {
        print_comparison(cmp);
    }
    Ok(exit(merged.run_status(
        false,
        Some(&cmp.unwrap_or_default()),
        false,
    )))
}

pub(super) fn list_targets(
    file: Option<&Path>,
    pattern: Option<&str>,
    json: bool,
) -> Result<ExitCode, Usage> {
    let targets = load_targets(file)?;
    let selected = match pattern {
        Some(p) => targets.select(&[p.to_owned()])?,
        None => targets.targets.clone(),
    };
    if json {
        let list: Vec<TargetInfo> = selected.iter().map(|t| target_info(t, None)).collect();
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
    Ok(ExitCode::SUCCESS)
}
