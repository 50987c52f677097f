//! The release matrix (scripts/release-matrix, which scripts/reports and
//! the GitHub workflow run): each release in a run of its own, merged, and
//! the release where a verdict changed named, with releases ordered as
//! versions. Run on a family written here (condwrite's own server, one
//! release with a fault), on real adjacent pairs (Swift 2.35.5 / 2.36.0,
//! SeaweedFS 4.44 / 4.45), and on releases that are not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A folder of the test's own under target/tmp, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/tmp").join(format!("releases-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// scripts/release-matrix with this build of condwrite.
fn release_matrix(args: &[&str]) -> Output {
    Command::new(root().join("scripts/release-matrix"))
        .args(args)
        .env("CONDWRITE", env!("CARGO_BIN_EXE_condwrite"))
        .stdin(Stdio::null())
        .output()
        .expect("scripts/release-matrix runs")
}

/// Whether the releases `names` (`family@release`) are installed, each
/// with its marker file under `.servers/`: a test that needs them fails
/// under CI=true when they are not, and elsewhere says why it skips.
fn installed(names: &[&str], marker: &str) -> bool {
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !root().join(format!(".servers/{n}/{marker}")).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let install = format!(
        "scripts/install-servers {}",
        names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{missing:?} not installed: run {install}"
    );
    eprintln!("skipping: {missing:?} not installed ({install})");
    false
}

/// A family `ref` of two releases of condwrite's own server, 1.9 with a
/// fault (it ignores If-None-Match) and 1.10 without: a name sort would put
/// 1.10 first.
fn reference_family(dir: &Path) -> PathBuf {
    let wrapper = dir.join("serve-release");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# serve-release RELEASE PORT\ncase \"$1\" in\n  1.9) exec {exe} serve --port \"$2\" --fault ignore-if-none-match ;;\n  *) exec {exe} serve --port \"$2\" ;;\nesac\n",
            exe = env!("CARGO_BIN_EXE_condwrite")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("targets.toml");
    std::fs::write(
        &file,
        "[[target]]\nname = \"ref\"\nkind = \"process\"\nreleases = [\"1.10\", \"1.9\"]\n\
         description = \"condwrite serve as release {release}\"\n\
         command = [\"{root}/serve-release\", \"{release}\", \"{port}\"]\nready_path = \"/\"\n\
         access_key = \"condwrite\"\nsecret_key = \"condwrite-local-secret\"\n\n\
         [[target]]\nname = \"gone\"\nkind = \"process\"\nreleases = [\"2.0\", \"2.1\"]\n\
         command = [\"{root}/serve-release\", \"{release}\", \"{port}\"]\n\
         requires = [\"{root}/not-installed/{release}/bin/server\"]\n\
         install = \"scripts/install-servers gone@{release}\"\n\
         access_key = \"condwrite\"\nsecret_key = \"condwrite-local-secret\"\n",
    )
    .unwrap();
    file
}

#[test]
fn the_matrix_names_the_release_where_a_verdict_changed_ordered_as_versions() {
    let dir = scratch("reference");
    let file = reference_family(&dir);
    let out_dir = dir.join("out");
    let out = release_matrix(&[
        "--out",
        out_dir.to_str().unwrap(),
        "--targets-file",
        file.to_str().unwrap(),
        "--parallel",
        "2",
        "ref@*",
        "--",
        "put-if-none-match",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ref / put-if-none-match-existing-key: changed in 1.10 (unsafe → pass)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("put-if-none-match-new-key: changed"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(out_dir.join("releases.md")).unwrap();
    assert!(md.contains("## Releases of ref"), "{md}");
    assert!(
        md.contains("| scenario | 1.9 | 1.10 | changed in |"),
        "{md}"
    );
    assert!(
        md.contains("| `put-if-none-match-existing-key` | ❌ unsafe | **✅ pass** | 1.10 |"),
        "{md}"
    );
    // Each release's own run, the merge, and a JUnit file for CI.
    for f in [
        "ref@1.9.json",
        "ref@1.10.json",
        "releases.json",
        "releases.html",
        "junit.xml",
    ] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("releases.json")).unwrap())
            .unwrap();
    let releases: Vec<&str> = merged["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["release"].as_str().unwrap())
        .collect();
    assert_eq!(releases.len(), 2);
    assert!(releases.contains(&"1.9") && releases.contains(&"1.10"));
}

#[test]
fn a_release_that_is_not_installed_fails_the_matrix_naming_it() {
    let dir = scratch("missing");
    let file = reference_family(&dir);
    let out = release_matrix(&[
        "--out",
        dir.join("out").to_str().unwrap(),
        "--targets-file",
        file.to_str().unwrap(),
        "gone@*",
        "--",
        "put-if-none-match-new-key",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for r in ["2.0", "2.1"] {
        assert!(
            stderr.contains(&format!("gone@{r}: the target did not start"))
                && stderr.contains(&format!(
                    "install it with `scripts/install-servers gone@{r}`"
                )),
            "{stderr}"
        );
    }
    // Bad input is 2, with a line saying what is wrong.
    let out = release_matrix(&["--targets-file", file.to_str().unwrap(), "nope@*"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown target `nope@*`"));
    let out = release_matrix(&["--parallel", "0", "ref@*"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The adjacent pair of real Swift releases the tests pin: conditional PUTs
/// arrive in 2.36.0 (and are not atomic there).
#[test]
fn the_swift_pair_shows_conditional_puts_arriving_in_2_36_0() {
    if !installed(&["swift@2.35.5", "swift@2.36.0"], "bin/swift-proxy-server") {
        return;
    }
    let dir = scratch("swift");
    let out = release_matrix(&[
        "--out",
        dir.to_str().unwrap(),
        "swift@2.36.0,swift@2.35.5",
        "--",
        "put-if-none-match",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for line in [
        "swift / put-if-none-match-new-key: changed in 2.36.0 (unsupported → pass)",
        "swift / put-if-none-match-existing-key: changed in 2.36.0 (unsupported → pass)",
    ] {
        assert!(stderr.contains(line), "{stderr}");
    }
    let md = std::fs::read_to_string(dir.join("releases.md")).unwrap();
    assert!(
        md.contains("| scenario | 2.35.5 | 2.36.0 | changed in |"),
        "{md}"
    );
}

/// The adjacent pair of SeaweedFS releases where GET and HEAD on a missing
/// key stopped failing conditions (seaweedfs#10984, fixed in 4.45).
#[test]
fn the_seaweedfs_pair_shows_the_missing_key_fix_arriving_in_4_45() {
    if !installed(&["seaweedfs@4.44", "seaweedfs@4.45"], "bin/weed") {
        return;
    }
    let dir = scratch("seaweedfs");
    let out = release_matrix(&[
        "--out",
        dir.to_str().unwrap(),
        "--parallel",
        "2",
        "seaweedfs@4.45,seaweedfs@4.44",
        "--",
        "missing-key",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for id in [
        "get-if-match-missing-key",
        "head-if-match-missing-key",
        "get-if-unmodified-since-missing-key",
    ] {
        let line = format!("seaweedfs / {id}: changed in 4.45 (deviates → pass)");
        assert!(stderr.contains(&line), "{stderr}");
    }
    // The write-side twins did not change: only the reads were fixed.
    assert!(
        !stderr.contains("put-if-match-missing-key: changed"),
        "{stderr}"
    );
}
