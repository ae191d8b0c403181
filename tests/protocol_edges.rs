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
