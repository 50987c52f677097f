//! Endpoint targets: an existing service, credentials from the environment,
//! a given bucket used under a fresh prefix and never created or deleted.

use crate::common;

use std::path::Path;

use condwrite::catalog::Catalog;
use condwrite::model::Verdict;
use condwrite::runner::Session;
use condwrite::store::{ClientSettings, Store};
use condwrite::targets::{LiveTarget, Targets, EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY};

fn endpoint(entry: &str) -> condwrite::targets::TargetSpec {
    let text = format!("[[target]]\nname = \"ep\"\nkind = \"endpoint\"\n{entry}\n");
    Targets::parse("test.toml", &text, Path::new("."))
        .unwrap()
        .targets
        .remove(0)
}

#[tokio::test]
async fn unset_credential_variables_are_named() {
    let s = endpoint(
        "url = \"http://127.0.0.1:9\"\naccess_key_env = \"CONDWRITE_TEST_UNSET_AK\"\nsecret_key_env = \"CONDWRITE_TEST_UNSET_SK\"",
    );
    let err = LiveTarget::start(&s).await.unwrap_err();
    assert!(
        matches!(err, condwrite::targets::TargetError::MissingCredentials(_)),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("$CONDWRITE_TEST_UNSET_AK"), "{err}");
    assert!(err.contains("not set"), "{err}");
}

#[test]
fn a_given_bucket_is_used_under_a_prefix_and_kept() {
    let served = common::Served::start();
    let url = served.url.clone();
    // The credentials come from variables the entry names, as for R2.
    std::env::set_var("CONDWRITE_TEST_EP_AK", EMBEDDED_ACCESS_KEY);
    std::env::set_var("CONDWRITE_TEST_EP_SK", EMBEDDED_SECRET_KEY);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let owner = Store::new(
            &ClientSettings::local(url.clone(), EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY),
            "given-bucket",
        );
        owner.create_bucket().await.unwrap();
        let s = endpoint(&format!(
            "url = \"{url}\"\nbucket = \"given-bucket\"\naccess_key_env = \"CONDWRITE_TEST_EP_AK\"\nsecret_key_env = \"CONDWRITE_TEST_EP_SK\""
        ));
        let catalog = Catalog::builtin().unwrap();
        let session = Session::start(vec![s], |_| true, &|_| {}).await;
        let live = session.live("ep").expect("started");
        assert!(!live.prefix().is_empty(), "a shared bucket needs a run prefix");
        assert_eq!(live.store().bucket(), "given-bucket");
        let cells = session.cells(&catalog, 4).await;
        assert_eq!(session.leftovers("ep").await, Ok(vec![]));
        let finished = session.stop(&|e| panic!("{e:?}")).await;
        assert!(!finished.cleanup_failed);
        let mut verdicts = Vec::new();
        for cell in cells {
            let scenario = catalog.scenarios.iter().find(|s| s.id == cell.scenario).unwrap();
            // What the scenario gets when the store is right: versioning
            // needs a bucket of its own, which a given bucket is not.
            let want = if scenario.versioning {
                Verdict::Unsupported
            } else {
                scenario.baseline()
            };
            verdicts.push((cell.scenario, want, cell.judgement.verdict, cell.judgement.reason));
        }
        // The bucket is still there (stop deleted no bucket) and empty.
        let left = owner.list("").await.unwrap();
        let delete = owner.delete_bucket().await;
        (verdicts, left, delete)
    });
    drop(served);
    let (verdicts, left, delete) = result;
    assert!(verdicts.iter().any(|v| v.1 == Verdict::Unsupported));
    for (id, want, verdict, reason) in verdicts {
        assert_eq!(verdict, want, "{id}: {reason}");
        if want == Verdict::Unsupported {
            assert!(
                reason.contains("names a bucket to work in"),
                "{id}: {reason}"
            );
        }
    }
    assert!(left.is_empty(), "{left:?}");
    assert!(
        delete.is_ok(),
        "the given bucket was removed by the run: {delete:?}"
    );
}
