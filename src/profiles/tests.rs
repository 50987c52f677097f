//! Unit tests of the profiles: the shipped files, every parse error with
//! its place, and every branch of the roll-up.

use super::*;

fn catalog() -> Catalog {
    Catalog::builtin().expect("the built-in catalog parses")
}

const ONE: &str = r#"
[profile]
id = "app"
name = "An app"
versions = "1.0"
uses = "create-only PUT"
source = "https://example.com/app"

[[requirement]]
scenario = "put-if-none-match-existing-key"
needs = "a held lock is refused"
source = "https://example.com/app#L1"
if_unsafe = "two holders"
if_refused = "an error"
tolerates = ["deviates"]

[[requirement]]
scenario = "race-if-none-match"
needs = "one winner"
source = "https://example.com/app#L2"
if_unsafe = "two winners"
if_refused = "an error"
"#;

fn one() -> Profile {
    parse_profile("app.toml", ONE, &catalog()).unwrap()
}

#[test]
fn the_shipped_profiles_parse_and_cite_their_sources() {
    let profiles = Profiles::builtin(&catalog()).unwrap();
    assert!(profiles.profiles.len() >= 6, "{}", profiles.profiles.len());
    for p in &profiles.profiles {
        assert!(p.source.starts_with("https://"), "{}", p.id);
        assert!(!p.requirements.is_empty(), "{}", p.id);
        for r in &p.requirements {
            assert!(
                r.source.starts_with("https://"),
                "{} / {}",
                p.id,
                r.scenario
            );
        }
    }
}

#[test]
fn mistakes_are_reported_with_their_place() {
    let c = catalog();
    let bad = ONE.replace("race-if-none-match", "race-if-nothing");
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert_eq!((e.line, e.file.as_str()), (18, "app.toml"), "{e}");
    assert!(
        e.message.contains("unknown scenario `race-if-nothing`"),
        "{e}"
    );

    let bad = ONE.replace(r#"tolerates = ["deviates"]"#, r#"tolerates = ["unsafe"]"#);
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(e.message.contains("cannot tolerate `unsafe`"), "{e}");
    assert_eq!(e.line, 15, "{e}");

    let bad = ONE.replace(
        "needs = \"one winner\"",
        "needs = \"one winner\"\nneed = \"typo\"",
    );
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(e.message.contains("unknown field `need`"), "{e}");
    assert!(e.line > 0, "{e}");

    let bad = ONE.replace("https://example.com/app#L2", "example.com/app#L2");
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(e.message.contains("expected an https:// link"), "{e}");

    let bad = ONE.replace("race-if-none-match", "put-if-none-match-existing-key");
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(e.message.contains("required twice"), "{e}");

    let bad = ONE.replace("id = \"app\"", "id = \"App!\"");
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(e.message.contains("profile id `App!`"), "{e}");

    let bad = ONE.replace(
        "if_refused = \"an error\"\ntolerates",
        "if_refused = \" \"\ntolerates",
    );
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(e.message.contains("empty `if_refused`"), "{e}");

    let e = Profiles::from_files(
        [
            ("a.toml".to_owned(), ONE.to_owned()),
            ("b.toml".to_owned(), ONE.to_owned()),
        ],
        &c,
    )
    .unwrap_err();
    assert!(e.message.contains("duplicate profile id `app`"), "{e}");
}

fn judged(cells: &[(&'static str, Verdict)]) -> AppVerdict {
    let p = one();
    judge(&p, "t", |s| {
        cells
            .iter()
            .find(|(id, _)| *id == s)
            .map(|(_, v)| (*v, "why"))
    })
}

#[test]
fn the_roll_up_follows_the_cells_and_the_tolerances() {
    use Verdict::*;
    let race = "race-if-none-match";
    let lock = "put-if-none-match-existing-key";
    let v = judged(&[(lock, Pass), (race, Pass)]);
    assert_eq!((v.fitness, v.findings.len()), (Fitness::Safe, 0));
    let v = judged(&[(lock, Info), (race, Pass)]);
    assert_eq!(v.fitness, Fitness::Safe);
    // A deviation the application tolerates is a caveat, and says so.
    let v = judged(&[(lock, Deviates), (race, Pass)]);
    assert_eq!(v.fitness, Fitness::SafeWithCaveats);
    assert!(
        v.findings[0].contains("which it tolerates"),
        "{:?}",
        v.findings
    );
    // One it does not tolerate: the application does not work.
    let v = judged(&[(lock, Pass), (race, Deviates)]);
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    assert!(v.findings[0].contains("an error"), "{:?}", v.findings);
    let v = judged(&[(lock, Unsupported), (race, Pass)]);
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    // Unsafe says what breaks, and wins over everything.
    let v = judged(&[(lock, Unsafe), (race, Error)]);
    assert_eq!(v.fitness, Fitness::Unsafe);
    assert!(v.findings[0].contains("two holders"), "{:?}", v.findings);
    assert_eq!(v.findings.len(), 2);
    // An error or a cell that did not run: unknown, unless something is
    // known to fail.
    let v = judged(&[(lock, Error), (race, Pass)]);
    assert_eq!(v.fitness, Fitness::Unknown);
    let v = judged(&[(lock, Pass)]);
    assert_eq!(v.fitness, Fitness::Unknown);
    assert!(v.findings[0].contains("not run"), "{:?}", v.findings);
    let v = judged(&[(lock, Error), (race, Unsupported)]);
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    // Only safe and safe-with-caveats pass a gate.
    assert!(!Fitness::Safe.fails() && !Fitness::SafeWithCaveats.fails());
    assert!(Fitness::Unknown.fails() && Fitness::DoesNotWork.fails() && Fitness::Unsafe.fails());
}

#[test]
fn selection_names_the_known_profiles() {
    let c = catalog();
    let all = Profiles::builtin(&c).unwrap();
    assert_eq!(all.select(&[]).unwrap().len(), all.profiles.len());
    let two = all
        .select(&["terraform,delta-rs".into(), "terraform".into()])
        .unwrap();
    let ids: Vec<&str> = two.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["terraform", "delta-rs"]);
    let e = all.select(&["terraforn".into()]).unwrap_err();
    assert!(
        e.starts_with("unknown profile `terraforn`; known profiles: "),
        "{e}"
    );
    assert!(e.contains("terraform"), "{e}");
    let needed = scenarios_needed(&two);
    assert!(needed.contains("race-if-none-match"));
    assert!(!needed.contains("cas-counter"));
}
