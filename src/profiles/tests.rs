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
            .map(|(_, v)| CellView {
                verdict: *v,
                reason: "why",
                answers: &[],
            })
    })
}

fn answer(text: &str) -> Answered {
    let mut w = text.split(' ');
    Answered {
        status: w.next().and_then(|s| s.parse().ok()),
        code: w.next().map(str::to_owned),
    }
}

#[test]
fn a_deviation_is_a_caveat_only_when_every_refusal_is_one_the_application_handles() {
    let text = ONE.replace(
        "if_unsafe = \"two winners\"",
        "if_unsafe = \"two winners\"\nhandles = [\"412\", \"409\", \"304\"]",
    );
    let p = parse_profile("app.toml", &text, &catalog()).unwrap();
    let race = "race-if-none-match";
    let roll = |answers: &[Answered]| {
        judge(&p, "t", |s| {
            Some(CellView {
                verdict: if s == race {
                    Verdict::Deviates
                } else {
                    Verdict::Pass
                },
                reason: "why",
                answers,
            })
        })
    };
    // Losers answered 409 (and the winner 200): handled.
    let v = roll(&[answer("200"), answer("409 ConditionalRequestConflict")]);
    assert_eq!(v.fitness, Fitness::SafeWithCaveats, "{:?}", v.findings);
    assert!(
        v.findings[0].contains("answering 409 ConditionalRequestConflict, which it handles"),
        "{:?}",
        v.findings
    );
    // One 403 among them: the application gets an error it does not handle.
    let v = roll(&[answer("409"), answer("403 AccessDenied")]);
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    assert!(
        v.findings[0].contains("answering 403 AccessDenied, which it does not handle"),
        "{:?}",
        v.findings
    );
    // A 400 with the right code is not a 412 to an application that reads
    // the status.
    let v = roll(&[answer("400 PreconditionFailed")]);
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    // A deviation with no refusal at all (a missing ETag, a late read) is
    // not one it handles either.
    let v = roll(&[answer("200")]);
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    assert!(!v.findings[0].contains("answering"), "{:?}", v.findings);
    // A profile that handles no answer at all says what the deviation
    // costs it, not which of its answers it does not handle.
    let plain = one();
    let answers = [answer("200"), answer("409")];
    let v = judge(&plain, "t", |s| {
        Some(CellView {
            verdict: if s == race {
                Verdict::Deviates
            } else {
                Verdict::Pass
            },
            reason: "why",
            answers: &answers,
        })
    });
    assert_eq!(v.fitness, Fitness::DoesNotWork);
    assert_eq!(
        v.findings,
        ["race-if-none-match deviates: an error. Needed: one winner (why)"]
    );
}

#[test]
fn a_deviation_can_be_data_loss_for_one_application() {
    let text = ONE.replace(
        "if_unsafe = \"two winners\"",
        "if_unsafe = \"two winners\"\nunsafe_when = [\"deviates\"]",
    );
    let p = parse_profile("app.toml", &text, &catalog()).unwrap();
    let v = judge(&p, "t", |s| {
        Some(CellView {
            verdict: if s == "race-if-none-match" {
                Verdict::Deviates
            } else {
                Verdict::Pass
            },
            reason: "why",
            answers: &[],
        })
    });
    assert_eq!(v.fitness, Fitness::Unsafe);
    assert!(
        v.findings[0].contains("deviates, which for this application is data loss: two winners"),
        "{:?}",
        v.findings
    );
    let clash = ONE.replace(
        "tolerates = [\"deviates\"]",
        "tolerates = [\"deviates\"]\nunsafe_when = [\"deviates\"]",
    );
    let e = parse_profile("app.toml", &clash, &catalog()).unwrap_err();
    assert!(e.message.contains("not one it also tolerates"), "{e}");
}

#[test]
fn answers_an_application_handles_are_parsed_and_matched() {
    let p = |t: &str| AnswerPattern::parse(t);
    assert!(p("412").unwrap().matches(&answer("412 PreconditionFailed")));
    assert!(!p("412").unwrap().matches(&answer("409")));
    let code = p("PreconditionFailed").unwrap();
    assert!(code.matches(&answer("400 PreconditionFailed")));
    assert!(!code.matches(&answer("412")));
    let both = p("409 ConditionalRequestConflict").unwrap();
    assert!(both.matches(&answer("409 ConditionalRequestConflict")));
    assert!(!both.matches(&answer("409 OperationAborted")));
    assert!(!both.matches(&Answered::none()));
    // Each pattern is said as it is written (the applications page lists
    // them).
    for text in [
        "412",
        "PreconditionFailed",
        "409 ConditionalRequestConflict",
    ] {
        assert_eq!(p(text).unwrap().to_string(), text);
    }
    for bad in ["200", "4x2", "412 precondition", "412 A B", "", "lower"] {
        assert!(p(bad).is_err(), "{bad}");
    }
    let c = catalog();
    let bad = ONE.replace("tolerates = [\"deviates\"]", "handles = [\"41\"]");
    let e = parse_profile("app.toml", &bad, &c).unwrap_err();
    assert!(
        e.message.contains("`41` is not an HTTP error status"),
        "{e}"
    );
    let both = ONE.replace(
        "tolerates = [\"deviates\"]",
        "tolerates = [\"deviates\"]\nhandles = [\"409\"]",
    );
    let e = parse_profile("app.toml", &both, &c).unwrap_err();
    assert!(e.message.contains("keep one"), "{e}");
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

#[test]
fn a_run_confirms_misses_or_contradicts_the_inference() {
    let with = |inferred: Fitness, observed: Fitness| verdict_observed(inferred, observed);
    run_confirms(with);
}

fn verdict_observed(inferred: Fitness, observed: Fitness) -> AppVerdict {
    AppVerdict {
        profile: "app".into(),
        target: "t".into(),
        fitness: inferred,
        findings: vec![],
        observed: Some(Observed {
            profile: "app".into(),
            target: "t".into(),
            fitness: observed,
            client: Some("app 1.0".into()),
            summary: "what happened".into(),
            facts: serde_json::Value::Null,
            duration_ms: 1,
        }),
        inferred_for_check: None,
    }
}

fn run_confirms(with: impl Fn(Fitness, Fitness) -> AppVerdict) {
    use Fitness::*;
    assert_eq!(with(Safe, Safe).agreement(), Some(Agreement::Agrees));
    assert_eq!(
        with(SafeWithCaveats, Safe).agreement(),
        Some(Agreement::Agrees)
    );
    // A loss the run did not hit is not a contradiction ...
    assert_eq!(
        with(Unsafe, Safe).agreement(),
        Some(Agreement::NotReproduced)
    );
    assert_eq!(
        with(Unsafe, DoesNotWork).agreement(),
        Some(Agreement::NotReproduced)
    );
    // ... a loss the cells missed, or an application that works where the
    // cells say it does not, is.
    assert_eq!(with(Safe, Unsafe).agreement(), Some(Agreement::Disagrees));
    assert_eq!(
        with(DoesNotWork, Safe).agreement(),
        Some(Agreement::Disagrees)
    );
    assert_eq!(with(Safe, Unknown).agreement(), None);
    assert_eq!(with(Safe, Safe).cell_text(), "safe (confirmed)");
    assert_eq!(with(Unsafe, Safe).cell_text(), "unsafe (ran: safe)");
    assert!(with(Safe, Unsafe)
        .observed_line()
        .unwrap()
        .starts_with("running app 1.0 disagrees"));
    assert!(with(Safe, Unknown)
        .observed_line()
        .unwrap()
        .starts_with("not confirmed"));
}

#[test]
fn a_check_confirms_only_the_requirements_it_covers() {
    // What the check does not exercise cannot be contradicted by it.
    let mut v = verdict_observed(Fitness::DoesNotWork, Fitness::Safe);
    v.inferred_for_check = Some(Fitness::Safe);
    assert_eq!(v.agreement(), Some(Agreement::Agrees));
    assert_eq!(
        v.cell_text(),
        "does not work (ran: safe, as the part it covers)"
    );
    assert!(v
        .observed_line()
        .unwrap()
        .starts_with("confirmed, for the requirements its check covers (safe)"));
    let mut caveat = verdict_observed(Fitness::SafeWithCaveats, Fitness::Safe);
    caveat.inferred_for_check = Some(Fitness::Safe);
    assert_eq!(caveat.cell_text(), "safe with caveats (confirmed)");
    // The part the check covers says the same as the whole: plainly
    // confirmed.
    assert_eq!(
        caveat.observed_line().unwrap(),
        "confirmed by running app 1.0: what happened"
    );
    v.inferred_for_check = Some(Fitness::Unsafe);
    assert_eq!(v.agreement(), Some(Agreement::NotReproduced));
    let bad = format!("{ONE}\n[check]\ncovers = [\"cas-counter\"]\n");
    let e = parse_profile("app.toml", &bad, &catalog()).unwrap_err();
    assert!(
        e.message.contains(
            "check covers `cas-counter`, which is not one of this profile's requirements"
        ),
        "{e}"
    );
    let good = format!("{ONE}\n[check]\ncovers = [\"race-if-none-match\"]\n");
    assert_eq!(
        parse_profile("app.toml", &good, &catalog())
            .unwrap()
            .check_covers,
        ["race-if-none-match"]
    );
}
