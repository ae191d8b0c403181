//! The server through the wire protocol with tokio-postgres: simple and extended queries,
//! text and binary formats, types, transactions and errors.

mod common;

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {e}"))
}

#[tokio::test]
async fn extended_protocol_binary_types_round_trip() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE items (id BIGSERIAL PRIMARY KEY, small SMALLINT, n INTEGER, big BIGINT, \
             r REAL, d DOUBLE PRECISION, ok BOOLEAN, name VARCHAR(20), body TEXT, raw BYTEA, \
             day DATE, at TIMESTAMP, atz TIMESTAMPTZ, u UUID, doc JSON, price NUMERIC(10,2))",
        )
        .await
        .unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let at = day.and_hms_micro_opt(13, 14, 15, 123456).unwrap();
    let atz = chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(at, chrono::Utc);
    let u = uuid::Uuid::new_v4();
    let doc = serde_json::json!({"a": [1, 2]});
    let row = client
        .query_one(
            "INSERT INTO items (small, n, big, r, d, ok, name, body, raw, day, at, atz, u, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            &[
                &7i16,
                &42i32,
                &9_000_000_000i64,
                &1.5f32,
                &2.25f64,
                &true,
                &"name",
                &"body",
                &vec![0u8, 1, 255],
                &day,
                &at,
                &atz,
                &u,
                &doc,
            ],
        )
        .await
        .unwrap();
    let id: i64 = row.get(0);
    assert_eq!(id, 1);
    let row = client
        .query_one("SELECT small, n, big, r, d, ok, name, body, raw, day, at, atz, u, doc FROM items WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>(0), 7);
    assert_eq!(row.get::<_, i32>(1), 42);
    assert_eq!(row.get::<_, i64>(2), 9_000_000_000);
    assert_eq!(row.get::<_, f32>(3), 1.5);
    assert_eq!(row.get::<_, f64>(4), 2.25);
    assert!(row.get::<_, bool>(5));
    assert_eq!(row.get::<_, &str>(6), "name");
    assert_eq!(row.get::<_, &str>(7), "body");
    assert_eq!(row.get::<_, Vec<u8>>(8), vec![0, 1, 255]);
    assert_eq!(row.get::<_, chrono::NaiveDate>(9), day);
    assert_eq!(row.get::<_, chrono::NaiveDateTime>(10), at);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(11), atz);
    assert_eq!(row.get::<_, uuid::Uuid>(12), u);
    assert_eq!(row.get::<_, serde_json::Value>(13), doc);

    // Expression columns: PostgreSQL's names and types.
    let row = client
        .query_one("SELECT count(*), 1 + 1, 'x' AS label FROM items", &[])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].name(), "count");
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.columns()[1].name(), "?column?");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(row.get::<_, &str>("label"), "x");

    // Parameter types are inferred and announced.
    let stmt = client
        .prepare("SELECT n FROM items WHERE big = $1 AND name = $2 LIMIT $3")
        .await
        .unwrap();
    let types: Vec<String> = stmt.params().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(types, vec!["int8", "varchar", "int8"]);
    assert_eq!(stmt.columns()[0].type_().name(), "int4");
    server.stop().await;
}

#[tokio::test]
async fn simple_protocol_multi_statement_stops_at_first_error() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE m (v INT)")
        .await
        .unwrap();
    let err = client
        .simple_query("INSERT INTO m VALUES (1); SELECT nosuch FROM m; INSERT INTO m VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "42703");
    // The implicit transaction rolled the first insert back, and the third never ran.
    let rows = client.simple_query("SELECT count(*) FROM m").await.unwrap();
    let count = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("0"));
    server.stop().await;
}

#[tokio::test]
async fn failed_transaction_answers_25p02_until_rollback() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE k (id INT PRIMARY KEY)")
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO k VALUES (1)")
        .await
        .unwrap();
    let err = client
        .batch_execute("INSERT INTO k VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(code(&err), "25P02");
    let messages = client.simple_query("COMMIT").await.unwrap();
    let tag = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(_) => Some(()),
        _ => None,
    });
    assert!(tag.is_some());
    let rows = client.query("SELECT id FROM k", &[]).await.unwrap();
    assert!(rows.is_empty(), "the failed transaction was rolled back");
    server.stop().await;
}

#[tokio::test]
async fn errors_carry_postgres_sqlstates() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE e (id INT PRIMARY KEY, v TEXT NOT NULL, n INTEGER, c INT CHECK (c > 0), \
             price NUMERIC(5,2))",
        )
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO e VALUES (1, 'a', 1, 1)")
        .await
        .unwrap();
    let cases = [
        ("INSERT INTO e VALUES (1, 'a', 1, 1)", "23505"),
        ("INSERT INTO e VALUES (2, NULL, 1, 1)", "23502"),
        ("INSERT INTO e VALUES (3, 'a', 3000000000, 1)", "22003"),
        ("INSERT INTO e VALUES (4, 'a', 1, -1)", "23514"),
        ("INSERT INTO e VALUES (5, 'a', 1, 1, 1000.00)", "22003"),
        ("INSERT INTO e VALUES (5, 'a', 1, 1, 999.995)", "22003"),
        ("INSERT INTO e VALUES (5, 'a', 1, 1, 1.0, 6)", "42601"),
        ("SELECT * FROM missing", "42P01"),
        ("SELECT missing FROM e", "42703"),
        ("SELEKT 1", "42601"),
        ("SELECT DISTINCT ON (v) v FROM e", "0A000"),
        ("ATTACH DATABASE '/tmp/shardgate-attach.db' AS x", "42501"),
        ("PRAGMA writable_schema = 1", "42501"),
        ("SELECT load_extension('x')", "42501"),
        ("SELECT * FROM _shardgate_columns", "42501"),
    ];
    for (sql, expected) in cases {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&err), expected, "{sql}: {err}");
    }
    assert!(!std::path::Path::new("/tmp/shardgate-attach.db").exists());
    client
        .batch_execute("INSERT INTO e VALUES (6, 'a', 1, 1, 999.99), (7, 'b', 1, 1, 1.5)")
        .await
        .unwrap();
    let rows = client
        .simple_query("SELECT price FROM e WHERE id > 5 ORDER BY id")
        .await
        .unwrap();
    let prices: Vec<&str> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .collect();
    assert_eq!(prices, ["999.99", "1.50"]);
    server.stop().await;
}

#[tokio::test]
async fn session_settings_and_savepoints() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute("SET application_name = 'tests'")
        .await
        .unwrap();
    let row = client
        .query_one("SHOW application_name", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "tests");
    let row = client
        .query_one("SELECT current_setting('DateStyle')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "ISO, MDY");
    let err = client
        .batch_execute("SHOW no_such_setting")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "42704");

    client
        .batch_execute("CREATE TABLE s (v INT)")
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO s VALUES (1); SAVEPOINT a; INSERT INTO s VALUES (2); ROLLBACK TO SAVEPOINT a; COMMIT")
        .await
        .unwrap();
    let rows = client.query("SELECT v FROM s", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = client.query_one("SELECT version()", &[]).await.unwrap();
    assert!(row.get::<_, &str>(0).starts_with("PostgreSQL 15"));
    server.stop().await;
}

#[tokio::test]
async fn copy_in_and_out() {
    use futures::{SinkExt, StreamExt};
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE c (id INT, name TEXT, ok BOOLEAN)")
        .await
        .unwrap();
    let sink = client
        .copy_in("COPY c (id, name, ok) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    let mut data = String::new();
    for i in 0..10_000 {
        data.push_str(&format!(
            "{i}\tname\\t{i}\t{}\n",
            if i % 2 == 0 { "t" } else { "f" }
        ));
    }
    data.push_str("10000\t\\N\tt\n");
    // Arbitrary chunk boundaries, including mid-line.
    for chunk in data.as_bytes().chunks(777) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    let copied = sink.finish().await.unwrap();
    assert_eq!(copied, 10_001);
    let row = client
        .query_one("SELECT count(*), sum(id) FROM c WHERE ok", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 5_001);
    let row = client
        .query_one("SELECT name FROM c WHERE id = 3", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "name\t3");

    let stream = client
        .copy_out("COPY (SELECT id, name FROM c WHERE id >= 9999 ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.map(|c| c.unwrap()).collect().await;
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(text, "9999\tname\\t9999\n10000\t\\N\n");
    server.stop().await;
}

#[tokio::test]
async fn authentication_and_database_checks() {
    let server = common::start().await;
    let port = server.addr.port();
    let bad = format!("postgres://app:wrong@127.0.0.1:{port}/app");
    let err = tokio_postgres::connect(&bad, tokio_postgres::NoTls)
        .await
        .err()
        .expect("refused");
    assert_eq!(code(&err), "28P01");
    let unknown = format!("postgres://nobody:app@127.0.0.1:{port}/app");
    let err = tokio_postgres::connect(&unknown, tokio_postgres::NoTls)
        .await
        .err()
        .expect("refused");
    assert_eq!(code(&err), "28P01");
    let other_db = format!("postgres://app:app@127.0.0.1:{port}/other");
    let err = tokio_postgres::connect(&other_db, tokio_postgres::NoTls)
        .await
        .err()
        .expect("refused");
    assert_eq!(code(&err), "3D000");
    server.stop().await;

    // md5, with the password stored in PostgreSQL's form md5(password || user).
    use md5::{Digest, Md5};
    let stored = format!("md5{:x}", Md5::digest(b"appapp"));
    let server = common::start_with("md5", &stored).await;
    let port = server.addr.port();
    let ok = tokio_postgres::connect(
        &format!("postgres://app:app@127.0.0.1:{port}/app"),
        tokio_postgres::NoTls,
    )
    .await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let bad = tokio_postgres::connect(
        &format!("postgres://app:nope@127.0.0.1:{port}/app"),
        tokio_postgres::NoTls,
    )
    .await;
    assert_eq!(code(&bad.err().expect("refused")), "28P01");
    server.stop().await;
}

#[tokio::test]
async fn execute_with_max_rows_suspends_the_portal() {
    let server = common::start().await;
    let mut client = server.connect().await;
    client
        .batch_execute("CREATE TABLE paged (id INT PRIMARY KEY, label TEXT)")
        .await
        .unwrap();
    for id in 1..=7i32 {
        client
            .execute(
                "INSERT INTO paged VALUES ($1, $2)",
                &[&id, &format!("row {id}")],
            )
            .await
            .unwrap();
    }
    let txn = client.transaction().await.unwrap();
    let stmt = txn
        .prepare("SELECT id, label FROM paged WHERE id > $1 ORDER BY id")
        .await
        .unwrap();
    let portal = txn.bind(&stmt, &[&1i32]).await.unwrap();
    // Each Execute with max_rows 4 returns at most 4 rows; PortalSuspended lets the next
    // Execute continue where the last one stopped.
    let mut pages = Vec::new();
    loop {
        let page = txn.query_portal(&portal, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        pages.push(
            page.iter()
                .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0].len(), 4);
    assert_eq!(pages[1].len(), 2);
    assert_eq!(pages[0][0], (2, "row 2".to_string()));
    assert_eq!(pages[1][1], (7, "row 7".to_string()));
    txn.commit().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn nulls_sort_as_in_postgresql() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE n (v INT); INSERT INTO n VALUES (2), (NULL), (1)")
        .await
        .unwrap();
    let order = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, Option<i32>>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        order("SELECT v FROM n ORDER BY v").await,
        [Some(1), Some(2), None]
    );
    assert_eq!(
        order("SELECT v FROM n ORDER BY v DESC").await,
        [None, Some(2), Some(1)]
    );
    assert_eq!(
        order("SELECT v FROM n ORDER BY v NULLS FIRST").await,
        [None, Some(1), Some(2)]
    );
    server.stop().await;
}
