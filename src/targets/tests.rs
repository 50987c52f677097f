use super::parse::port_placeholders;
use super::*;

#[test]
fn the_shipped_targets_have_one_embedded_target_per_fault() {
    let t = Targets::builtin();
    assert_eq!(t.targets[0].name, "embedded");
    assert!(t.targets[0].faults.is_empty());
    for f in Fault::ALL {
        let name = format!("embedded-{f}");
        let spec = t
            .targets
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(spec.faults, vec![f]);
    }
}

#[test]
fn selection_accepts_lists_and_patterns_and_names_the_known_ones() {
    let t = Targets::builtin();
    let s = t.select(&["embedded,embedded-racy".into()]).unwrap();
    assert_eq!(s.len(), 2);
    let s = t.select(&["embedded-*".into()]).unwrap();
    // One target per fault, and the two-node `embedded-cluster`.
    assert_eq!(s.len(), Fault::ALL.len() + 1);
    let err = t.select(&["nope".into()]).unwrap_err().to_string();
    assert!(err.contains("unknown target `nope`"), "{err}");
    assert!(err.contains("embedded-racy"), "{err}");
}

#[test]
fn nodes_and_endpoints_are_checked() {
    let parse = |body: &str| {
        Targets::parse(
            "t.toml",
            &format!("[[target]]\nname = \"x\"\n{body}"),
            Path::new("."),
        )
    };
    let t = parse("kind = \"embedded\"\nnodes = 3\n").unwrap();
    assert_eq!(t.targets[0].nodes, 3);
    let err = parse("kind = \"embedded\"\nnodes = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nodes = 0`: expected 1 to 8"), "{err}");
    let err = parse("kind = \"process\"\ncommand = [\"x\"]\nnodes = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nodes` does not apply"), "{err}");
    let t = parse("kind = \"endpoint\"\nendpoints = [\"http://a:1\", \"http://b:2\"]\n").unwrap();
    let e = t.targets[0].endpoint.as_ref().unwrap();
    assert_eq!(e.url.as_deref(), Some("http://a:1"));
    assert_eq!(e.more_urls, vec!["http://b:2".to_owned()]);
    let err = parse("kind = \"endpoint\"\nurl = \"http://a:1\"\nendpoints = [\"http://b:2\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn process_ports_and_endpoints_are_checked() {
    let parse = |body: &str| {
        Targets::parse(
            "t.toml",
            &format!("[[target]]\nname = \"x\"\nkind = \"process\"\naccess_key = \"a\"\nsecret_key = \"b\"\n{body}"),
            Path::new("."),
        )
    };
    let t = parse("command = [\"s\", \"{port}\"]\n").unwrap();
    let p = t.targets[0].process.as_ref().unwrap();
    assert_eq!(p.ports, 1);
    assert_eq!(p.endpoints, vec!["http://127.0.0.1:{port}".to_owned()]);
    let t = parse("command = [\"s\", \"{port1}\"]\nports = 2\nendpoints = [\"http://127.0.0.1:{port}\", \"http://127.0.0.1:{port1}\"]\n").unwrap();
    assert_eq!(t.targets[0].process.as_ref().unwrap().endpoints.len(), 2);
    let err = parse("command = [\"s\", \"{port2}\"]\nports = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`{port2}` needs `ports = 3` or more"), "{err}");
    let err = parse("command = [\"s\"]\nready_file = \"{dir}/{port1}\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`{port1}` needs `ports = 2`"), "{err}");
    let err = parse("command = [\"s\"]\nports = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ports = 0`: expected 1 to 16"), "{err}");
    let err = parse("command = [\"s\"]\nendpoints = []\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`endpoints` is empty"), "{err}");
    assert_eq!(
        port_placeholders("a{port}b{port12}c{portx}{port"),
        vec![0, 12]
    );
}

#[test]
fn an_unknown_fault_is_reported_with_its_place() {
    let err = Targets::parse(
        "t.toml",
        "[[target]]\nname = \"x\"\nkind = \"embedded\"\nfaults = [\"slow\"]\n",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("t.toml:4:"), "{err}");
    assert!(err.contains("unknown fault `slow`"), "{err}");
}

#[test]
fn an_unknown_field_is_refused_at_every_level_with_its_place() {
    let entry = "[[target]]\nname = \"x\"\nkind = \"embedded\"\n";
    for (text, line) in [
        (format!("colour = 1\n{entry}"), 1),
        (format!("{entry}colour = 1\n"), 4),
    ] {
        let err = Targets::parse("t.toml", &text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        assert!(err.starts_with(&format!("t.toml:{line}:")), "{err}");
    }
}

#[test]
fn an_unknown_kind_says_which_kinds_exist() {
    let err = Targets::parse(
        "t.toml",
        "[[target]]\nname = \"x\"\nkind = \"ftp\"\n",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("t.toml:3:"), "{err}");
    assert!(err.contains("embedded") && err.contains("process"), "{err}");
}

#[test]
fn fields_of_another_kind_are_refused() {
    let err = Targets::parse(
        "t.toml",
        "[[target]]\nname = \"x\"\nkind = \"embedded\"\ncommand = [\"x\"]\n",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`command` does not apply to kind = \"embedded\""),
        "{err}"
    );
    let err = Targets::parse(
        "t.toml",
        "[[target]]\nname = \"x\"\nkind = \"endpoint\"\nurl = \"http://h\"\naccess_key_env = \"A\"\n",
        Path::new("."),
    )
    .unwrap_err().to_string();
    assert!(
        err.contains("both `access_key_env` and `secret_key_env`"),
        "{err}"
    );
}

#[test]
fn glob_patterns_match_as_expected() {
    assert!(glob_match("minio*", "minio-2024"));
    assert!(glob_match("*racy", "embedded-racy"));
    assert!(glob_match("e*-*y", "embedded-racy"));
    assert!(!glob_match("minio*", "embedded"));
    assert!(!glob_match("ab*ba", "aba"));
}

#[test]
fn max_concurrency_is_any_kind_s_and_bounded() {
    let parse = |body: &str| {
        Targets::parse(
            "t.toml",
            &format!("[[target]]\nname = \"x\"\n{body}"),
            Path::new("."),
        )
    };
    let t = parse("kind = \"embedded\"\nmax_concurrency = 3\n").unwrap();
    assert_eq!(t.targets[0].max_concurrency, Some(3));
    let t = parse("kind = \"process\"\ncommand = [\"x\"]\naccess_key = \"a\"\nsecret_key = \"b\"\nmax_concurrency = 1\n").unwrap();
    assert_eq!(t.targets[0].max_concurrency, Some(1));
    let t = parse("kind = \"endpoint\"\nurl = \"http://a:1\"\n").unwrap();
    assert_eq!(t.targets[0].max_concurrency, None);
    for n in [0, 257] {
        let err = parse(&format!("kind = \"embedded\"\nmax_concurrency = {n}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`max_concurrency = {n}`: expected 1 to 256")),
            "{err}"
        );
    }
    // The shipped servers that cannot take parallel scenarios say so.
    let shipped = Targets::builtin();
    for name in ["moto", "s3rver", "rclone", "rclone-container"] {
        let t = shipped.targets.iter().find(|t| t.name == name).unwrap();
        assert_eq!(t.max_concurrency, Some(1), "{name}");
    }
}

#[test]
fn a_family_is_its_newest_release_and_one_target_per_release() {
    let parse = |body: &str| {
        Targets::parse(
            "t.toml",
            &format!("[[target]]\nname = \"s\"\nkind = \"process\"\naccess_key = \"a\"\nsecret_key = \"b\"\n{body}"),
            Path::new("/r"),
        )
    };
    let t = parse(
        "releases = [\"4.10\", \"4.9\", \"4.44\"]\nrelease_notes = { \"4.9\" = \"old\" }\n\
         version = \"S {release}\"\ndescription = \"S {release} server\"\n\
         command = [\"{root}/.servers/s@{release}/bin/s\", \"{port}\"]\n\
         env = { BIN = \"{release}\" }\nrequires = [\"{root}/.servers/s@{release}/bin/s\"]\n\
         install = \"scripts/install-servers s@{release}\"\n",
    )
    .unwrap();
    assert_eq!(t.names(), ["s", "s@4.9", "s@4.10", "s@4.44"]);
    let newest = &t.targets[0];
    assert_eq!(newest.family.as_deref(), Some("s"));
    assert_eq!(newest.release.as_deref(), Some("4.44"));
    assert_eq!(newest.version.as_deref(), Some("S 4.44"));
    let p = newest.process.as_ref().unwrap();
    assert_eq!(p.command[0], "{root}/.servers/s@4.44/bin/s");
    assert_eq!(p.env["BIN"], "4.44");
    assert_eq!(p.requires, ["{root}/.servers/s@4.44/bin/s"]);
    assert_eq!(p.install.as_deref(), Some("scripts/install-servers s@4.44"));
    let old = &t.targets[1];
    assert_eq!(old.description, "S 4.9 server (old)");
    assert_eq!(old.release.as_deref(), Some("4.9"));
    assert_eq!(
        (old.family.as_deref(), old.release.as_deref()),
        (Some("s"), Some("4.9"))
    );
    // `s@*` is the releases, not the plain name.
    let all = t.select(&["s@*".into()]).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|s| s.name.contains('@')));
}

#[test]
fn a_family_is_checked() {
    let parse = |body: &str| {
        Targets::parse(
            "t.toml",
            &format!("[[target]]\nname = \"s\"\nkind = \"process\"\naccess_key = \"a\"\nsecret_key = \"b\"\ncommand = [\"x\"]\n{body}"),
            Path::new("/r"),
        )
        .unwrap_err()
        .to_string()
    };
    let err = parse("install = \"scripts/install-servers s@{release}\"\n");
    assert!(
        err.contains("`{release}` stands for a release, and this entry has no `releases = [...]`"),
        "{err}"
    );
    assert!(err.starts_with("t.toml:1:1: "), "{err}");
    let err = parse("releases = []\n");
    assert!(err.contains("`releases` is empty"), "{err}");
    assert!(err.starts_with("t.toml:7:12: "), "{err}");
    let err = parse("releases = [\"1.0\", \"1.0\"]\n");
    assert!(err.contains("release `1.0` is listed twice"), "{err}");
    let err = parse("releases = [\"1 0\"]\n");
    assert!(err.contains("invalid release `1 0`"), "{err}");
    let err = parse("releases = [\"*\"]\n");
    assert!(err.contains("invalid release `*`"), "{err}");
    let err = parse("releases = [\"1.0\"]\nrelease_notes = { \"2.0\" = \"x\" }\n");
    assert!(
        err.contains("`release_notes` names `2.0`, which is not in `releases`"),
        "{err}"
    );
    let err = parse("release_notes = { \"2.0\" = \"x\" }\n");
    assert!(
        err.contains("`release_notes` needs `releases = [...]`"),
        "{err}"
    );
}

#[test]
fn the_shipped_families_list_their_releases_newest_under_the_plain_name() {
    let t = Targets::builtin();
    for family in ["seaweedfs", "swift", "minio"] {
        let plain = t
            .targets
            .iter()
            .find(|s| s.name == family)
            .unwrap_or_else(|| panic!("no {family}"));
        let releases = t.select(&[format!("{family}@*")]).unwrap();
        assert!(releases.len() >= 4, "{family}: {} releases", releases.len());
        let newest = releases.last().unwrap();
        assert_eq!(plain.release, newest.release, "{family}");
        assert_eq!(plain.version, newest.version, "{family}");
        for r in &releases {
            assert_eq!(r.family.as_deref(), Some(family));
            assert_eq!(
                r.name,
                format!("{family}@{}", r.release.as_deref().unwrap())
            );
        }
    }
}

/// A local server's target must carry the server's own key pair: without
/// it the start could not sign a request. Refused when the file is read.
#[test]
fn process_and_container_targets_need_both_keys_when_the_file_is_read() {
    for (kind, body) in [
        ("process", "command = [\"x\"]\n"),
        (
            "container",
            "image = \"minio/minio\"\ntag = \"x\"\ncontainer_port = 9000\n",
        ),
    ] {
        for keys in ["", "access_key = \"a\"\n", "secret_key = \"b\"\n"] {
            let text = format!("[[target]]\nname = \"x\"\nkind = \"{kind}\"\n{body}{keys}");
            let err = Targets::parse("t.toml", &text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "a {kind} target needs `access_key` and `secret_key`"
                )),
                "{kind} with {keys:?}: {err}"
            );
        }
        let text = format!(
            "[[target]]\nname = \"x\"\nkind = \"{kind}\"\n{body}access_key = \"a\"\nsecret_key = \"b\"\n"
        );
        let t = Targets::parse("t.toml", &text, Path::new(".")).unwrap();
        assert_eq!(t.targets.len(), 1);
    }
}
