//! The holder serves its repository and nothing beside it; what a holder says is shown clean.

use super::*;

/// What the holder answers `question` from a folder repository with one object in it,
/// beside a folder of someone else's files.
async fn asked(question: Question) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    std::fs::write(dir.path().join("elsewhere/diary"), b"private").unwrap();
    let store = ferry_store::FolderStore::create(dir.path().join("repo")).unwrap();
    store
        .put_new("ferry/v1/repo", b"header".to_vec())
        .await
        .unwrap();
    answer(&store, &question.encode()).await
}

fn denied(reply: &Reply) -> bool {
    matches!(reply, Reply::Refused(Refusal::Denied(_)))
}

#[tokio::test]
async fn the_holder_serves_its_repository_and_nothing_beside_it() {
    let list = |prefix: &str| Question::List {
        prefix: prefix.into(),
        start_after: None,
        limit: 10,
    };
    let get = |name: &str| Question::Get {
        name: name.into(),
        limit: 100,
    };
    assert_eq!(
        asked(get("ferry/v1/repo")).await,
        Reply::Object(b"header".to_vec())
    );
    match asked(list("ferry/")).await {
        Reply::Page { objects, next } => {
            assert_eq!(objects, [("ferry/v1/repo".to_owned(), 6)]);
            assert_eq!(next, None);
        }
        other => panic!("{other:?}"),
    }
    for prefix in [
        "",
        "../",
        "ferry/../../",
        "ferry/../../elsewhere/",
        "ferry/./",
    ] {
        assert!(denied(&asked(list(prefix)).await), "{prefix:?}");
    }
    for name in [
        "repo",
        "../elsewhere/diary",
        "ferry/../../elsewhere/diary",
        "",
    ] {
        assert!(denied(&asked(get(name)).await), "{name:?}");
        let put = Question::PutNew {
            name: name.into(),
            bytes: b"x".to_vec(),
        };
        assert!(denied(&asked(put).await), "{name:?}");
        let delete = Question::Delete {
            names: vec!["ferry/v1/repo".into(), name.into()],
        };
        assert!(denied(&asked(delete).await), "{name:?}");
    }
    assert!(denied(&answer_bytes(b"not a question").await));
}

async fn answer_bytes(bytes: &[u8]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let store = ferry_store::FolderStore::create(dir.path().join("repo")).unwrap();
    answer(&store, bytes).await
}
