//! Compiles the repository's `suites/*.toml` (the catalog) and
//! `profiles/*.toml` (the application profiles) into the binary, so that
//! `condwrite` carries them wherever it is installed. Adding a file needs no
//! code change: cargo re-runs this when either folder changes.

use std::fmt::Write as _;
use std::path::Path;

/// Writes `OUT_DIR/<out>`: `&[(file name, include_str!(path)), …]` for every
/// `*.toml` of `folder`, in name order.
fn embed(folder: &str, out: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{folder}/ folder: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut text = String::from("&[\n");
    for name in &names {
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            text,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    text.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join(out);
    std::fs::write(dest, text).unwrap();
}

fn main() {
    embed("suites", "builtin_suites.rs");
    embed("profiles", "builtin_profiles.rs");
}
