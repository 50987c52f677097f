//! The suite and targets parsers, fuzzed: random text, and the shipped
//! files mangled at random (a range cut, bytes spliced in, lines repeated,
//! the text cut short). Whatever the input, the parser never panics, and
//! every error is `file:line:col: message` with a line and column inside the
//! text. A few mangled files go through the binary too: exit 2, one line,
//! no panic. Bounded: 1000 cases per parser property, 12 for the binary.

use std::path::Path;
use std::process::{Command, Stdio};

use proptest::prelude::*;

use condwrite::catalog::parse_suite;
use condwrite::targets::Targets;

/// The shipped suites and targets file, as fuzzing seeds.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<String> = std::fs::read_dir(root.join("suites"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    out.push(std::fs::read_to_string(root.join("targets.toml")).unwrap());
    out.sort();
    out
}

/// One random edit of a text.
#[derive(Debug, Clone)]
enum Edit {
    Cut(usize, usize),
    Splice(usize, String),
    RepeatLine(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let toml_ish = "[\\[\\]{}=\"'#,.\\n a-z0-9_\\-${}\\\\]{0,24}";
    prop_oneof![
        (any::<usize>(), 0usize..200).prop_map(|(a, n)| Edit::Cut(a, n)),
        (any::<usize>(), toml_ish).prop_map(|(a, s)| Edit::Splice(a, s)),
        any::<usize>().prop_map(Edit::RepeatLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    // Edit at character boundaries, so the text stays a string.
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| {
        if chars.is_empty() {
            0
        } else {
            i % (chars.len() + 1)
        }
    };
    let join = |v: &[char]| v.iter().collect::<String>();
    match e {
        Edit::Cut(a, n) => {
            let a = at(*a);
            let b = (a + n).min(chars.len());
            join(&chars[..a]) + &join(&chars[b..])
        }
        Edit::Splice(a, s) => {
            let a = at(*a);
            join(&chars[..a]) + s + &join(&chars[a..])
        }
        Edit::RepeatLine(i) => {
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return text.to_owned();
            }
            let i = i % lines.len();
            let mut out: Vec<&str> = lines[..=i].to_vec();
            out.extend_from_slice(&lines[i..]);
            out.join("\n")
        }
        Edit::Truncate(a) => join(&chars[..at(*a)]),
    }
}

/// Mangled seeds: a seed and a few edits.
fn mangled() -> impl Strategy<Value = String> {
    let seeds = seeds();
    (0..seeds.len(), proptest::collection::vec(edit(), 1..5))
        .prop_map(move |(i, edits)| edits.iter().fold(seeds[i].clone(), |t, e| apply(&t, e)))
}

/// `file:line:col: message` with a place inside `text`.
fn assert_placed(err: &str, file: &str, text: &str) {
    let rest = err
        .strip_prefix(&format!("{file}:"))
        .unwrap_or_else(|| panic!("no file in {err:?}"));
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no line in {err:?}"));
    let col: usize = parts
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no column in {err:?}"));
    let message = parts.next().unwrap_or_default();
    assert!(
        message.starts_with(' ') && message.len() > 1,
        "no message in {err:?}"
    );
    let lines = text.lines().count().max(1);
    assert!(
        line >= 1 && line <= lines + 1,
        "line {line} of {lines}: {err:?}"
    );
    assert!(col >= 1, "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_suite_parser_places_every_error_of_random_text(text in "\\PC{0,400}") {
        if let Err(e) = parse_suite("f.toml", &text) {
            assert_placed(&e.to_string(), "f.toml", &text);
        }
    }

    #[test]
    fn the_suite_parser_places_every_error_of_a_mangled_suite(text in mangled()) {
        if let Err(e) = parse_suite("f.toml", &text) {
            assert_placed(&e.to_string(), "f.toml", &text);
        }
    }

    #[test]
    fn the_targets_parser_places_every_error_of_random_text(text in "\\PC{0,400}") {
        if let Err(e) = Targets::parse("t.toml", &text, Path::new(".")) {
            assert_placed(&e.to_string(), "t.toml", &text);
        }
    }

    #[test]
    fn the_targets_parser_places_every_error_of_a_mangled_file(text in mangled()) {
        if let Err(e) = Targets::parse("t.toml", &text, Path::new(".")) {
            assert_placed(&e.to_string(), "t.toml", &text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The binary, given a mangled suite folder or targets file: 0 when it
    /// still parses (and lists), else exit 2 with one line, never a panic.
    #[test]
    fn the_binary_answers_a_mangled_file_with_one_line_and_exit_2(text in mangled(), as_targets in any::<bool>()) {
        let dir = std::env::temp_dir().join(format!(
            "condwrite-test-{}-fuzz-{}",
            std::process::id(),
            text.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("suites")).unwrap();
        let args: Vec<String> = if as_targets {
            std::fs::write(dir.join("t.toml"), &text).unwrap();
            vec!["targets".into(), "--targets-file".into(), dir.join("t.toml").display().to_string()]
        } else {
            std::fs::write(dir.join("suites/x.toml"), &text).unwrap();
            vec!["list".into(), "--suites".into(), dir.join("suites").display().to_string()]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_condwrite"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(!stderr.contains("panicked"), "{}", stderr);
        match out.status.code() {
            Some(0) => {}
            Some(2) => {
                prop_assert_eq!(stderr.trim_end().lines().count(), 1, "{}", stderr);
                prop_assert!(stderr.starts_with("error: "), "{}", stderr);
            }
            other => prop_assert!(false, "exit {:?}: {}", other, stderr),
        }
    }
}
