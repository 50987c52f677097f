use super::*;

const GOOD: &str = r#"
[[scenario]]
id = "demo"
title = "Demo"
operation = "PutObject"
aws_doc = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"
aws_says = "412"

[[scenario.steps]]
do = "put"
key = "k"
body = "one"
save_as = "v1"

[[scenario.steps]]
do = "put"
key = "k"
body = "two"
if_match = "${v1}"
expect = { status = 200 }
"#;

#[test]
fn an_unknown_field_is_refused_at_every_level_with_its_place() {
    let batch = r#"
[[scenario]]
id = "batch"
title = "Batch"
operation = "DeleteObjects"
aws_doc = "https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html"
aws_says = "per object"

[[scenario.steps]]
do = "put"
key = "a"
body = "x"
save_as = "a"

[[scenario.steps]]
do = "delete_objects"
key = "batch"
objects = [{ key = "a", if_match = "${a}", expect = "deleted" }]
"#;
    let cases = [
        // The file itself.
        (format!("colour = 1\n{GOOD}"), "colour", 1),
        // A scenario.
        (
            GOOD.replace("aws_says", "colour = 1\naws_says"),
            "colour",
            7,
        ),
        // A step.
        (GOOD.replace("body = \"one\"", "colour = 1"), "colour", 12),
        // A step's expectation.
        (
            GOOD.replace("{ status = 200 }", "{ status = 200, colour = 1 }"),
            "colour",
            20,
        ),
        // An object of a DeleteObjects step.
        (
            batch.replace("expect = \"deleted\"", "colour = 1"),
            "colour",
            18,
        ),
    ];
    for (text, field, line) in cases {
        let err = parse_suite("x.toml", &text).unwrap_err();
        assert!(
            err.message.contains(&format!("unknown field `{field}`")),
            "{err}"
        );
        assert_eq!(err.line, line, "{err}\n{text}");
        assert!(
            err.to_string().starts_with(&format!("x.toml:{line}:")),
            "{err}"
        );
    }
    // The batch file itself parses.
    parse_suite("x.toml", batch).unwrap();
}

/// A scenario with `steps` (TOML, `[[scenario.steps]]` tables) after a
/// set-up PUT that saves `v1`.
fn with_steps(steps: &str) -> String {
    format!(
        "[[scenario]]\nid = \"x\"\ntitle = \"X\"\noperation = \"PutObject\"\n\
         aws_doc = \"https://docs.aws.amazon.com/\"\naws_says = \"-\"\n\n\
         [[scenario.steps]]\ndo = \"put\"\nkey = \"k\"\nbody = \"one\"\nsave_as = \"v1\"\n\n{steps}"
    )
}

#[test]
fn every_step_rule_is_enforced_with_its_message() {
    let step = |body: &str| format!("[[scenario.steps]]\n{body}\n");
    let cases: &[(&str, &str)] = &[
        ("do = \"put\"\nkey = \"${v1}\"\nbody = \"b\"", "`key` must be a plain, non-empty name"),
        ("do = \"put\"\nkey = \"\"\nbody = \"b\"", "`key` must be a plain, non-empty name"),
        ("do = \"delete_objects\"\nkey = \"b\"", "needs `objects = [{ key, if_match, expect }, ...]`"),
        ("do = \"delete_objects\"\nkey = \"b\"\nobjects = []", "`objects` is empty"),
        (
            "do = \"delete_objects\"\nkey = \"b\"\nobjects = [{ key = \"k\", if_match = \"${nope}\", expect = \"deleted\" }]",
            "`${nope}` names no ETag",
        ),
        ("do = \"aba\"\nkey = \"k\"", "`do = \"aba\"` needs a `body`"),
        ("do = \"upload_part\"\nkey = \"k\"\nbody = \"p\"", "needs `upload = \"name\"`"),
        ("do = \"upload_part\"\nkey = \"k\"\nupload = \"u\"\nbody = \"p\"", "`upload = \"u\"` names no upload"),
        ("do = \"copy\"\nkey = \"k\"", "`do = \"copy\"` needs `source = \"key\"`"),
        ("do = \"put\"\nkey = \"k\"\nbody = \"b\"\nif_modified_since = \"last-modified\"", "applies to `do = \"get\"` and `do = \"head\"` only"),
        ("do = \"get\"\nkey = \"k\"\nif_modified_since = \"yesterday\"\nexpect = { status = 304 }", "expected an HTTP date"),
        ("do = \"race\"\nkey = \"r\"\nif_none_match = \"*\"\nexpect = { winners = 1, loser_status = [412] }", "a race needs `start"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nexpect = { winners = 1, loser_status = [412] }", "exactly one of `if_match` and `if_none_match`"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nif_match = \"${base}\"\nexpect = { winners = 1, loser_status = [412] }", "`${base}` names no ETag"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nif_none_match = \"*\"", "a race needs `expect = { winners"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nif_none_match = \"*\"\nexpect = { status = 200 }", "not `status`/`code`"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nif_none_match = \"*\"\nracers = 1\nexpect = { winners = 1, loser_status = [412] }", "`racers = 1`: expected 2 to 256"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nif_none_match = \"*\"\nrounds = 0\nexpect = { winners = 1, loser_status = [412] }", "`rounds = 0`: expected 1 to 100"),
        ("do = \"race\"\nkey = \"r\"\nstart = \"absent\"\nif_none_match = \"*\"\nexpect = { loser_status = [412] }", "needs `winners`"),
        ("do = \"cas_counter\"\nkey = \"c\"\nworkers = 1", "`workers = 1`: expected 2 to 64"),
        ("do = \"cas_counter\"\nkey = \"c\"\nincrements = 0", "`increments = 0`: expected 1 to 1000"),
        ("do = \"put\"\nkey = \"k\"", "`do = \"put\"` needs a `body`"),
        ("do = \"get\"\nkey = \"k\"\nbody = \"b\"", "only `do = \"put\"` and `do = \"upload_part\"` take a `body`"),
        ("do = \"delete\"\nkey = \"k\"\nif_none_match = \"*\"\nexpect = { status = 412 }", "DeleteObject has no If-None-Match"),
        ("do = \"put\"\nkey = \"k\"\nbody = \"b\"\nif_match = \"${nope}\"\nexpect = { status = 412 }", "`${nope}` names no ETag"),
        ("do = \"put\"\nkey = \"k\"\nbody = \"b\"\nif_match = \"${v1}\"", "a conditional step needs `expect = { status = ... }`"),
        ("do = \"put\"\nkey = \"k\"\nbody = \"b\"\nexpect = { status = 200, winners = 1 }", "only apply to `do = \"race\"`"),
        ("do = \"get\"\nkey = \"k\"\nif_match = \"${v1}\"\nexpect = { status = 200, etag = \"${nope}\" }", "`expect.etag` names `${nope}`"),
        ("do = \"put\"\nkey = \"k\"\nbody = \"b\"\nexpect = { code = \"X\" }", "`expect` needs a `status`"),
        ("do = \"head\"\nkey = \"k\"\nrange = \"bytes=0-1\"\nexpect = { status = 206 }", "`range` applies to `do = \"get\"` only"),
        ("do = \"get\"\nkey = \"k\"\nrange = \"bytes=5-1\"\nexpect = { status = 206 }", "expected `bytes=FIRST-LAST` with FIRST no more than LAST"),
        ("do = \"get\"\nkey = \"k\"\nrange = \"0-1\"\nexpect = { status = 206 }", "expected `bytes=FIRST-LAST`"),
    ];
    for (body, message) in cases {
        let text = with_steps(&step(body));
        let err = parse_suite("x.toml", &text).unwrap_err();
        assert!(err.message.contains(message), "{body}\n=> {err}");
        assert!(err.line > 1, "{err}");
    }
    // Two creations of one upload.
    let twice = with_steps(&format!(
        "{}{}",
        step("do = \"create_upload\"\nkey = \"m\"\nupload = \"u\""),
        step("do = \"create_upload\"\nkey = \"m\"\nupload = \"u\"")
    ));
    let err = parse_suite("x.toml", &twice).unwrap_err();
    assert!(err.message.contains("upload `u` is created twice"), "{err}");
}

#[test]
fn the_builtin_catalog_parses() {
    let c = Catalog::builtin().expect("built-in suites parse");
    assert!(c.scenarios.len() >= 7, "{}", c.scenarios.len());
}

#[test]
fn a_good_file_parses_into_steps() {
    let s = parse_suite("t.toml", GOOD).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].steps.len(), 2);
    match &s[0].steps[1] {
        Step::Request {
            conditions,
            checked,
            ..
        } => {
            assert!(checked);
            assert_eq!(conditions.if_match, Some(Template("${v1}".into())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_field_is_reported_with_line_and_column() {
    let text = GOOD.replace("body = \"two\"", "bodyy = \"two\"");
    let err = parse_suite("suites/x.toml", &text).unwrap_err();
    assert_eq!(err.file, "suites/x.toml");
    assert_eq!((err.line, err.col), (18, 1), "{err}");
    assert!(err.message.contains("unknown field `bodyy`"), "{err}");
    assert!(err.message.contains("expected one of"), "{err}");
    assert!(err.to_string().starts_with("suites/x.toml:18:1: "), "{err}");
}

#[test]
fn a_reference_to_an_unsaved_etag_is_an_error() {
    let text = GOOD.replace("${v1}", "${nope}");
    let err = parse_suite("x.toml", &text).unwrap_err();
    assert!(err.message.contains("`${nope}` names no ETag"), "{err}");
    assert_eq!(err.line, 15, "{err}");
}

#[test]
fn a_field_a_step_kind_does_not_take_is_named_with_why() {
    let race = "[[scenario]]\nid = \"r\"\ntitle = \"t\"\noperation = \"PutObject\"\naws_doc = \"d\"\naws_says = \"s\"\n\n[[scenario.steps]]\ndo = \"race\"\nkey = \"k\"\nbody = \"b\"\nstart = \"absent\"\nif_none_match = \"*\"\nexpect = { winners = 1, loser_status = [412] }\n";
    let err = parse_suite("x.toml", race).unwrap_err();
    assert!(
        err.message
            .contains("`body` does not apply to `do = \"race\"` (each racer writes its own body)"),
        "{err}"
    );
    let counter = race
        .replace("do = \"race\"", "do = \"cas_counter\"")
        .replace("body = \"b\"\n", "");
    let err = parse_suite("x.toml", &counter).unwrap_err();
    assert!(
        err.message.contains(
            "`if_none_match` does not apply to `do = \"cas_counter\"` (its rule is built in"
        ),
        "{err}"
    );
    let put = GOOD.replace("save_as = \"v1\"", "save_as = \"v1\"\nracers = 4");
    let err = parse_suite("x.toml", &put).unwrap_err();
    assert!(
        err.message
            .contains("`racers` does not apply to `do = \"put\"`"),
        "{err}"
    );
}

#[test]
fn a_conditional_step_without_expect_is_an_error() {
    let text = GOOD.replace("expect = { status = 200 }\n", "");
    let err = parse_suite("x.toml", &text).unwrap_err();
    assert!(err.message.contains("needs `expect"), "{err}");
}

#[test]
fn malformed_toml_is_reported_with_its_place() {
    let err = parse_suite("x.toml", "[[scenario]]\nid = \n").unwrap_err();
    assert_eq!(err.line, 2, "{err}");
    assert!(err.col > 0, "{err}");
}

#[test]
fn duplicate_ids_across_files_are_refused() {
    let err = Catalog::from_files([
        ("a.toml".to_string(), GOOD.to_string()),
        ("b.toml".to_string(), GOOD.to_string()),
    ])
    .unwrap_err();
    assert_eq!(err.file, "b.toml");
    assert!(
        err.message.contains("duplicate scenario id `demo`"),
        "{err}"
    );
}

#[test]
fn listings_name_every_scenario_and_its_reference() {
    let c = Catalog::builtin().unwrap();
    let text = c.to_text();
    let md = c.to_markdown();
    for s in &c.scenarios {
        assert!(text.contains(&s.id) && text.contains(&s.aws_doc), "{text}");
        assert!(md.contains(&format!("| `{}` |", s.id)), "{md}");
    }
    assert!(md.starts_with("# The condwrite catalog"));
    assert!(md.contains("\n## PutObject\n"), "{md}");
    assert!(text.ends_with(&format!("{} scenarios\n", c.scenarios.len())));
}

#[test]
fn templates_render_and_list_references() {
    let t = Template("W/${a}, ${b}".into());
    assert_eq!(t.references(), vec!["a", "b"]);
    let r = t.render(|n| Some(format!("\"{n}\""))).unwrap();
    assert_eq!(r, "W/\"a\", \"b\"");
    let t = Template("${a.opaque}".into());
    assert_eq!(t.references(), vec!["a"]);
    assert_eq!(t.render(|_| Some("\"e1\"".into())).unwrap(), "e1");
    assert!(t.render(|_| None).is_err());
}

/// Every `${name}` in a condition is checked when the file is read, in
/// either header and in every step kind that takes it: a typo is a load
/// error, not a failure half-way through a run.
#[test]
fn an_unsaved_name_in_either_condition_of_any_step_kind_is_refused() {
    let kinds: &[(&str, &str, &[&str])] = &[
        (
            "put",
            "body = \"b\"\nexpect = { status = 412 }",
            &["if_match", "if_none_match"],
        ),
        (
            "copy",
            "source = \"k\"\nexpect = { status = 412 }",
            &["if_match", "if_none_match"],
        ),
        (
            "get",
            "expect = { status = 412 }",
            &["if_match", "if_none_match"],
        ),
        (
            "head",
            "expect = { status = 412 }",
            &["if_match", "if_none_match"],
        ),
        ("delete", "expect = { status = 412 }", &["if_match"]),
        (
            "race",
            "start = \"existing\"\nexpect = { winners = 1, loser_status = [412] }",
            &["if_match", "if_none_match"],
        ),
    ];
    for (kind, rest, headers) in kinds {
        for header in *headers {
            let body = format!(
                "[[scenario.steps]]\ndo = \"{kind}\"\nkey = \"k\"\n{header} = \"${{typo}}\"\n{rest}\n"
            );
            let err = parse_suite("x.toml", &with_steps(&body)).unwrap_err();
            assert!(
                err.message.contains("`${typo}` names no ETag"),
                "{kind} {header}: {err}"
            );
        }
    }
}
