//! The shared store suite: every backend must pass it: SQLite (a file in a temporary
//! directory, and the in-memory form) and PostgreSQL (a fresh database per test on the
//! server named by PORTCULLIS_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test;
//! `off` skips it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_store::*;

async fn backends() -> Vec<(String, Store)> {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-store-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = format!("sqlite://{}", dir.join("t.db").display());
    let mut all = vec![
        (file.clone(), Store::open(&file).await.unwrap()),
        (
            "sqlite::memory:".into(),
            Store::open("sqlite::memory:").await.unwrap(),
        ),
    ];
    if let Some(url) = fresh_postgres().await {
        all.push((url.clone(), Store::open(&url).await.unwrap()));
    }
    all
}

/// Creates an empty database for one test and returns its URL.
async fn fresh_postgres() -> Option<String> {
    portcullis_store::testing::fresh_postgres("portcullis_store")
        .await
        .unwrap()
}

/// Closes every store and drops the PostgreSQL test database.
async fn finish(backends: Vec<(String, Store)>) {
    for (url, store) in backends {
        store.close().await;
        if url.starts_with("postgres") {
            portcullis_store::testing::drop_postgres(&url).await;
        }
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn grant(id: &str) -> Grant {
    Grant {
        id: id.into(),
        user_id: "u1".into(),
        client_id: "c1".into(),
        scopes: "mcp".into(),
        resource: "http://127.0.0.1:8080/mcp".into(),
        created_at: 100,
        expires_at: 10_000,
        revoked_at: None,
    }
}

#[tokio::test]
async fn codes_are_spent_once_and_a_replay_names_the_grant() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        let code = NewCode {
            code_hash: "h1",
            grant_id: "g1",
            redirect_uri: "http://localhost/cb",
            code_challenge: "cc",
            expires_at: 200,
        };
        s.create_grant_with_code(&grant("g1"), &code).await.unwrap();
        match s.consume_code("h1", 150).await.unwrap() {
            CodeRedemption::Redeemed {
                grant,
                redirect_uri,
                ..
            } => {
                assert_eq!(grant.id, "g1", "{name}");
                assert_eq!(redirect_uri, "http://localhost/cb");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            s.consume_code("h1", 151).await.unwrap(),
            CodeRedemption::Replayed {
                grant_id: "g1".into()
            }
        );
        assert_eq!(
            s.consume_code("nope", 151).await.unwrap(),
            CodeRedemption::Unknown
        );
        assert!(s.revoke_grant("g1", 152).await.unwrap());
        assert!(
            !s.revoke_grant("g1", 153).await.unwrap(),
            "{name}: revocation is idempotent"
        );
        assert_eq!(
            s.revoked_grants_since(152, 160).await.unwrap(),
            vec![("g1".to_string(), 152)]
        );
        assert!(s.revoked_grants_since(153, 160).await.unwrap().is_empty());
    }
    finish(all).await;
}

#[tokio::test]
async fn refresh_rotates_once_under_a_race() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        s.create_grant_with_code(
            &grant("g2"),
            &NewCode {
                code_hash: "h2",
                grant_id: "g2",
                redirect_uri: "x",
                code_challenge: "c",
                expires_at: 1,
            },
        )
        .await
        .unwrap();
        s.insert_refresh("r1", "g2", "mcp", 100, 1_000)
            .await
            .unwrap();
        let rot = Rotation {
            next_scopes: "mcp",
            next_jti: "j",
            next_iat: 120,
        };
        let (a, b) = tokio::join!(
            s.rotate_refresh("r1", 120, &rot),
            s.rotate_refresh("r1", 120, &rot)
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let rotated = outcomes
            .iter()
            .filter(|o| matches!(o, RefreshUse::Rotated(_)))
            .count();
        assert_eq!(
            rotated, 1,
            "{name}: exactly one of two racing refreshes rotates"
        );
        match s.rotate_refresh("r1", 130, &rot).await.unwrap() {
            RefreshUse::AlreadyRotated(row) => {
                assert_eq!(row.rotated_at, Some(120));
                assert_eq!(row.next_jti.as_deref(), Some("j"));
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            s.rotate_refresh("r9", 130, &rot).await.unwrap(),
            RefreshUse::Unknown
        );
    }
    finish(all).await;
}

/// An authorization code is redeemed once, however many requests (on however many
/// instances) race to redeem it; every loser learns which grant to revoke.
#[tokio::test]
async fn a_code_is_redeemed_once_under_a_race() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        s.create_grant_with_code(
            &grant("g9"),
            &NewCode {
                code_hash: "h9",
                grant_id: "g9",
                redirect_uri: "x",
                code_challenge: "c",
                expires_at: 1_000,
            },
        )
        .await
        .unwrap();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let s = s.clone();
            set.spawn(async move { s.consume_code("h9", 100).await.unwrap() });
        }
        let (mut redeemed, mut replayed) = (0, 0);
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                CodeRedemption::Redeemed { .. } => redeemed += 1,
                CodeRedemption::Replayed { grant_id } => {
                    assert_eq!(grant_id, "g9", "{name}");
                    replayed += 1;
                }
                CodeRedemption::Unknown => panic!("{name}: the code vanished"),
            }
        }
        assert_eq!((redeemed, replayed), (1, 7), "{name}");
    }
    finish(all).await;
}

/// A confirmation's nonce is spent once, however many instances race to spend it, and is
/// forgotten only after it would have expired.
#[tokio::test]
async fn a_nonce_is_spent_once_under_a_race() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let s = s.clone();
            set.spawn(async move { s.spend_nonce("n1", 500).await.unwrap() });
        }
        let mut first = 0;
        while let Some(r) = set.join_next().await {
            first += usize::from(r.unwrap());
        }
        assert_eq!(first, 1, "{name}: exactly one of eight spends wins");
        assert!(s.spend_nonce("n2", 400).await.unwrap(), "{name}");
        s.purge_expired(450).await.unwrap();
        assert!(
            s.spend_nonce("n2", 400).await.unwrap(),
            "{name}: forgotten once expired"
        );
        assert!(
            !s.spend_nonce("n1", 500).await.unwrap(),
            "{name}: kept until it expires"
        );
    }
    finish(all).await;
}

#[tokio::test]
async fn users_clients_consents_sessions_and_secrets() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        let u = User {
            id: "u1".into(),
            username: "alice".into(),
            password_hash: "$argon2id$x".into(),
            is_admin: true,
            disabled: false,
        };
        assert!(s.create_user(&u, 1).await.unwrap());
        assert!(
            !s.create_user(&u, 1).await.unwrap(),
            "{name}: duplicate user refused"
        );
        assert_eq!(s.user_by_name("alice").await.unwrap(), Some(u));
        assert_eq!(s.count_users().await.unwrap(), 1);

        let c = ClientRow {
            client_id: "c1".into(),
            settings: "{}".into(),
            secret_hash: None,
            created_at: 10,
            last_used_at: None,
        };
        s.register_client(&c, Some("k")).await.unwrap();
        let again = ClientRow {
            client_id: "c2".into(),
            ..c.clone()
        };
        assert_eq!(
            s.register_client(&again, Some("k"))
                .await
                .unwrap()
                .client_id,
            "c1",
            "{name}: deduplicated"
        );
        s.register_client(
            &ClientRow {
                client_id: "c3".into(),
                ..c.clone()
            },
            None,
        )
        .await
        .unwrap();
        s.touch_client("c3", 50).await.unwrap();
        assert_eq!(
            s.expire_clients(20, 40).await.unwrap(),
            1,
            "{name}: the never-used c1 expires"
        );
        assert!(s.client("c1").await.unwrap().is_none());
        assert_eq!(
            s.client("c3").await.unwrap().unwrap().last_used_at,
            Some(50)
        );

        s.save_consent("u1", "c3", "a", 1).await.unwrap();
        s.save_consent("u1", "c3", "a b", 2).await.unwrap();
        assert_eq!(s.consent("u1", "c3").await.unwrap().as_deref(), Some("a b"));

        s.create_session("sh", "csrf", None, 1, 100).await.unwrap();
        s.put_auth_request("rq", "sh", "{}", 100).await.unwrap();
        assert!(
            s.auth_request("rq", "other", 2).await.unwrap().is_none(),
            "{name}: bound to its session"
        );
        s.rebind_auth_requests("sh", "sh2").await.unwrap();
        assert!(s.auth_request("rq", "sh2", 2).await.unwrap().is_some());
        assert!(s.take_auth_request("rq").await.unwrap());
        assert!(!s.take_auth_request("rq").await.unwrap());
        assert!(
            s.session("sh", 200).await.unwrap().is_none(),
            "{name}: expired session is gone"
        );

        assert_eq!(s.secret_or_insert("k", b"one", 1).await.unwrap(), b"one");
        assert_eq!(
            s.secret_or_insert("k", b"two", 1).await.unwrap(),
            b"one",
            "{name}: first writer wins"
        );
    }
    finish(all).await;
}

#[tokio::test]
async fn notes_belong_to_their_owner_in_every_query() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        s.create_note(
            "alice",
            "n1",
            "Shopping list",
            "apples, pears and coffee beans",
            10,
        )
        .await
        .unwrap();
        s.create_note(
            "alice",
            "n2",
            "Coffee notes",
            "the Ethiopian roast was bright",
            20,
        )
        .await
        .unwrap();
        s.create_note("bob", "n3", "Bob's coffee", "secret coffee plans", 30)
            .await
            .unwrap();
        // Reads, changes and deletes by id only work for the owner.
        assert!(s.note("bob", "n1", true).await.unwrap().is_none(), "{name}");
        assert!(
            s.update_note("bob", "n1", Some("pwned"), None, 40)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(!s.trash_note("bob", "n1", 40).await.unwrap(), "{name}");
        assert_eq!(
            s.note("alice", "n1", false).await.unwrap().unwrap().title,
            "Shopping list"
        );
        // Search sees only the caller's notes; titles rank above bodies; whole words match,
        // and a word with a trailing * is a prefix.
        let hits = s
            .search_notes("alice", &search_terms("coffee"), 10, 0)
            .await
            .unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["n2", "n1"], "{name}: {hits:?}");
        assert!(hits[1].snippet.contains("coffee"), "{name}: {hits:?}");
        assert_eq!(
            s.search_notes("alice", &search_terms("ethiop*"), 10, 0)
                .await
                .unwrap()
                .len(),
            1,
            "{name}: prefix"
        );
        assert!(
            s.search_notes("alice", &search_terms("ethiop"), 10, 0)
                .await
                .unwrap()
                .is_empty(),
            "{name}: without the star, only the whole word"
        );
        assert_eq!(
            s.search_notes("bob", &search_terms("apples"), 10, 0)
                .await
                .unwrap()
                .len(),
            0,
            "{name}"
        );
        // Query syntax and SQL metacharacters are just words, never errors.
        for q in [
            "\"",
            "coffee OR 1=1",
            "'; DROP TABLE notes; --",
            "owner:bob",
            "NEAR(a b)",
            "*",
            "title:coffee)",
            "c\0ffee",
        ] {
            let hits = s
                .search_notes("alice", &search_terms(q), 10, 0)
                .await
                .unwrap();
            assert!(
                hits.iter().all(|h| h.id != "n3"),
                "{name}: {q:?} found bob's note"
            );
        }
        // Trash and restore, within the window only.
        assert!(s.trash_note("alice", "n1", 50).await.unwrap());
        assert!(s.note("alice", "n1", false).await.unwrap().is_none());
        assert_eq!(
            s.search_notes("alice", &search_terms("apples"), 10, 0)
                .await
                .unwrap()
                .len(),
            0,
            "{name}: trashed notes are not found"
        );
        assert!(
            s.restore_note("alice", "n1", 60).await.unwrap().is_none(),
            "{name}: outside the window"
        );
        assert!(
            s.restore_note("bob", "n1", 0).await.unwrap().is_none(),
            "{name}: not bob's"
        );
        assert!(s.restore_note("alice", "n1", 40).await.unwrap().is_some());
        // Updates reach the index.
        s.update_note("alice", "n1", None, Some("now about tea"), 70)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            s.search_notes("alice", &search_terms("tea"), 10, 0)
                .await
                .unwrap()
                .len(),
            1,
            "{name}"
        );
        assert_eq!(
            s.search_notes("alice", &search_terms("apples"), 10, 0)
                .await
                .unwrap()
                .len(),
            0,
            "{name}"
        );
        // Keyset pagination, newest first.
        let page1 = s.list_notes("alice", None, 1).await.unwrap();
        assert_eq!(page1[0].id, "n1", "{name}");
        let after = NotesAfter {
            updated_at: page1[0].updated_at,
            id: page1[0].id.clone(),
        };
        let page2 = s.list_notes("alice", Some(&after), 5).await.unwrap();
        assert_eq!(
            page2.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["n2"],
            "{name}"
        );
        assert_eq!(s.count_notes("alice").await.unwrap(), 2);
        assert!(s.trash_note("alice", "n2", 80).await.unwrap());
        assert_eq!(s.purge_trash(90).await.unwrap(), 1, "{name}");
        assert!(s.note("alice", "n2", true).await.unwrap().is_none());
    }
    finish(all).await;
}

#[tokio::test]
async fn audit_events_are_written_in_batches_filtered_and_purged() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        let ev = |id: &str, at: i64, user: &str, tool: &str| AuditEvent {
            event_id: id.into(),
            at_ms: at,
            user_id: Some(user.into()),
            client_id: Some("c".into()),
            tool: tool.into(),
            outcome: "ok".into(),
            duration_us: 120,
            args_digest: "d".into(),
            args: None,
            confirmation: (tool == "notes_delete").then(|| "unconfirmed".into()),
        };
        s.insert_audit(&[
            ev("e1", 1_000, "alice", "notes_get"),
            ev("e2", 2_000, "bob", "notes_get"),
            ev("e3", 3_000, "alice", "notes_delete"),
        ])
        .await
        .unwrap();
        let f = |user: Option<&str>, tool: Option<&str>, since: Option<i64>| AuditFilter {
            user_id: user.map(str::to_owned),
            tool: tool.map(str::to_owned),
            since_ms: since,
            until_ms: None,
            limit: 10,
        };
        let ids = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.audit_events(&f(None, None, None)).await.unwrap()),
            ["e3", "e2", "e1"],
            "{name}"
        );
        assert_eq!(
            ids(s.audit_events(&f(Some("alice"), None, None)).await.unwrap()),
            ["e3", "e1"],
            "{name}"
        );
        assert_eq!(
            ids(s
                .audit_events(&f(None, Some("notes_get"), Some(1_500)))
                .await
                .unwrap()),
            ["e2"],
            "{name}"
        );
        assert_eq!(s.purge_audit(2_500).await.unwrap(), 2, "{name}");
        let left = s.audit_events(&f(None, None, None)).await.unwrap();
        assert_eq!(ids(left.clone()), ["e3"], "{name}");
        assert_eq!(
            left[0].confirmation.as_deref(),
            Some("unconfirmed"),
            "{name}: the confirmation column round-trips"
        );
    }
    finish(all).await;
}

/// A SQLite database with notes written by schema version 5 (the owner indexed as written,
/// trashed notes in the index, an index with its own copy of the text) is rebuilt on
/// upgrade to the marked-word index: searches still find each user's live notes, never
/// another user's or a trashed one, and every later change keeps the index in step.
#[tokio::test]
async fn the_search_index_is_rebuilt_on_upgrade() {
    let dir = std::env::temp_dir().join(format!("portcullis-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("p.db").display());
    let s = Store::open_at_version(&url, 5).await.unwrap();
    // Written as that release wrote them: its triggers filled its index.
    sqlx::raw_sql(
        "INSERT INTO notes (id, user_id, title, body, created_at, updated_at) VALUES
             ('a1', 'u_alice', 'Apples', 'green apples', 1, 1),
             ('a2', 'u_alice', 'More apples', 'red apples', 2, 2),
             ('b1', 'u_bob', 'Apples', 'bob''s apples', 3, 3)",
    )
    .execute(s.pool())
    .await
    .unwrap();
    // Under version 5 the search index is still the old one (the owner column, as written).
    let owners: Vec<String> = sqlx::query_scalar("SELECT owner FROM notes_fts ORDER BY rowid")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert_eq!(owners, ["u_alice", "u_alice", "u_bob"]);
    sqlx::query("UPDATE notes SET deleted_at = 4 WHERE id = 'a2'")
        .execute(s.pool())
        .await
        .unwrap();
    s.close().await;

    let s = Store::open(&url).await.unwrap();
    let ids = |hits: Vec<NoteHit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
    let apples = search_terms("apples");
    assert_eq!(
        ids(s.search_notes("u_alice", &apples, 10, 0).await.unwrap()),
        ["a1"]
    );
    assert_eq!(
        ids(s.search_notes("u_bob", &apples, 10, 0).await.unwrap()),
        ["b1"]
    );
    assert!(s.restore_note("u_alice", "a2", 0).await.unwrap().is_some());
    assert_eq!(
        ids(s.search_notes("u_alice", &apples, 10, 0).await.unwrap()).len(),
        2,
        "restored notes are searchable again"
    );
    assert!(s.trash_note("u_alice", "a1", 6).await.unwrap());
    assert_eq!(
        ids(s.search_notes("u_alice", &apples, 10, 0).await.unwrap()),
        ["a2"]
    );
    s.update_note("u_alice", "a2", None, Some("pears now"), 7)
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.search_notes("u_alice", &search_terms("red"), 10, 0)
            .await
            .unwrap()
            .is_empty(),
        "the old words of a changed note are gone"
    );
    assert_eq!(
        ids(s
            .search_notes("u_alice", &search_terms("pears"), 10, 0)
            .await
            .unwrap()),
        ["a2"]
    );
    // Notes keep their place in the index across VACUUM (the rowid is now declared).
    sqlx::query("VACUUM").execute(s.pool()).await.unwrap();
    assert_eq!(
        ids(s.search_notes("u_bob", &apples, 10, 0).await.unwrap()),
        ["b1"]
    );
    // Purged notes leave the index with them: the index holds exactly the live notes.
    assert_eq!(s.purge_trash(100).await.unwrap(), 1);
    let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM notes_words")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(indexed, 2, "a2 and b1");
    s.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Several instances starting at once on an empty PostgreSQL database all come up: they
/// migrate one at a time, and the later ones find the schema done.
#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let (a, b, c) = tokio::join!(Store::open(&url), Store::open(&url), Store::open(&url));
    let stores = [a.unwrap(), b.unwrap(), c.unwrap()];
    let (rows, latest): (i64, i64) =
        sqlx::query_as("SELECT count(*), max(version) FROM portcullis_schema")
            .fetch_one(stores[0].pool())
            .await
            .unwrap();
    assert_eq!(latest, Store::latest_schema_version());
    assert_eq!(
        rows,
        Store::schema_versions().len() as i64,
        "each migration recorded once"
    );
    for s in &stores {
        s.close().await;
    }
    portcullis_store::testing::drop_postgres(&url).await;
}

/// Disabling an account revokes its grants and ends its sessions; a password link is spent
/// once, however many submissions race, and is purged once expired.
#[tokio::test]
async fn accounts_are_disabled_and_password_links_are_spent_once() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        let alice = User {
            id: "u1".into(),
            username: "alice".into(),
            password_hash: "$argon2id$old".into(),
            is_admin: false,
            disabled: false,
        };
        assert!(s.create_user(&alice, 1).await.unwrap());
        let code = NewCode {
            code_hash: "h1",
            grant_id: "g1",
            redirect_uri: "http://127.0.0.1/cb",
            code_challenge: "c",
            expires_at: 1_000,
        };
        s.create_grant_with_code(&grant("g1"), &code).await.unwrap();
        s.create_session("sess", "csrf", Some("u1"), 100, 5_000)
            .await
            .unwrap();
        let listed = s.list_users(200).await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
        assert_eq!(listed[0].live_grants, 1, "{name}");
        assert_eq!(listed[0].disabled_at, None, "{name}");

        assert!(
            s.set_user_disabled("u1", Some(300)).await.unwrap(),
            "{name}"
        );
        assert!(
            s.user_by_id("u1").await.unwrap().unwrap().disabled,
            "{name}"
        );
        assert_eq!(
            s.grant("g1").await.unwrap().unwrap().revoked_at,
            Some(300),
            "{name}"
        );
        assert_eq!(
            s.session("sess", 400).await.unwrap(),
            None,
            "{name}: signed out"
        );
        let listed = s.list_users(400).await.unwrap();
        assert_eq!(
            (listed[0].disabled_at, listed[0].live_grants),
            (Some(300), 0),
            "{name}"
        );
        assert!(s.set_user_disabled("u1", None).await.unwrap(), "{name}");
        assert!(
            !s.user_by_name("alice").await.unwrap().unwrap().disabled,
            "{name}"
        );
        assert!(
            !s.set_user_disabled("nobody", Some(1)).await.unwrap(),
            "{name}"
        );

        assert!(
            s.set_password_hash("u1", "$argon2id$new").await.unwrap(),
            "{name}"
        );
        assert_eq!(
            s.user_by_id("u1").await.unwrap().unwrap().password_hash,
            "$argon2id$new"
        );
        assert!(!s.set_password_hash("nobody", "x").await.unwrap(), "{name}");

        s.create_password_link("link", "bob", LinkPurpose::Invite, true, 100, 1_000)
            .await
            .unwrap();
        let link = s.password_link("link", 500).await.unwrap().unwrap();
        assert_eq!(
            (link.username.as_str(), link.purpose, link.is_admin),
            ("bob", LinkPurpose::Invite, true),
            "{name}"
        );
        assert_eq!(
            s.password_link("link", 1_000).await.unwrap(),
            None,
            "{name}: expired"
        );
        assert!(
            !s.use_password_link("link", 1_000).await.unwrap(),
            "{name}: expired"
        );
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let s = s.clone();
            set.spawn(async move { s.use_password_link("link", 500).await.unwrap() });
        }
        let mut won = 0;
        while let Some(r) = set.join_next().await {
            won += usize::from(r.unwrap());
        }
        assert_eq!(won, 1, "{name}: one of eight submissions wins");
        assert_eq!(
            s.password_link("link", 500).await.unwrap(),
            None,
            "{name}: spent"
        );
        s.create_password_link("old", "carol", LinkPurpose::Reset, false, 100, 200)
            .await
            .unwrap();
        s.purge_expired(300).await.unwrap();
        s.create_password_link("old", "carol", LinkPurpose::Reset, false, 300, 900)
            .await
            .expect("the expired link was purged, so its hash is free");
    }
    finish(all).await;
}

/// The account page and the admin commands: grants listed with their user, client and last
/// use; revoked per user and client (only that user's), per user, per client, per id; the
/// consent forgotten with them; a client deleted with its grants.
#[tokio::test]
async fn grants_are_listed_with_their_use_and_revoked_by_selector() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        for (id, username) in [("u1", "alice"), ("u2", "bob")] {
            let u = User {
                id: id.into(),
                username: username.into(),
                password_hash: "old".into(),
                is_admin: false,
                disabled: false,
            };
            assert!(s.create_user(&u, 1).await.unwrap());
        }
        for c in ["c1", "c2"] {
            let row = ClientRow {
                client_id: c.into(),
                settings: format!("{{\"client_name\":\"{c}\"}}"),
                secret_hash: None,
                created_at: 10,
                last_used_at: None,
            };
            s.register_client(&row, None).await.unwrap();
        }
        let doc = "https://app.example.com/client.json";
        let mut n = 0;
        for (user, client) in [
            ("u1", "c1"),
            ("u1", "c1"),
            ("u1", "c2"),
            ("u2", "c1"),
            ("u1", doc),
        ] {
            n += 1;
            let g = Grant {
                id: format!("g{n}"),
                user_id: user.into(),
                client_id: client.into(),
                created_at: 100 + n,
                ..grant("")
            };
            let code = NewCode {
                code_hash: &format!("code{n}"),
                grant_id: &g.id,
                redirect_uri: "",
                code_challenge: "cc",
                expires_at: 200,
            };
            s.create_grant_with_code(&g, &code).await.unwrap();
            s.save_consent(user, client, "mcp", 1).await.unwrap();
        }
        // An expired grant is not live.
        let old = Grant {
            id: "g-old".into(),
            expires_at: 150,
            ..grant("")
        };
        let code = NewCode {
            code_hash: "code-old",
            grant_id: "g-old",
            redirect_uri: "",
            code_challenge: "cc",
            expires_at: 120,
        };
        s.create_grant_with_code(&old, &code).await.unwrap();
        s.touch_grant("g2", 500).await.unwrap();

        let mine = GrantFilter {
            user_id: Some("u1".into()),
            ..GrantFilter::default()
        };
        let listed = s.grants(&mine, 300).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|g| g.grant.id.as_str()).collect();
        assert_eq!(ids, ["g1", "g2", "g3", "g5"], "{name}: u1's live grants");
        assert_eq!(listed[1].last_used_at, Some(500), "{name}");
        assert_eq!(listed[0].last_used_at, None, "{name}");
        assert_eq!(listed[0].username.as_deref(), Some("alice"), "{name}");
        assert_eq!(
            listed[0].client_settings.as_deref(),
            Some("{\"client_name\":\"c1\"}"),
            "{name}"
        );
        assert_eq!(listed[3].client_settings, None, "{name}: a document client");
        let everything = GrantFilter {
            include_ended: true,
            ..GrantFilter::default()
        };
        assert_eq!(s.grants(&everything, 300).await.unwrap().len(), 6, "{name}");
        let c1 = GrantFilter {
            client_id: Some("c1".into()),
            ..GrantFilter::default()
        };
        assert_eq!(s.grants(&c1, 300).await.unwrap().len(), 3, "{name}");

        let summaries = s.client_summaries(300).await.unwrap();
        let counts: Vec<(&str, &str, i64)> = summaries
            .iter()
            .map(|c| (c.client_id.as_str(), c.kind.as_str(), c.live_grants))
            .collect();
        assert_eq!(
            counts,
            [
                ("c1", "registered", 3),
                ("c2", "registered", 1),
                (doc, "document", 1)
            ],
            "{name}"
        );

        // Bob disconnecting c1 touches only his grant and his consent.
        let r = s
            .revoke_grants(
                GrantSelector::UserClient {
                    user_id: "u2",
                    client_id: "c1",
                },
                300,
            )
            .await
            .unwrap();
        assert_eq!(r.len(), 1, "{name}");
        assert_eq!(r[0].id, "g4", "{name}");
        assert!(s.consent("u2", "c1").await.unwrap().is_none(), "{name}");
        assert!(s.consent("u1", "c1").await.unwrap().is_some(), "{name}");
        assert!(s.grant("g1").await.unwrap().unwrap().revoked_at.is_none());
        // Alice disconnecting c1: both her grants for it, once.
        let r = s
            .revoke_grants(
                GrantSelector::UserClient {
                    user_id: "u1",
                    client_id: "c1",
                },
                301,
            )
            .await
            .unwrap();
        assert_eq!(r.len(), 2, "{name}");
        assert_eq!(s.grant("g2").await.unwrap().unwrap().revoked_at, Some(301));
        assert!(s.consent("u1", "c1").await.unwrap().is_none(), "{name}");
        let again = s
            .revoke_grants(
                GrantSelector::UserClient {
                    user_id: "u1",
                    client_id: "c1",
                },
                302,
            )
            .await
            .unwrap();
        assert!(again.is_empty(), "{name}: nothing left to revoke");
        let ids: Vec<String> = s
            .grants(&mine, 302)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.grant.id)
            .collect();
        assert_eq!(ids, ["g3", "g5"], "{name}");

        // By id, and the expired grant is not "revoked" after the fact.
        assert_eq!(
            s.revoke_grants(GrantSelector::Id("g-old"), 303)
                .await
                .unwrap()
                .len(),
            0
        );
        let r = s.revoke_grants(GrantSelector::Id("g3"), 303).await.unwrap();
        assert_eq!(r.len(), 1, "{name}");
        assert!(s.consent("u1", "c2").await.unwrap().is_none(), "{name}");
        // By user.
        let r = s
            .revoke_grants(GrantSelector::User("u1"), 304)
            .await
            .unwrap();
        assert_eq!(r.len(), 1, "{name}: the document client's grant");
        assert!(s.consent("u1", doc).await.unwrap().is_none(), "{name}");
        let revoked = s.revoked_grants_since(300, 304).await.unwrap();
        assert_eq!(revoked.len(), 5, "{name}: the guard's poll sees them all");

        // Deleting a client revokes its grants and removes the registration.
        let g = Grant {
            id: "g9".into(),
            user_id: "u2".into(),
            client_id: "c2".into(),
            ..grant("")
        };
        let code = NewCode {
            code_hash: "code9",
            grant_id: "g9",
            redirect_uri: "",
            code_challenge: "cc",
            expires_at: 400,
        };
        s.create_grant_with_code(&g, &code).await.unwrap();
        s.save_consent("u2", "c2", "mcp", 1).await.unwrap();
        let (r, deleted) = s.delete_client("c2", 305).await.unwrap();
        assert!(deleted, "{name}");
        assert_eq!(r.len(), 1, "{name}");
        assert!(s.client("c2").await.unwrap().is_none(), "{name}");
        assert!(s.consent("u2", "c2").await.unwrap().is_none(), "{name}");
        let (r, deleted) = s.delete_client("c2", 306).await.unwrap();
        assert!(!deleted && r.is_empty(), "{name}: gone already");
        let (r, deleted) = s.delete_client(doc, 306).await.unwrap();
        assert!(!deleted && r.is_empty(), "{name}");
    }
    finish(all).await;
}

/// An upstream identity names one account: creating the account and its link is one step,
/// a taken username or an identity linked meanwhile creates nothing, and a lookup by the
/// (issuer, subject) pair finds the account, never by another issuer's same subject.
#[tokio::test]
async fn upstream_identities_link_to_one_account() {
    let all = backends().await;
    for (name, s) in &all {
        let name = name.as_str();
        let user = |id: &str, username: &str| User {
            id: id.into(),
            username: username.into(),
            password_hash: String::new(),
            is_admin: false,
            disabled: false,
        };
        let idp = "https://idp.example";
        assert_eq!(
            s.user_by_upstream(idp, "sub-1", 10).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            s.create_upstream_user(&user("u1", "alice"), idp, "sub-1", 10)
                .await
                .unwrap(),
            UpstreamCreated::Created,
            "{name}"
        );
        let found = s.user_by_upstream(idp, "sub-1", 20).await.unwrap().unwrap();
        assert_eq!(
            (found.id.as_str(), found.username.as_str()),
            ("u1", "alice")
        );
        assert_eq!(
            s.user_by_upstream("https://other.example", "sub-1", 20)
                .await
                .unwrap(),
            None,
            "{name}: the subject is only unique per issuer"
        );
        // Username taken: neither the account nor the link is made.
        assert_eq!(
            s.create_upstream_user(&user("u2", "alice"), idp, "sub-2", 30)
                .await
                .unwrap(),
            UpstreamCreated::NameTaken,
            "{name}"
        );
        assert_eq!(s.user_by_upstream(idp, "sub-2", 30).await.unwrap(), None);
        // Identity already linked: the second account is rolled back.
        assert_eq!(
            s.create_upstream_user(&user("u3", "alice-2"), idp, "sub-1", 40)
                .await
                .unwrap(),
            UpstreamCreated::AlreadyLinked,
            "{name}"
        );
        assert_eq!(s.user_by_id("u3").await.unwrap(), None, "{name}");
        assert_eq!(s.count_users().await.unwrap(), 1, "{name}");
        assert_eq!(
            s.upstream_issuers("u1").await.unwrap(),
            vec![idp.to_owned()],
            "{name}"
        );
        let listed = s.list_users(50).await.unwrap();
        assert_eq!(listed[0].upstream.as_deref(), Some(idp), "{name}");
    }
    finish(all).await;
}
