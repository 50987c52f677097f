//! The step kinds, one row each: the word a suite file writes after `do`,
//! the name the engine gives its request in reasons, the fields it takes,
//! what to add when it is given another, and what it does. The validator,
//! the "does not apply here" errors, the engine's names and the generated
//! reference page (`docs/steps.md`) all read this table: a new step kind
//! is one row here, plus its validator and its runner.

use super::Action;

/// One kind of step.
#[derive(Debug)]
pub struct StepKind {
    /// The kind.
    pub action: Action,
    /// What a suite file writes: `do = "WORD"`.
    pub word: &'static str,
    /// How reasons name its request (`PUT`, `CreateMultipartUpload`).
    pub name: &'static str,
    /// The fields it takes besides `do` and `key`.
    pub fields: &'static [&'static str],
    /// Said after "… does not apply to this step kind" for another field.
    pub hint: &'static str,
    /// What it does, for the reference page.
    pub doc: &'static str,
}

/// The fields of a single request.
const REQUEST: &[&str] = &[
    "body",
    "range",
    "if_match",
    "if_none_match",
    "if_modified_since",
    "if_unmodified_since",
    "save_as",
    "expect",
];

/// Every step kind, in the order the reference page lists them.
pub const STEP_KINDS: &[StepKind] = &[
    StepKind {
        action: Action::Put,
        word: "put",
        name: "PUT",
        fields: REQUEST,
        hint: "",
        doc: "PutObject of `body` onto `key`, with the conditional headers given. Without a condition and without `expect` it is set-up, and must succeed.",
    },
    StepKind {
        action: Action::Get,
        word: "get",
        name: "GET",
        fields: REQUEST,
        hint: "",
        doc: "GetObject of `key`. `if_modified_since` / `if_unmodified_since` take an HTTP date or `last-modified` (the object's own); `range = \"bytes=FIRST-LAST\"` asks for those bytes, and the answer must hold exactly them; `expect.etag` names the version the answer's ETag must be (as a 304 must carry it).",
    },
    StepKind {
        action: Action::Head,
        word: "head",
        name: "HEAD",
        fields: REQUEST,
        hint: "",
        doc: "HeadObject of `key`, with the same conditions as `get` (no `range`).",
    },
    StepKind {
        action: Action::Delete,
        word: "delete",
        name: "DELETE",
        fields: REQUEST,
        hint: "",
        doc: "DeleteObject of `key`; `if_match` only (DeleteObject has no If-None-Match).",
    },
    StepKind {
        action: Action::Copy,
        word: "copy",
        name: "COPY",
        fields: &["source", "if_match", "if_none_match", "save_as", "expect"],
        hint: "",
        doc: "CopyObject from `source` onto `key`, the conditions applying to the destination.",
    },
    StepKind {
        action: Action::CreateUpload,
        word: "create_upload",
        name: "CreateMultipartUpload",
        fields: &["upload", "if_match", "if_none_match", "expect"],
        hint: "",
        doc: "CreateMultipartUpload for `key`, named `upload = \"NAME\"` for the steps that follow; uploads still open at the end are aborted.",
    },
    StepKind {
        action: Action::UploadPart,
        word: "upload_part",
        name: "UploadPart",
        fields: &["upload", "body"],
        hint: "",
        doc: "UploadPart of `body` as the next part of `upload` (parts are numbered in order).",
    },
    StepKind {
        action: Action::CompleteUpload,
        word: "complete_upload",
        name: "CompleteMultipartUpload",
        fields: &["upload", "if_match", "if_none_match", "save_as", "expect"],
        hint: "",
        doc: "CompleteMultipartUpload of `upload` with every part uploaded, with the conditional headers given.",
    },
    StepKind {
        action: Action::DeleteObjects,
        word: "delete_objects",
        name: "DeleteObjects",
        fields: &["objects"],
        hint: "",
        doc: "One DeleteObjects request: `objects = [{ key, if_match, expect = \"deleted\" | \"<error code>\" }]`, each object with its own ETag condition and expected result.",
    },
    StepKind {
        action: Action::Race,
        word: "race",
        name: "race",
        fields: &["racers", "rounds", "start", "if_match", "if_none_match", "expect"],
        hint: " (each racer writes its own body)",
        doc: "`racers` (2 to 256, default 16) conditional PUTs on one key released together, for `rounds` rounds (1 to 100, default 5), each on a key of its own: `start = \"absent\"` or `\"existing\"` (then each round's base ETag is `${base}`), exactly one of `if_match` / `if_none_match`, `expect = { winners, loser_status }`. Spread over every endpoint a target has.",
    },
    StepKind {
        action: Action::CasCounter,
        word: "cas_counter",
        name: "cas_counter",
        fields: &["workers", "increments"],
        hint: " (its rule is built in: no increment may be lost)",
        doc: "A counter that `workers` (2 to 64) increment `increments` times (1 to 1000) by read-modify-write under If-Match, retrying on 412/409, bounded in attempts and in 60 s: no acknowledged increment may be lost.",
    },
    StepKind {
        action: Action::Aba,
        word: "aba",
        name: "aba",
        fields: &["body"],
        hint: "",
        doc: "The ABA property: `body` written twice, then a PUT with the first write's ETag; records whether identical bytes get a new ETag (`info`).",
    },
];

/// The row of `action`.
pub fn kind(action: Action) -> &'static StepKind {
    STEP_KINDS
        .iter()
        .find(|k| k.action == action)
        .expect("every step kind has its row in STEP_KINDS (a unit test checks)")
}

/// The step-kind reference page (`docs/steps.md`).
pub fn steps_markdown() -> String {
    let mut out = String::from(
        "# Step kinds\n\nWhat a `[[scenario.steps]]` table of a suite file may say after `do = \"…\"`, and the fields each kind takes besides `key` (a name under the scenario's own prefix). Any other field is refused when the file is read, with the field named; the single-request kinds share one list, and a field one of them cannot use (a `body` on a `get`, an `if_none_match` on a `delete`) is refused with the reason. docs/suites.md says how to write a scenario.\n\n| `do` | fields | what it does |\n|---|---|---|\n",
    );
    for k in STEP_KINDS {
        let fields: Vec<String> = k.fields.iter().map(|f| format!("`{f}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            k.word,
            fields.join(", "),
            k.doc.replace('|', "\\|")
        ));
    }
    out.push_str(
        "\nIn `if_match` and `if_none_match`, `${name}` is the ETag an earlier step saved with `save_as = \"name\"` (`${name.opaque}` the same without its quotes); every name is checked when the file is read. `expect = { status, code, etag, or_status }` is what AWS answers: `or_status = [409]` names another status AWS documents for the same refusal. A step with a condition or an `expect` is checked: the object is read back before and after, and a write AWS refuses must leave it unchanged, a write AWS accepts must leave exactly the body sent.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action, by an exhaustive match: a new variant fails to build
    /// here until it is listed.
    fn all() -> Vec<Action> {
        let every = [
            Action::Put,
            Action::Get,
            Action::Head,
            Action::Delete,
            Action::Race,
            Action::CasCounter,
            Action::Copy,
            Action::CreateUpload,
            Action::UploadPart,
            Action::CompleteUpload,
            Action::DeleteObjects,
            Action::Aba,
        ];
        for a in every {
            match a {
                Action::Put
                | Action::Get
                | Action::Head
                | Action::Delete
                | Action::Race
                | Action::CasCounter
                | Action::Copy
                | Action::CreateUpload
                | Action::UploadPart
                | Action::CompleteUpload
                | Action::DeleteObjects
                | Action::Aba => {}
            }
        }
        every.to_vec()
    }

    #[test]
    fn every_step_kind_has_one_row_whose_word_a_suite_file_can_write() {
        let all = all();
        assert_eq!(STEP_KINDS.len(), all.len());
        for a in all {
            let rows = STEP_KINDS.iter().filter(|k| k.action == a).count();
            assert_eq!(rows, 1, "{a:?}");
            // The word is the one the suite parser reads into this action.
            #[derive(serde::Deserialize)]
            struct Do {
                r#do: Action,
            }
            let parsed: Do = toml::from_str(&format!("do = \"{}\"", kind(a).word)).unwrap();
            assert_eq!(parsed.r#do, a);
        }
    }
}
