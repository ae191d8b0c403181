//! Protocol edges through the wire: hostile Bind values, Describe answers, failed logins and
//! failed transactions, each checked as PostgreSQL answers them.

mod common;

use std::time::Duration;

use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// Every wait in these tests is bounded: a server that hangs fails the test.
const PATIENCE: Duration = Duration::from_secs(10);

async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {e}"))
}

/// A parameter whose binary form is given byte for byte.
#[derive(Debug)]
struct RawBinary(Vec<u8>);

impl ToSql for RawBinary {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> RawBinary {
    let mut bytes = Vec::new();
    for word in [ndigits, weight, sign as i16, dscale].iter().chain(digits) {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    RawBinary(bytes)
}

#[tokio::test]
async fn hostile_binary_parameters_get_errors_and_the_server_keeps_serving() {
    let server = common::start().await;
    let client = server.connect().await;
    let victim = server.connect().await;
    let cases: Vec<(Type, RawBinary, &str)> = vec![
        // dscale -1 made the decoder loop forever, growing without bound.
        (Type::NUMERIC, numeric(1, 0, 0, -1, &[1]), "22P03"),
        (Type::NUMERIC, numeric(1, 0, 0x1234, 0, &[1]), "22P03"),
        (Type::NUMERIC, numeric(1, 0, 0, 0, &[10000]), "22P03"),
        (Type::NUMERIC, numeric(i16::MAX, 0, 0, 0, &[]), "22P03"),
        (Type::NUMERIC, numeric(-1, 0, 0, 0, &[]), "22P03"),
        (
            Type::DATE,
            RawBinary(i32::MAX.to_be_bytes().to_vec()),
            "0A000",
        ),
        (
            Type::DATE,
            RawBinary(i32::MIN.to_be_bytes().to_vec()),
            "0A000",
        ),
        (Type::DATE, RawBinary(vec![0, 1]), "22P03"),
        (
            Type::TIMESTAMPTZ,
            RawBinary(i64::MAX.to_be_bytes().to_vec()),
            "0A000",
        ),
        (
            Type::TIMESTAMP,
            RawBinary(i64::MIN.to_be_bytes().to_vec()),
            "0A000",
        ),
        (
            Type::TIMESTAMP,
            RawBinary((i64::MAX - 1).to_be_bytes().to_vec()),
            "22008",
        ),
        (
            Type::TIME,
            RawBinary((-1i64).to_be_bytes().to_vec()),
            "22008",
        ),
        (Type::JSONB, RawBinary(vec![9, b'{', b'}']), "22P03"),
    ];
    for (ty, value, expected) in &cases {
        let statement = bounded(
            "prepare",
            client.prepare_typed("SELECT $1", std::slice::from_ref(ty)),
        )
        .await
        .unwrap();
        let err = bounded("query", client.query(&statement, &[value]))
            .await
            .expect_err("a hostile value is refused");
        assert_eq!(&code(&err), expected, "{ty} {value:?}: {err}");
        // The same session goes on.
        let row = bounded("next query", client.query_one("SELECT 1 + 1", &[]))
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
    }
    // A valid binary numeric still decodes.
    let statement = client
        .prepare_typed("SELECT $1::text", &[Type::NUMERIC])
        .await
        .unwrap();
    let row = bounded(
        "valid numeric",
        client.query_one(&statement, &[&numeric(2, 0, 0x4000, 3, &[12, 3400])]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, String>(0), "-12.340");
    // Other sessions were served throughout.
    let row = bounded("other session", victim.query_one("SELECT 3", &[]))
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    server.stop().await;
}

/// A hand-written frontend for byte-level checks: what the server sends, message by message.
struct RawFrontend {
    socket: tokio::net::TcpStream,
    read: Vec<u8>,
}

/// One backend message: its type byte and body.
type Message = (u8, Vec<u8>);

impl RawFrontend {
    /// Connects and sends a protocol 3.0 startup message.
    async fn start(addr: std::net::SocketAddr, user: &str, database: &str) -> RawFrontend {
        let socket = bounded("connect", tokio::net::TcpStream::connect(addr))
            .await
            .unwrap();
        let mut frontend = RawFrontend {
            socket,
            read: Vec::new(),
        };
        let mut body = 196608i32.to_be_bytes().to_vec();
        for (key, value) in [("user", user), ("database", database)] {
            body.extend(cstring(key));
            body.extend(cstring(value));
        }
        body.push(0);
        let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        message.extend(body);
        frontend.write(&message).await;
        frontend
    }

    async fn write(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        bounded("write", self.socket.write_all(bytes))
            .await
            .unwrap();
    }

    async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut message = vec![tag];
        message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        message.extend_from_slice(body);
        self.write(&message).await;
    }

    /// The next message, or `None` once the server has closed the connection.
    async fn next(&mut self) -> Option<Message> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.read.len() >= 5 {
                let length =
                    i32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]);
                let total = 1 + length as usize;
                if self.read.len() >= total {
                    let message: Vec<u8> = self.read.drain(..total).collect();
                    return Some((message[0], message[5..].to_vec()));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = bounded("read", self.socket.read(&mut chunk)).await.ok()?;
            if n == 0 {
                return None;
            }
            self.read.extend_from_slice(&chunk[..n]);
        }
    }

    /// Every message up to and including ReadyForQuery.
    async fn until_ready(&mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await {
            let ready = message.0 == b'Z';
            messages.push(message);
            if ready {
                return messages;
            }
        }
        panic!("the server closed the connection before ReadyForQuery: {messages:?}");
    }

    async fn query(&mut self, sql: &str) -> Vec<Message> {
        self.send(b'Q', &cstring(sql)).await;
        self.until_ready().await
    }
}

fn cstring(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

fn types(messages: &[Message]) -> String {
    messages.iter().map(|(tag, _)| *tag as char).collect()
}

/// The SQLSTATE of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|code| String::from_utf8_lossy(code).into_owned())
        .unwrap_or_default()
}

/// The tag of a CommandComplete body.
fn tag(body: &[u8]) -> String {
    String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body)).into_owned()
}

async fn trusted(server: &common::TestServer) -> RawFrontend {
    let mut frontend = RawFrontend::start(server.addr, "app", "app").await;
    let login = frontend.until_ready().await;
    assert_eq!(login.first().map(|m| m.0), Some(b'R'), "{login:?}");
    frontend
}

async fn trust_server() -> common::TestServer {
    common::start_with("trust", "app").await
}

#[tokio::test]
async fn describe_of_a_statement_without_result_columns_answers_no_data() {
    let server = trust_server().await;
    let mut frontend = trusted(&server).await;
    frontend
        .query("CREATE TABLE items (id INT PRIMARY KEY, name TEXT)")
        .await;
    // Parse, Describe statement, Bind, Describe portal, Execute, Sync, as pgjdbc batches.
    let describe = |target: u8, name: &str| {
        let mut body = vec![target];
        body.extend(cstring(name));
        body
    };
    let parse = |name: &str, sql: &str| {
        let mut body = cstring(name);
        body.extend(cstring(sql));
        body.extend_from_slice(&0i16.to_be_bytes());
        body
    };
    let bind = |values: &[&str]| {
        let mut body = cstring("");
        body.extend(cstring("s"));
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for value in values {
            body.extend_from_slice(&(value.len() as i32).to_be_bytes());
            body.extend_from_slice(value.as_bytes());
        }
        body.extend_from_slice(&0i16.to_be_bytes());
        body
    };
    let execute = {
        let mut body = cstring("");
        body.extend_from_slice(&0i32.to_be_bytes());
        body
    };
    let no_rows = [
        "INSERT INTO items VALUES ($1, $2)",
        "UPDATE items SET name = $2 WHERE id = $1",
        "DELETE FROM items WHERE id = $1 AND name <> $2",
    ];
    for sql in no_rows {
        frontend.send(b'P', &parse("s", sql)).await;
        frontend.send(b'D', &describe(b'S', "s")).await;
        frontend.send(b'B', &bind(&["1", "one"])).await;
        frontend.send(b'D', &describe(b'P', "")).await;
        frontend.send(b'E', &execute).await;
        frontend.send(b'C', &describe(b'S', "s")).await;
        frontend.send(b'S', &[]).await;
        let replies = frontend.until_ready().await;
        // ParseComplete, ParameterDescription, NoData, BindComplete, NoData, CommandComplete,
        // CloseComplete, ReadyForQuery: no RowDescription anywhere.
        assert_eq!(types(&replies), "1tn2nC3Z", "{sql}: {replies:?}");
    }
    for sql in [
        "CREATE TABLE more (a INT)",
        "SET application_name = 'x'",
        "BEGIN",
    ] {
        frontend.send(b'P', &parse("s", sql)).await;
        frontend.send(b'D', &describe(b'S', "s")).await;
        frontend.send(b'C', &describe(b'S', "s")).await;
        frontend.send(b'S', &[]).await;
        let replies = frontend.until_ready().await;
        assert_eq!(types(&replies), "1tn3Z", "{sql}: {replies:?}");
    }
    // A statement that returns rows still gets its RowDescription.
    frontend
        .send(b'P', &parse("s", "SELECT name FROM items WHERE id = $1"))
        .await;
    frontend.send(b'D', &describe(b'S', "s")).await;
    frontend.send(b'S', &[]).await;
    let replies = frontend.until_ready().await;
    assert_eq!(types(&replies), "1tTZ", "{replies:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_failed_login_closes_the_connection_without_ready_for_query() {
    let server = common::start().await;
    // SCRAM with a wrong password, through tokio-postgres: the message names the user.
    let port = server.addr.port();
    for user in ["app", "nobody"] {
        let url = format!("postgres://{user}:wrong@127.0.0.1:{port}/app");
        let err = bounded(
            "login",
            tokio_postgres::connect(&url, tokio_postgres::NoTls),
        )
        .await
        .err()
        .expect("a wrong password is refused");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "28P01");
        assert_eq!(db.severity(), "FATAL");
        assert_eq!(
            db.message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    server.stop().await;

    // Byte by byte: the FATAL ErrorResponse is the last message before the server closes.
    let server = trust_server().await;
    for (user, database, code) in [("nobody", "app", "28000"), ("app", "nosuch", "3D000")] {
        let mut frontend = RawFrontend::start(server.addr, user, database).await;
        let mut replies = Vec::new();
        while let Some(message) = frontend.next().await {
            replies.push(message);
        }
        assert_eq!(types(&replies), "E", "{user}/{database}: {replies:?}");
        assert_eq!(sqlstate(&replies[0].1), code);
    }
    server.stop().await;
}

/// Statements that fail in different layers: a refusal, a session setting, SQLite itself.
const FAILING: [(&str, &str); 4] = [
    ("LISTEN somewhere", "0A000"),
    ("SET shardgate.nosuch = 1", "42704"),
    ("SET shardgate.shard = 'nosuch'", "22P02"),
    ("SELECT * FROM nosuch", "42P01"),
];

#[tokio::test]
async fn any_error_fails_the_transaction_in_the_simple_protocol() {
    let server = trust_server().await;
    let mut frontend = trusted(&server).await;
    frontend.query("CREATE TABLE t (a INT)").await;
    for (sql, code) in FAILING {
        let replies = frontend.query("BEGIN").await;
        assert_eq!(types(&replies), "CZ", "{replies:?}");
        frontend.query("INSERT INTO t VALUES (1)").await;
        let replies = frontend.query(sql).await;
        assert_eq!(types(&replies), "EZ", "{sql}: {replies:?}");
        assert_eq!(sqlstate(&replies[0].1), code, "{sql}");
        // ReadyForQuery reports the failed transaction.
        assert_eq!(replies[1].1, b"E", "{sql}");
        let replies = frontend.query("INSERT INTO t VALUES (2)").await;
        assert_eq!(sqlstate(&replies[0].1), "25P02", "after {sql}: {replies:?}");
        let replies = frontend.query("COMMIT").await;
        assert_eq!(types(&replies), "CZ", "{replies:?}");
        assert_eq!(tag(&replies[0].1), "ROLLBACK", "COMMIT after {sql}");
        assert_eq!(replies[1].1, b"I");
        let replies = frontend.query("SELECT count(*) FROM t").await;
        assert_eq!(replies[1].0, b'D', "{replies:?}");
        assert!(
            replies[1].1.ends_with(b"0"),
            "rows committed after {sql}: {replies:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn any_error_fails_the_transaction_in_the_extended_protocol() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INT)")
        .await
        .unwrap();
    let bind_error = client.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
    for case in 0..=FAILING.len() {
        client.batch_execute("BEGIN").await.unwrap();
        client
            .execute("INSERT INTO t VALUES ($1)", &[&1i32])
            .await
            .unwrap();
        let (what, err) = match FAILING.get(case) {
            Some((sql, code)) => {
                let err = client.execute(*sql, &[]).await.unwrap_err();
                assert_eq!(&self::code(&err), code, "{sql}");
                (sql.to_string(), err)
            }
            // A value that does not decode as its type fails at Bind.
            None => {
                let err = client
                    .execute(&bind_error, &[&RawBinary(vec![1, 2, 3])])
                    .await
                    .unwrap_err();
                assert_eq!(code(&err), "22P03");
                ("a Bind error".to_string(), err)
            }
        };
        let next = client
            .execute("INSERT INTO t VALUES ($1)", &[&2i32])
            .await
            .unwrap_err();
        assert_eq!(code(&next), "25P02", "after {what} ({err})");
        client.batch_execute("COMMIT").await.unwrap();
        let row = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 0, "rows committed after {what}");
    }
    server.stop().await;
}

/// Two range shards: keys 1-100 and 101-200.
fn two_range_shards() -> String {
    common::config_text(
        "scram-sha-256",
        "app",
        "[sharding]\nstrategy = \"range\"\ntables = [{ name = \"users\", key = \"id\" }]\n\
         [[shards]]\nname = \"low\"\nprimary = \"low/primary.db\"\nmin_key = 1\nmax_key = 100\n\
         [[shards]]\nname = \"high\"\nprimary = \"high/primary.db\"\nmin_key = 101\nmax_key = 200\n",
    )
}

#[tokio::test]
async fn a_routing_error_fails_the_transaction_in_both_protocols() {
    let server = common::start_config(&two_range_shards()).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE users (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    // A write on a second shard inside a transaction, and a key outside every range.
    for (bad_key, code) in [(150, "0A000"), (500, "0A000")] {
        // The simple protocol.
        client.batch_execute("BEGIN").await.unwrap();
        client
            .batch_execute("INSERT INTO users VALUES (1, 1)")
            .await
            .unwrap();
        let err = client
            .batch_execute(&format!("INSERT INTO users VALUES ({bad_key}, 1)"))
            .await
            .unwrap_err();
        assert_eq!(self::code(&err), code, "key {bad_key}: {err}");
        let next = client
            .batch_execute("INSERT INTO users VALUES (2, 1)")
            .await
            .unwrap_err();
        assert_eq!(self::code(&next), "25P02", "simple, after key {bad_key}");
        client.batch_execute("COMMIT").await.unwrap();
        // The extended protocol.
        client.batch_execute("BEGIN").await.unwrap();
        let insert = "INSERT INTO users VALUES ($1, 1)";
        client.execute(insert, &[&1i32]).await.unwrap();
        let err = client.execute(insert, &[&bad_key]).await.unwrap_err();
        assert_eq!(self::code(&err), code, "key {bad_key}: {err}");
        let next = client.execute(insert, &[&2i32]).await.unwrap_err();
        assert_eq!(self::code(&next), "25P02", "extended, after key {bad_key}");
        client.batch_execute("COMMIT").await.unwrap();
        let row = client
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, i64>(0),
            0,
            "rows committed around key {bad_key}"
        );
    }
    server.stop().await;
}
