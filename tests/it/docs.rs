//! The documentation stays true to the code: the generated pages of docs/
//! are what `condwrite docs` writes now, and every relative link of the
//! README and of docs/ leads to a file of the repository.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_generated_pages_are_up_to_date() {
    let pages = condwrite::cli::docs::pages().expect("the pages generate");
    assert!(pages.len() >= 3);
    let mut stale = Vec::new();
    for (name, text) in &pages {
        let path = root().join("docs").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if &committed != text {
            stale.push(name.to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated pages in docs/: {stale:?}; run `cargo run -- docs docs` and commit them"
    );
}

#[test]
fn the_docs_command_writes_the_pages() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .arg("docs")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, text) in condwrite::cli::docs::pages().unwrap() {
        let written = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(written, text, "{name}");
    }
    // Every fault has its line, every scenario its row.
    let faults = std::fs::read_to_string(dir.join("faults.md")).unwrap();
    for f in condwrite::reference::Fault::ALL {
        assert!(faults.contains(&format!("| `{f}` |")), "{f}");
    }
    let steps = std::fs::read_to_string(dir.join("steps.md")).unwrap();
    for k in condwrite::catalog::STEP_KINDS {
        assert!(steps.contains(&format!("| `{}` |", k.word)), "{}", k.word);
    }
    let scenarios = std::fs::read_to_string(dir.join("scenarios.md")).unwrap();
    for s in condwrite::catalog::Catalog::builtin().unwrap().scenarios {
        assert!(scenarios.contains(&format!("| `{}` |", s.id)), "{}", s.id);
    }
    let apps = std::fs::read_to_string(dir.join("applications.md")).unwrap();
    let catalog = condwrite::catalog::Catalog::builtin().unwrap();
    for p in condwrite::profiles::Profiles::builtin(&catalog)
        .unwrap()
        .profiles
    {
        assert!(apps.contains(&format!("(`{}`)", p.id)), "{}", p.id);
        for r in &p.requirements {
            assert!(apps.contains(&r.source), "{} / {}", p.id, r.scenario);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // A folder that cannot be made is one line, exit 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_condwrite"))
        .args(["docs", "/dev/null/docs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot create /dev/null/docs"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The `](target)` links of a Markdown text that are not URLs or anchors.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let link = &rest[..end];
        if !link.contains("://") && !link.starts_with('#') && !link.starts_with("mailto:") {
            out.push(link.split('#').next().unwrap_or(link).to_owned());
        }
    }
    out
}

#[test]
fn every_link_of_the_readme_and_the_docs_leads_to_a_file() {
    let mut files: Vec<PathBuf> = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut broken = Vec::new();
    let mut n = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for link in relative_links(&text) {
            n += 1;
            let target = file.parent().unwrap().join(&link);
            if !target.exists() {
                broken.push(format!("{}: {link}", file.display()));
            }
        }
    }
    assert!(n > 10, "only {n} links found");
    assert!(broken.is_empty(), "broken links: {broken:?}");
}
