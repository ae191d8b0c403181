//! Hostile and broken clients: the server answers with errors or closes that connection, and
//! keeps serving everyone else.

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn still_serves(server: &common::TestServer) {
    let client = server.connect().await;
    let row = client.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}

/// Sends raw bytes and reads until the server closes or goes quiet.
async fn send_raw(server: &common::TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let _ = socket.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        socket.read_to_end(&mut out),
    )
    .await;
    out
}

fn startup_message() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    for (k, v) in [("user", "app"), ("database", "app")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

#[tokio::test]
async fn garbage_truncated_and_absurd_messages_do_not_hurt_others() {
    let server = common::start().await;
    send_raw(&server, b"\x00\x00\x00\x08garbage garbage garbage").await;
    send_raw(&server, &[0, 0, 0]).await;
    send_raw(&server, &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]).await;
    let mut truncated = startup_message();
    truncated.truncate(10);
    send_raw(&server, &truncated).await;
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_and_huge_queries_get_errors() {
    let server = common::start_with("trust", "app").await;
    // A Query message with invalid UTF-8 after a trusted startup.
    let mut bytes = startup_message();
    let sql: &[u8] = b"SELECT '\xff\xfe'\0";
    bytes.push(b'Q');
    bytes.extend_from_slice(&((sql.len() + 4) as i32).to_be_bytes());
    bytes.extend_from_slice(sql);
    let reply = send_raw(&server, &bytes).await;
    assert!(!reply.is_empty());
    still_serves(&server).await;

    let client = server.connect().await;
    let huge = format!("SELECT '{}'", "x".repeat(10 * 1024 * 1024));
    let result = client.simple_query(&huge).await;
    match result {
        Ok(rows) => assert!(!rows.is_empty()),
        Err(e) => assert!(e.code().is_some(), "{e}"),
    }
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_at_once() {
    let server = common::start_with("trust", "app").await;
    let url = server.url();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let row = client.query_one("SELECT 1", &[]).await?;
            Ok::<i32, tokio_postgres::Error>(row.get(0))
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if let Ok(Ok(1)) = task.await {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000);
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_interrupts_a_running_statement() {
    let server = common::start().await;
    let client = server.connect().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client
        .simple_query("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    canceller.await.unwrap().unwrap();
    still_serves(&server).await;
    server.stop().await;
}
