//! Differential tests of reads across shards: a corpus of queries runs through a 4-shard
//! shardgate (hash, consistent-hash and range placement) and on one plain SQLite database
//! holding the same rows; every answer must be the same (in order when the query's ORDER BY
//! determines the order, as a multiset otherwise). SQLite is the baseline because a single
//! shard answers with SQLite's semantics (NULLs sort first ascending, integer division, ...).
//!
//! `tests/golden/unsupported.txt` lists the statements refused across shards: each must fail
//! with SQLSTATE 0A000 and exactly the message in the file.
//!
//! A generated corpus (`generated_corpus_agrees_with_one_database_or_is_refused`, at the end)
//! adds 3,000 seeded random statements, each also run on a 1-shard proxy.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rusqlite::types::Value;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

// ---------------------------------------------------------------------------------------------
// The cluster and the baseline.

fn sharded_config(strategy: &str) -> String {
    let ranges = [(-1_000_000, 49), (50, 149), (150, 249), (250, 1_000_000)];
    let mut sections = format!(
        "[sharding]\nstrategy = \"{strategy}\"\n\
         tables = [{{ name = \"users\", key = \"id\" }}, {{ name = \"orders\", key = \"user_id\" }}]\n\
         reference_tables = [\"countries\"]\n"
    );
    for (i, (min, max)) in ranges.iter().enumerate() {
        let n = i + 1;
        let _ = write!(
            sections,
            "[[shards]]\nname = \"shard-{n}\"\nprimary = \"shard-{n}/primary.db\"\n"
        );
        if strategy == "range" {
            let _ = writeln!(sections, "min_key = {min}\nmax_key = {max}");
        }
    }
    common::config_text("trust", "app", &sections)
}

const SCHEMA: &str = "\
CREATE TABLE users (id INT PRIMARY KEY, name TEXT, age INT, city TEXT, score DOUBLE PRECISION);
CREATE TABLE orders (id INT, user_id INT, total INT, status TEXT);
CREATE TABLE countries (code TEXT PRIMARY KEY, name TEXT);
CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT);";

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const USER_IDS: std::ops::RangeInclusive<i64> = -6..=300;

/// `INSERT` statements (valid in both dialects) for the whole data set.
fn data_statements() -> Vec<String> {
    let mut rng = Lcg(20240611);
    let names = [
        "Alice", "Bob", "Carol", "Dave", "Eve", "Mallory", "Trent", "Zoe", "alice", "O'Brien",
        "Émile",
    ];
    let cities = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "paris"];
    let mut users = Vec::new();
    for id in USER_IDS.filter(|id| *id != 0) {
        let name = if rng.below(13) == 0 {
            "NULL".to_string()
        } else {
            text(rng.pick(&names))
        };
        let age = if rng.below(10) == 0 {
            "NULL".to_string()
        } else {
            (rng.below(95) as i64 - 10).to_string()
        };
        let city = if rng.below(7) == 0 {
            "NULL".to_string()
        } else {
            text(rng.pick(&cities))
        };
        let score = if rng.below(12) == 0 {
            "NULL".to_string()
        } else {
            // Multiples of 0.25: sums are exact in any order.
            format!("{}", (rng.below(2001) as f64 - 1000.0) / 4.0)
        };
        // A few keys written as decimals: SQLite stores (and shardgate places) the integer.
        let key = if id % 50 == 0 {
            format!("{id}.0")
        } else {
            id.to_string()
        };
        users.push(format!("({key}, {name}, {age}, {city}, {score})"));
    }
    let statuses = ["new", "paid", "shipped", "cancelled"];
    let mut orders = Vec::new();
    for id in 1..=1000 {
        let user_id = match rng.below(40) {
            // Orders of users that do not exist.
            0 => 400 + rng.below(20) as i64,
            _ => {
                let span = (USER_IDS.end() - USER_IDS.start() + 1) as u64;
                let id = USER_IDS.start() + rng.below(span) as i64;
                if id == 0 { 1 } else { id }
            }
        };
        let total = if rng.below(20) == 0 {
            "NULL".to_string()
        } else {
            (rng.below(600) as i64 - 60).to_string()
        };
        let status = if rng.below(15) == 0 {
            "NULL".to_string()
        } else {
            text(rng.pick(&statuses))
        };
        // A few keys written as strings.
        let user_id = if id % 97 == 0 {
            format!("'{user_id}'")
        } else {
            user_id.to_string()
        };
        orders.push(format!("({id}, {user_id}, {total}, {status})"));
    }
    let mut statements = Vec::new();
    for chunk in users.chunks(40) {
        statements.push(format!(
            "INSERT INTO users (id, name, age, city, score) VALUES {}",
            chunk.join(", ")
        ));
    }
    for chunk in orders.chunks(100) {
        statements.push(format!(
            "INSERT INTO orders (id, user_id, total, status) VALUES {}",
            chunk.join(", ")
        ));
    }
    statements.push(
        "INSERT INTO countries (code, name) VALUES ('FR', 'Paris'), ('DE', 'Berlin'), \
         ('JP', 'Tokyo'), ('PE', 'Lima'), ('NO', 'Oslo'), ('XX', 'Atlantis')"
            .into(),
    );
    statements.push(
        "INSERT INTO settings (k, v) VALUES ('mode', 'fast'), ('limit', '10'), \
         ('owner', NULL), ('Paris', 'capital')"
            .into(),
    );
    statements
}

struct Cluster {
    server: common::TestServer,
    client: tokio_postgres::Client,
    baseline: rusqlite::Connection,
    /// One shard sorts NULLs as PostgreSQL does (last ascending), not as SQLite does: the
    /// baseline then says NULLS FIRST/LAST explicitly.
    postgres_nulls: bool,
}

/// The baseline text of `sql` when NULLs sort as in PostgreSQL: every top-level ORDER BY term
/// without NULLS FIRST/LAST gets PostgreSQL's default (last ascending, first descending).
fn with_postgres_nulls(sql: &str) -> String {
    use sqlparser::ast::{OrderByKind, OrderBySort, Statement};
    let dialect = sqlparser::dialect::SQLiteDialect {};
    let mut statements = sqlparser::parser::Parser::parse_sql(&dialect, sql)
        .unwrap_or_else(|e| panic!("the test cannot parse {sql}: {e}"));
    let [Statement::Query(query)] = statements.as_mut_slice() else {
        panic!("one query expected: {sql}");
    };
    let Some(order_by) = &mut query.order_by else {
        return sql.to_string();
    };
    if let OrderByKind::Expressions(terms) = &mut order_by.kind {
        for term in terms {
            if term.options.nulls_first.is_none() {
                term.options.nulls_first =
                    Some(matches!(term.options.sort, Some(OrderBySort::Desc)));
            }
        }
    }
    query.to_string()
}

impl Cluster {
    fn baseline_rows(&self, sql: &str) -> Result<Rows, String> {
        if self.postgres_nulls {
            baseline_rows(&self.baseline, &with_postgres_nulls(sql))
        } else {
            baseline_rows(&self.baseline, sql)
        }
    }
}

async fn cluster(strategy: &str) -> Cluster {
    let server = common::start_config(&sharded_config(strategy)).await;
    let client = server.connect().await;
    let baseline =
        rusqlite::Connection::open(server.data_dir.join("baseline.db")).expect("baseline opens");
    client.batch_execute(SCHEMA).await.expect("schema");
    // PostgreSQL's LIKE is case-sensitive (shardgate sets the same pragma on every shard).
    baseline
        .pragma_update(None, "case_sensitive_like", "ON")
        .expect("pragma");
    baseline.execute_batch(SCHEMA).expect("baseline schema");
    for statement in data_statements() {
        client
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
        baseline
            .execute_batch(&statement)
            .unwrap_or_else(|e| panic!("baseline {statement}: {e}"));
    }
    let first = proxy_rows(&client, "SELECT v FROM settings ORDER BY v LIMIT 1")
        .await
        .expect("NULL order");
    Cluster {
        server,
        client,
        baseline,
        postgres_nulls: first != [["NULL".to_string()]],
    }
}

// ---------------------------------------------------------------------------------------------
// Values, normalized.

/// A value as compared: NULL, a number (integral values as integers, others to 9 significant
/// digits) or text. The proxy's text forms and SQLite's native values normalize alike.
fn normalize(value: Option<&str>) -> String {
    let Some(s) = value else {
        return "NULL".into();
    };
    match s {
        "t" => return "1".into(),
        "f" => return "0".into(),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return i.to_string();
    }
    let numeric = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if numeric && let Ok(f) = s.parse::<f64>() {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            return format!("{}", f as i64);
        }
        return format!("{f:.8e}");
    }
    format!("'{s}'")
}

fn normalize_sqlite(value: &Value) -> String {
    match value {
        Value::Null => normalize(None),
        Value::Integer(i) => normalize(Some(&i.to_string())),
        Value::Real(f) => normalize(Some(&format!("{f:?}"))),
        Value::Text(t) => normalize(Some(t)),
        Value::Blob(b) => format!("blob{b:?}"),
    }
}

type Rows = Vec<Vec<String>>;

fn baseline_rows(conn: &rusqlite::Connection, sql: &str) -> Result<Rows, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let width = stmt.column_count();
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let value: Value = row.get(i).map_err(|e| e.to_string())?;
            values.push(normalize_sqlite(&value));
        }
        out.push(values);
    }
    Ok(out)
}

async fn proxy_rows(client: &tokio_postgres::Client, sql: &str) -> Result<Rows, String> {
    let messages = client.simple_query(sql).await.map_err(describe_error)?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|i| normalize(row.get(i))).collect())
            }
            _ => None,
        })
        .collect())
}

/// Typed (extended protocol, binary results) rows, normalized like text ones.
async fn proxy_typed_rows(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Rows, String> {
    let rows = client.query(sql, params).await.map_err(describe_error)?;
    let mut out = Vec::new();
    for row in &rows {
        let mut values = Vec::new();
        for (i, column) in row.columns().iter().enumerate() {
            let text = match *column.type_() {
                Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
                Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
                Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
                Type::FLOAT4 => row.get::<_, Option<f32>>(i).map(|v| format!("{v:?}")),
                Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| format!("{v:?}")),
                Type::BOOL => row
                    .get::<_, Option<bool>>(i)
                    .map(|v| if v { "t" } else { "f" }.to_string()),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    row.get::<_, Option<String>>(i)
                }
                ref other => return Err(format!("column {i} has type {other} in the test")),
            };
            values.push(normalize(text.as_deref()));
        }
        out.push(values);
    }
    Ok(out)
}

fn describe_error(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus.

struct Case {
    form: &'static str,
    /// The text sent to shardgate (PostgreSQL).
    pg: String,
    /// The same query for the SQLite baseline.
    lite: String,
    /// The ORDER BY determines the order of every row: compare in order.
    ordered: bool,
    /// A LIMIT without ORDER BY: any rows of this (baseline) query will do, as many as
    /// `lite` returns.
    subset_of: Option<String>,
}

struct Corpus(Vec<Case>);

impl Corpus {
    fn add(&mut self, form: &'static str, sql: impl Into<String>, ordered: bool) {
        let sql = sql.into();
        self.0.push(Case {
            form,
            lite: sql.clone(),
            pg: sql,
            ordered,
            subset_of: None,
        });
    }

    /// `sql` + `limit` without ORDER BY: rows of `sql`, as many as the limit allows.
    fn add_limited(&mut self, form: &'static str, sql: &str, limit: &str) {
        self.0.push(Case {
            form,
            pg: format!("{sql}{limit}"),
            lite: format!("{sql}{limit}"),
            ordered: false,
            subset_of: Some(sql.to_string()),
        });
    }

    /// A query whose SQLite form differs (PostgreSQL-only syntax shardgate rewrites).
    fn add2(&mut self, form: &'static str, pg: &str, lite: &str, ordered: bool) {
        self.0.push(Case {
            form,
            pg: pg.into(),
            lite: lite.into(),
            ordered,
            subset_of: None,
        });
    }
}

/// What a query exercises, for the summary (a query counts under each tag that applies).
fn features(sql: &str) -> Vec<&'static str> {
    let s = sql.to_ascii_lowercase();
    let sharded = s.contains("users") || s.contains("orders");
    let mut tags = Vec::new();
    let mut tag = |on: bool, name: &'static str| {
        if on {
            tags.push(name)
        }
    };
    tag(
        s.contains("users") && s.contains("orders"),
        "join users/orders (co-located)",
    );
    tag(
        sharded && s.contains("countries"),
        "join with the reference table",
    );
    tag(!sharded, "reference/unsharded table only");
    tag(s.contains("where"), "WHERE");
    tag(
        [
            " id = ",
            " id in ",
            "user_id = ",
            "user_id in",
            ".id = 42",
            "id between",
            "id < 0",
        ]
        .iter()
        .any(|k| s.contains(k)),
        "WHERE on the shard key",
    );
    tag(s.contains(" or "), "OR");
    tag(s.contains("order by"), "ORDER BY");
    tag(s.contains(" desc"), "DESC");
    tag(
        s.contains("nulls first") || s.contains("nulls last"),
        "NULLS FIRST/LAST",
    );
    tag(
        s.contains(" limit ") || s.contains(" offset "),
        "LIMIT/OFFSET",
    );
    tag(s.starts_with("select distinct"), "SELECT DISTINCT");
    tag(
        ["count(", "sum(", "min(", "max(", "avg("]
            .iter()
            .any(|f| s.contains(f)),
        "aggregates",
    );
    tag(s.contains("(distinct "), "aggregate(DISTINCT ...)");
    tag(s.contains("group by"), "GROUP BY");
    tag(s.contains("having"), "HAVING");
    tag(s.contains("filter (where"), "FILTER");
    tags
}

fn clause(prefix: &str, body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(" {prefix} {body}")
    }
}

/// `(PostgreSQL, SQLite)` LIMIT/OFFSET tails.
const LIMITS: &[(&str, &str)] = &[
    ("", ""),
    (" LIMIT 5", " LIMIT 5"),
    (" LIMIT 10 OFFSET 3", " LIMIT 10 OFFSET 3"),
    (" LIMIT 1", " LIMIT 1"),
    (" OFFSET 280", " LIMIT -1 OFFSET 280"),
    (" LIMIT 0", " LIMIT 0"),
    (" LIMIT 1000 OFFSET 1", " LIMIT 1000 OFFSET 1"),
    (" LIMIT 7 OFFSET 300", " LIMIT 7 OFFSET 300"),
];

const USER_FILTERS: &[&str] = &[
    "",
    "id = 7",
    "id IN (1, 2, 42, 99, -3)",
    "id = 3 OR id = 250",
    "age > 30 AND city = 'Paris'",
    "age IS NULL OR city IS NULL",
    "id BETWEEN 10 AND 160",
    "id < 0",
    "score < 0 AND id > 100",
    "name LIKE 'A%'",
    "id IN (5, 6) AND age > 20",
    "(id = 8 OR id = 9) AND (score > 0 OR score IS NULL)",
    "id >= 240",
    "id = 1 AND id = 2",
    "users.id = 42",
    "city <> 'Paris' AND score BETWEEN -100 AND 100",
];

fn plain_selects(corpus: &mut Corpus) {
    // (select list, ORDER BY terms that determine the order, each ending with a unique key).
    let selects: &[(&str, &[&str])] = &[
        (
            "id, name, age",
            &["id", "age DESC, id", "name NULLS LAST, id DESC", "1 DESC"],
        ),
        (
            "id, city, score",
            &["city DESC NULLS FIRST, score, id", "score * -1, id", "3, 1"],
        ),
        (
            "*",
            &[
                "id DESC",
                "age NULLS LAST, id",
                "upper(city) NULLS LAST, age DESC NULLS FIRST, id",
            ],
        ),
        (
            "id, age * 2 AS a2, upper(name) AS un",
            &[
                "a2 DESC, id",
                "un, a2 NULLS FIRST, id",
                "2 DESC NULLS LAST, 1",
            ],
        ),
        ("name, age", &["age, id", "name DESC, age, id"]),
        (
            "id, coalesce(city, 'none') AS c, score + 1 AS s1, age % 7 AS m",
            &["c, s1 DESC, id", "m NULLS LAST, id DESC", "age / 10, -id"],
        ),
        ("id AS key, name", &["key DESC", "key"]),
    ];
    let mut turn = 0usize;
    for (select, orders) in selects {
        for filter in USER_FILTERS {
            let base = format!("SELECT {select} FROM users{}", clause("WHERE", filter));
            corpus.add("plain SELECT", base.clone(), false);
            // Two ordered forms per filter, cycling through ORDER BY terms and LIMITs.
            for _ in 0..2 {
                let order = orders[turn % orders.len()];
                let (pg_limit, lite_limit) = LIMITS[turn % LIMITS.len()];
                turn += 1;
                let pg = format!("{base} ORDER BY {order}{pg_limit}");
                let lite = format!("{base} ORDER BY {order}{lite_limit}");
                let form = if pg_limit.is_empty() {
                    "ORDER BY"
                } else {
                    "ORDER BY + LIMIT/OFFSET"
                };
                corpus.add2(form, &pg, &lite, true);
            }
        }
    }
}

fn distinct_selects(corpus: &mut Corpus) {
    let selects: &[(&str, &str)] = &[
        ("city", "city"),
        ("city", "city DESC NULLS LAST"),
        ("name", "name NULLS LAST"),
        ("age / 10", "1 DESC"),
        ("city, age > 40 AS old", "city, old"),
        ("upper(city) AS uc", "uc"),
        ("name, city", "2, 1 DESC"),
    ];
    let filters = [
        "",
        "id > 100",
        "score < 0",
        "id IN (1, 2, 42)",
        "age IS NOT NULL",
    ];
    let mut turn = 0;
    for (select, order) in selects {
        for filter in filters {
            let base = format!(
                "SELECT DISTINCT {select} FROM users{}",
                clause("WHERE", filter)
            );
            corpus.add("DISTINCT", base.clone(), false);
            let (pg_limit, lite_limit) = LIMITS[turn % LIMITS.len()];
            turn += 1;
            corpus.add2(
                "DISTINCT",
                &format!("{base} ORDER BY {order}{pg_limit}"),
                &format!("{base} ORDER BY {order}{lite_limit}"),
                true,
            );
        }
    }
}

fn aggregates(corpus: &mut Corpus) {
    // (items before the aggregates, GROUP BY, ORDER BY key naming the groups).
    let groups: &[(&str, &str, &str)] = &[
        ("", "", ""),
        ("city, ", "city", "city"),
        ("age, ", "age", "age"),
        ("age / 10, ", "age / 10", "age / 10"),
        ("age / 10 AS decade, ", "decade", "decade"),
        ("city AS c, ", "1", "1"),
        ("city, name, ", "city, name", "city, name"),
        (
            "coalesce(city, 'none') AS c, ",
            "coalesce(city, 'none')",
            "c",
        ),
        ("score > 0 AS positive, ", "score > 0", "positive"),
    ];
    let aggregates = [
        "count(*)",
        "count(age), sum(age)",
        "min(score), max(score)",
        "avg(age)",
        "avg(score), count(name)",
        "count(DISTINCT city)",
        "sum(age) * 2, count(*) + 1",
        "count(DISTINCT id), count(DISTINCT age)",
        "max(age) - min(age) AS spread, count(name)",
        "min(name), max(city)",
        "sum(DISTINCT age), avg(DISTINCT score)",
        "count(*) AS n, sum(score) / count(*) AS mean",
    ];
    let filters = [
        "",
        "id > 50",
        "city IS NOT NULL",
        "id IN (1, 2, 42)",
        "id = 17",
        "score > 0 OR age < 10",
    ];
    let havings = [
        "",
        "count(*) > 3",
        "sum(age) > 100 OR sum(age) IS NULL",
        "min(score) < 0",
    ];
    let mut turn = 0usize;
    for (prefix, group_by, key) in groups {
        for (a, aggregate) in aggregates.iter().enumerate() {
            let filter = filters[turn % filters.len()];
            let having = havings[(turn / 2) % havings.len()];
            turn += 1;
            let base = format!(
                "SELECT {prefix}{aggregate} FROM users{}{}{}",
                clause("WHERE", filter),
                clause("GROUP BY", group_by),
                clause("HAVING", having)
            );
            let form = if group_by.is_empty() {
                "aggregate"
            } else {
                "GROUP BY"
            };
            if key.is_empty() {
                // One row at most.
                corpus.add(form, base, true);
                continue;
            }
            corpus.add(form, base.clone(), false);
            let first_aggregate = prefix.matches(',').count() + 1;
            let order = match a % 4 {
                0 => key.to_string(),
                1 => format!("count(*) DESC, {key}"),
                2 => format!("{first_aggregate} DESC NULLS LAST, {key}"),
                _ => format!("{key} DESC NULLS FIRST"),
            };
            let (pg_limit, lite_limit) = [
                ("", ""),
                (" LIMIT 3", " LIMIT 3"),
                (" LIMIT 2 OFFSET 1", " LIMIT 2 OFFSET 1"),
                (" OFFSET 2", " LIMIT -1 OFFSET 2"),
            ][a % 4];
            corpus.add2(
                form,
                &format!("{base} ORDER BY {order}{pg_limit}"),
                &format!("{base} ORDER BY {order}{lite_limit}"),
                true,
            );
        }
    }
}

const JOIN: &str = "users u JOIN orders o ON u.id = o.user_id";

fn joins(corpus: &mut Corpus) {
    let filters = [
        "",
        "u.id = 42",
        "o.user_id IN (1, 2, 3)",
        "o.status = 'paid' AND u.age > 30",
        "u.city = 'Paris' OR o.total > 400",
        "o.total IS NULL",
    ];
    let orders = [
        "o.id",
        "o.total DESC NULLS LAST, o.id",
        "u.name, o.id DESC",
        "4, 3",
    ];
    for (i, filter) in filters.iter().enumerate() {
        let base = format!(
            "SELECT u.id, u.name, o.id, o.total FROM {JOIN}{}",
            clause("WHERE", filter)
        );
        corpus.add("join", base.clone(), false);
        let (pg_limit, lite_limit) = LIMITS[i % LIMITS.len()];
        corpus.add2(
            "join",
            &format!("{base} ORDER BY {}{pg_limit}", orders[i % orders.len()]),
            &format!("{base} ORDER BY {}{lite_limit}", orders[i % orders.len()]),
            true,
        );
        corpus.add(
            "join + aggregate",
            format!(
                "SELECT u.city, count(*), sum(o.total), avg(o.total), count(DISTINCT o.status), \
                 min(o.total) FROM {JOIN}{} GROUP BY u.city ORDER BY u.city",
                clause("WHERE", filter)
            ),
            true,
        );
        corpus.add(
            "join + aggregate",
            format!(
                "SELECT o.status, count(DISTINCT u.id) AS buyers, max(u.score) FROM {JOIN}{} \
                 GROUP BY o.status HAVING count(*) > 1 ORDER BY buyers DESC, o.status",
                clause("WHERE", filter)
            ),
            true,
        );
    }
    // Grouped joins: (group items, GROUP BY) × aggregates × filters.
    let groups = [
        ("u.city", "u.city"),
        ("o.status", "o.status"),
        ("u.id", "u.id"),
        ("u.age / 10 AS decade", "decade"),
        ("u.city, o.status", "1, 2"),
    ];
    let aggregates = [
        "count(*)",
        "sum(o.total), count(o.total)",
        "avg(o.total), max(u.score)",
        "count(DISTINCT o.status), count(DISTINCT u.id)",
        "min(o.total) * 2, sum(o.total) - count(*) AS adjusted",
        "count(*) FILTER (WHERE o.total > 200)",
    ];
    for (g, (items, group_by)) in groups.iter().enumerate() {
        for (a, aggregate) in aggregates.iter().enumerate() {
            let filter = filters[(g + a) % filters.len()];
            let width = items.matches(',').count() + 1;
            let order: Vec<String> = (1..=width).map(|i| i.to_string()).collect();
            let having = if a % 2 == 0 {
                " HAVING count(*) > 1"
            } else {
                ""
            };
            corpus.add(
                "join + aggregate",
                format!(
                    "SELECT {items}, {aggregate} FROM {JOIN}{} GROUP BY {group_by}{having} \
                     ORDER BY {}{}",
                    clause("WHERE", filter),
                    order.join(", "),
                    if a % 3 == 0 { " LIMIT 4" } else { "" }
                ),
                true,
            );
        }
    }
    let hand = [
        (
            "SELECT count(*) FROM users u JOIN orders o ON u.id = o.user_id",
            true,
        ),
        (
            "SELECT count(*), sum(o.total) FROM users u, orders o WHERE u.id = o.user_id AND u.age > 40",
            true,
        ),
        (
            "SELECT u.id, count(o.id) AS n FROM users u LEFT JOIN orders o ON u.id = o.user_id GROUP BY u.id ORDER BY n DESC, u.id LIMIT 10",
            true,
        ),
        (
            "SELECT u.id, u.name FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE o.id IS NULL ORDER BY u.id",
            true,
        ),
        (
            "SELECT o.id, u.name FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL ORDER BY o.id",
            true,
        ),
        (
            "SELECT u.age / 10 AS decade, sum(o.total) * 2 AS double_total, count(*) + 1 FROM users u JOIN orders o ON u.id = o.user_id GROUP BY u.age / 10 ORDER BY decade NULLS LAST",
            true,
        ),
        (
            "SELECT DISTINCT o.status FROM users u JOIN orders o ON u.id = o.user_id ORDER BY o.status",
            true,
        ),
        (
            "SELECT u.id, o.total FROM users u JOIN orders o ON u.id = o.user_id WHERE u.id = 42 ORDER BY o.total DESC, o.id",
            true,
        ),
        (
            "SELECT u.city, o.status, count(*) FROM users u JOIN orders o ON u.id = o.user_id GROUP BY u.city, o.status ORDER BY 3 DESC, 1, 2 LIMIT 8",
            true,
        ),
        (
            "SELECT max(o.total) - min(o.total), avg(u.age) FROM users u JOIN orders o ON o.user_id = u.id WHERE o.status = 'new'",
            true,
        ),
        (
            "SELECT u.id FROM users u JOIN orders o ON u.id = o.user_id GROUP BY u.id HAVING sum(o.total) > 1000 ORDER BY u.id",
            true,
        ),
        (
            "SELECT u.id, o.id FROM users u JOIN orders o ON u.id = o.user_id AND o.total > 300 ORDER BY o.id LIMIT 20 OFFSET 5",
            true,
        ),
        (
            "SELECT u.name, o.status FROM users u JOIN orders o ON u.id = o.user_id WHERE u.id IN (1, 2, 42, 250)",
            false,
        ),
        (
            "SELECT u.city AS city, count(*) FROM users u JOIN orders o ON u.id = o.user_id GROUP BY city ORDER BY city",
            true,
        ),
        (
            "SELECT u.city, o.status, count(*) FROM users u JOIN orders o ON u.id = o.user_id GROUP BY u.city, o.status ORDER BY city, status DESC",
            true,
        ),
    ];
    for (sql, ordered) in hand {
        corpus.add("join", sql, ordered);
    }
    // Joins with the reference table, alone and with orders.
    let reference = [
        (
            "SELECT u.id, c.code FROM users u JOIN countries c ON c.name = u.city ORDER BY u.id",
            true,
        ),
        (
            "SELECT u.id, c.code FROM users u JOIN countries c ON c.name = u.city WHERE u.id IN (1, 2, 3, 4, 5)",
            false,
        ),
        (
            "SELECT c.code, count(*), avg(u.score) FROM users u JOIN countries c ON c.name = u.city GROUP BY c.code ORDER BY c.code",
            true,
        ),
        (
            "SELECT c.code, count(*) FROM users u LEFT JOIN countries c ON c.name = u.city GROUP BY c.code ORDER BY 2 DESC, 1",
            true,
        ),
        (
            "SELECT c.code, sum(o.total) FROM users u JOIN orders o ON u.id = o.user_id JOIN countries c ON c.name = u.city GROUP BY c.code ORDER BY c.code DESC",
            true,
        ),
        (
            "SELECT DISTINCT c.name FROM users u JOIN countries c ON c.name = u.city ORDER BY 1 LIMIT 3",
            true,
        ),
        (
            "SELECT u.name, c.code FROM countries c JOIN users u ON u.city = c.name WHERE c.code = 'FR' AND u.age > 20 ORDER BY u.name, u.id",
            true,
        ),
        (
            "SELECT count(DISTINCT c.code) FROM users u JOIN countries c ON c.name = u.city WHERE u.score > 0",
            true,
        ),
    ];
    for (sql, ordered) in reference {
        corpus.add("join with reference table", sql, ordered);
    }
}

fn unsharded(corpus: &mut Corpus) {
    let queries = [
        ("SELECT * FROM countries ORDER BY code", true),
        ("SELECT count(*) FROM countries", true),
        (
            "SELECT name FROM countries WHERE code IN ('FR', 'JP')",
            false,
        ),
        ("SELECT * FROM settings ORDER BY k", true),
        (
            "SELECT v, count(*) FROM settings GROUP BY v ORDER BY v",
            true,
        ),
        ("SELECT k FROM settings WHERE v IS NULL", false),
        (
            "SELECT s.k, c.code FROM settings s JOIN countries c ON c.name = s.k",
            false,
        ),
        ("SELECT 1 + 1, 'x'", true),
    ];
    for (sql, ordered) in queries {
        corpus.add("reference/unsharded table", sql, ordered);
    }
}

fn hand_written(corpus: &mut Corpus) {
    let queries = [
        ("SELECT count(*) FROM users", true),
        ("SELECT count(*) FROM orders", true),
        (
            "SELECT count(*), count(name), count(age), count(city), count(score) FROM users",
            true,
        ),
        (
            "SELECT sum(age), min(age), max(age), avg(age), sum(score), avg(score) FROM users",
            true,
        ),
        (
            "SELECT count(DISTINCT name), count(DISTINCT city), count(DISTINCT user_id) FROM users, orders WHERE users.id = orders.user_id",
            true,
        ),
        ("SELECT count(DISTINCT user_id) FROM orders", true),
        ("SELECT sum(total) FROM orders WHERE user_id = 42", true),
        (
            "SELECT sum(total), count(*) FROM orders WHERE user_id IN (1, 2, 42)",
            true,
        ),
        (
            "SELECT status, count(*) FROM orders GROUP BY status HAVING count(*) > 50 ORDER BY 2 DESC, 1",
            true,
        ),
        (
            "SELECT status, sum(total) AS s FROM orders GROUP BY status ORDER BY s NULLS FIRST",
            true,
        ),
        (
            "SELECT user_id, count(*) AS n FROM orders GROUP BY user_id ORDER BY n DESC, user_id LIMIT 5",
            true,
        ),
        (
            "SELECT user_id % 10 AS bucket, count(*) FROM orders GROUP BY user_id % 10 ORDER BY bucket",
            true,
        ),
        ("SELECT count(*) FROM users WHERE id = 1 AND id = 2", true),
        ("SELECT * FROM users WHERE id = 42", true),
        ("SELECT * FROM users WHERE 42 = id", true),
        ("SELECT * FROM users WHERE id = '42'", true),
        ("SELECT * FROM users WHERE id = 42.0", true),
        ("SELECT * FROM users WHERE id IN (42.0, 7)", false),
        ("SELECT * FROM users WHERE (id) = -3", true),
        (
            "SELECT name FROM users WHERE id = -6 OR id = 300 ORDER BY name",
            true,
        ),
        ("SELECT count(*) FROM users WHERE id > 1000", true),
        ("SELECT min(id), max(id) FROM users", true),
        ("SELECT max(score) FROM users WHERE score IS NULL", true),
        (
            "SELECT count(*), sum(age), avg(age), min(name) FROM users WHERE id < -100",
            true,
        ),
        (
            "SELECT count(DISTINCT city) FROM users WHERE id < -100",
            true,
        ),
        (
            "SELECT city, count(*) FROM users WHERE id < -100 GROUP BY city",
            true,
        ),
        ("SELECT count(*) FROM users HAVING count(*) > 5", true),
        ("SELECT count(*) FROM users HAVING count(*) > 5000", true),
        ("SELECT city FROM users GROUP BY city ORDER BY city", true),
        (
            "SELECT city, count(*) * 10 + 1 AS weird FROM users GROUP BY city HAVING count(*) > 1 AND min(age) < 50 ORDER BY weird DESC, city",
            true,
        ),
        (
            "SELECT city, count(*) FROM users GROUP BY city ORDER BY max(score) DESC NULLS LAST, city",
            true,
        ),
        (
            "SELECT city, avg(age) FROM users GROUP BY city ORDER BY avg(age), city",
            true,
        ),
        (
            "SELECT age, count(*) FROM users GROUP BY age HAVING age > 70 ORDER BY age",
            true,
        ),
        (
            "SELECT length(name) AS l, count(*) FROM users GROUP BY length(name) ORDER BY l NULLS LAST",
            true,
        ),
        (
            "SELECT count(*) - count(age) AS missing_ages FROM users",
            true,
        ),
        ("SELECT sum(age) / count(age), avg(age) FROM users", true),
        (
            "SELECT city, count(DISTINCT name), count(DISTINCT age), count(*) FROM users GROUP BY city ORDER BY city",
            true,
        ),
        (
            "SELECT DISTINCT city, count(*) FROM users GROUP BY city, name ORDER BY 1, 2",
            true,
        ),
        (
            "SELECT name, score FROM users ORDER BY score DESC NULLS LAST, id LIMIT 10",
            true,
        ),
        (
            "SELECT name, score FROM users ORDER BY score NULLS FIRST, id DESC LIMIT 10 OFFSET 10",
            true,
        ),
        (
            "SELECT id FROM users ORDER BY name DESC, age, score, id LIMIT 50",
            true,
        ),
        ("SELECT id, -age AS age FROM users ORDER BY age, id", true),
        ("SELECT * FROM users ORDER BY 1 LIMIT 4", true),
        ("SELECT * FROM users ORDER BY 3 DESC, 1 LIMIT 4", true),
        (
            "SELECT *, id AS again FROM users ORDER BY 6 DESC LIMIT 4",
            true,
        ),
        (
            "SELECT u.* FROM users u WHERE u.id BETWEEN 100 AND 110 ORDER BY u.age, u.id",
            true,
        ),
        (
            "SELECT id, name || '!' AS shout, abs(score) FROM users WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8) ORDER BY shout NULLS LAST, id",
            true,
        ),
        (
            "SELECT id, CASE WHEN age < 18 THEN 'minor' WHEN age IS NULL THEN 'unknown' ELSE 'adult' END AS kind FROM users ORDER BY kind, id DESC LIMIT 30",
            true,
        ),
        (
            "SELECT CASE WHEN age < 18 THEN 'minor' ELSE 'adult' END AS kind, count(*) FROM users GROUP BY 1 ORDER BY 1",
            true,
        ),
        (
            "SELECT DISTINCT status FROM orders ORDER BY status DESC",
            true,
        ),
        (
            "SELECT DISTINCT user_id FROM orders WHERE total > 500 ORDER BY user_id",
            true,
        ),
        (
            "SELECT id, total FROM orders WHERE user_id = 7 ORDER BY id",
            true,
        ),
        (
            "SELECT user_id, sum(total) FROM orders WHERE user_id BETWEEN 40 AND 60 GROUP BY user_id ORDER BY user_id",
            true,
        ),
        (
            "SELECT count(*) FROM orders WHERE user_id < 0 OR user_id > 399",
            true,
        ),
        (
            "SELECT * FROM orders ORDER BY total DESC NULLS LAST, id LIMIT 15",
            true,
        ),
        (
            "SELECT status, min(total), max(total), count(total) FROM orders GROUP BY status ORDER BY status NULLS LAST",
            true,
        ),
        ("SELECT count(*) FROM users WHERE name = 'O''Brien'", true),
        (
            "SELECT id FROM users WHERE name = 'Émile' ORDER BY id",
            true,
        ),
        (
            "SELECT upper(name), lower(city) FROM users WHERE id < 20",
            false,
        ),
        (
            "SELECT id % 3 AS r, count(*) FROM users GROUP BY id % 3 ORDER BY r",
            true,
        ),
        (
            "SELECT score * 2 AS s, count(*) FROM users GROUP BY score * 2 ORDER BY s NULLS LAST LIMIT 5",
            true,
        ),
        (
            "SELECT city, count(*) FROM users GROUP BY city HAVING city LIKE 'P%' ORDER BY city",
            true,
        ),
        (
            "SELECT city LIKE 'p%' AS lower_p, count(*) FROM users GROUP BY city LIKE 'p%' ORDER BY 1",
            true,
        ),
        ("SELECT min(name) LIKE 'a%', count(*) FROM users", true),
        (
            "SELECT city, max(name) FROM users GROUP BY city HAVING max(name) LIKE 'Z%' OR max(name) LIKE 'a%' ORDER BY city",
            true,
        ),
        (
            "SELECT id, name FROM users WHERE id IN (50, 100, 150, 200, 250, 300) ORDER BY id",
            true,
        ),
        ("SELECT * FROM users WHERE id = 300", true),
        ("SELECT * FROM users WHERE id = 3e2", true),
        ("SELECT * FROM users WHERE id = '250.0'", true),
        (
            "SELECT u.city, count(*) FROM users u GROUP BY u.city ORDER BY u.city",
            true,
        ),
        (
            "SELECT u.city, count(*) FROM users u GROUP BY city ORDER BY city",
            true,
        ),
        (
            "SELECT city, count(*) FROM users u GROUP BY u.city ORDER BY u.city",
            true,
        ),
        (
            "SELECT u.city, count(*) FROM users u GROUP BY u.city ORDER BY city",
            true,
        ),
        (
            "SELECT age / 10 AS age, count(*) FROM users GROUP BY age ORDER BY 1, 2",
            true,
        ),
        (
            "SELECT age AS a, count(*) FROM users GROUP BY a HAVING age > 50 ORDER BY a DESC",
            true,
        ),
        (
            "SELECT count(*) FILTER (WHERE age > 10), sum(age) FILTER (WHERE city = 'Lima') FROM users",
            true,
        ),
        (
            "SELECT city, count(*) FILTER (WHERE score > 0) AS pos, avg(score) FILTER (WHERE age IS NOT NULL), max(name) FILTER (WHERE id > 0) FROM users GROUP BY city HAVING count(*) FILTER (WHERE age > 50) > 2 ORDER BY city",
            true,
        ),
        (
            "SELECT City, count(*) FROM users GROUP BY city ORDER BY 1",
            true,
        ),
        (
            "SELECT \"city\", COUNT(*) FROM users GROUP BY CITY ORDER BY \"city\" DESC",
            true,
        ),
        (
            "SELECT UPPER(city), Count(*) FROM users GROUP BY upper(city) ORDER BY upper(City)",
            true,
        ),
        (
            "SELECT u.City, count(*) FROM users u GROUP BY U.city ORDER BY city",
            true,
        ),
        (
            "SELECT age, count(*) FROM users GROUP BY age HAVING age > '50' ORDER BY age",
            true,
        ),
        (
            "SELECT city, count(*) FROM users GROUP BY city HAVING count(*) > '40' ORDER BY city",
            true,
        ),
        (
            "SELECT age, count(*) FROM users GROUP BY age HAVING age = '42' ORDER BY age",
            true,
        ),
        (
            "SELECT age, count(*) FROM users WHERE id = 3 OR id = 4 GROUP BY age HAVING age IN ('1', '2', '3') OR age < 100 ORDER BY age",
            true,
        ),
        (
            "SELECT id, name FROM users ORDER BY id LIMIT 9223372036854775807 OFFSET 298",
            true,
        ),
    ];
    for (sql, ordered) in queries {
        corpus.add("hand-written", sql, ordered);
    }
    corpus.add2(
        "hand-written",
        "SELECT id FROM users ORDER BY id OFFSET 300",
        "SELECT id FROM users ORDER BY id LIMIT -1 OFFSET 300",
        true,
    );
    corpus.add2(
        "hand-written",
        "SELECT id FROM users ORDER BY id LIMIT ALL",
        "SELECT id FROM users ORDER BY id LIMIT -1",
        true,
    );
    corpus.add2(
        "hand-written",
        "SELECT id FROM users ORDER BY id LIMIT NULL OFFSET 295",
        "SELECT id FROM users ORDER BY id LIMIT -1 OFFSET 295",
        true,
    );
}

fn limited(corpus: &mut Corpus) {
    let queries = [
        ("SELECT id, name FROM users", " LIMIT 5"),
        ("SELECT * FROM users WHERE age > 30", " LIMIT 7 OFFSET 2"),
        ("SELECT DISTINCT city FROM users", " LIMIT 3"),
        (
            "SELECT u.id, o.id FROM users u JOIN orders o ON u.id = o.user_id",
            " LIMIT 12",
        ),
        (
            "SELECT id FROM users WHERE id IN (1, 2, 42, 99)",
            " LIMIT 2",
        ),
        ("SELECT city, count(*) FROM users GROUP BY city", " LIMIT 2"),
        ("SELECT * FROM orders", " LIMIT 1000"),
    ];
    for (sql, limit) in queries {
        corpus.add_limited("LIMIT without ORDER BY", sql, limit);
    }
}

fn corpus() -> Vec<Case> {
    let mut corpus = Corpus(Vec::new());
    plain_selects(&mut corpus);
    distinct_selects(&mut corpus);
    aggregates(&mut corpus);
    joins(&mut corpus);
    unsharded(&mut corpus);
    hand_written(&mut corpus);
    limited(&mut corpus);
    corpus.0
}

fn show(rows: &Rows) -> String {
    let mut text = String::new();
    for row in rows.iter().take(40) {
        let _ = writeln!(text, "    {}", row.join(" | "));
    }
    if rows.len() > 40 {
        let _ = writeln!(text, "    ... {} rows in all", rows.len());
    }
    text
}

async fn run_differential(strategy: &str) {
    let started = std::time::Instant::now();
    let cluster = cluster(strategy).await;
    // Every shard holds a share of the sharded rows, and all of the reference table.
    for n in 1..=4 {
        let users = proxy_rows(
            &cluster.client,
            &format!("/* shardgate:shard=shard-{n} */ SELECT count(*) FROM users"),
        )
        .await
        .expect("count per shard");
        let countries = proxy_rows(
            &cluster.client,
            &format!("/* shardgate:shard=shard-{n} */ SELECT count(*) FROM countries"),
        )
        .await
        .expect("count per shard");
        assert_ne!(
            users,
            [["0".to_string()]],
            "{strategy}: shard-{n} has no users"
        );
        assert_eq!(countries, [["6".to_string()]], "{strategy}: shard-{n}");
    }
    let cases = corpus();
    let mut failures = Vec::new();
    let mut per_form: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_feature: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        let expected = match cluster.baseline_rows(&case.lite) {
            Ok(rows) => rows,
            Err(e) => panic!("the baseline refuses {}: {e}", case.lite),
        };
        let actual = match proxy_rows(&cluster.client, &case.pg).await {
            Ok(rows) => rows,
            Err(e) => {
                failures.push(format!("{}\n  shardgate: {e}\n", case.pg));
                continue;
            }
        };
        let (mut a, mut e) = (actual.clone(), expected.clone());
        if !case.ordered {
            a.sort();
            e.sort();
        }
        if let Some(full) = &case.subset_of {
            // Any `expected.len()` rows of the full result, each at most as often as there.
            let mut pool = cluster.baseline_rows(full).expect("baseline");
            let fits = a.len() == e.len()
                && a.iter()
                    .all(|row| match pool.iter().position(|r| r == row) {
                        Some(i) => {
                            pool.swap_remove(i);
                            true
                        }
                        None => false,
                    });
            if fits {
                e = a.clone();
            }
        }
        if a != e {
            failures.push(format!(
                "{}{}\n  shardgate ({} rows):\n{}  SQLite ({} rows):\n{}",
                case.pg,
                if case.ordered { " (ordered)" } else { "" },
                actual.len(),
                show(&actual),
                expected.len(),
                show(&expected)
            ));
            continue;
        }
        *per_form.entry(case.form).or_default() += 1;
        for feature in features(&case.pg) {
            *per_feature.entry(feature).or_default() += 1;
        }
    }
    let typed = typed_cases(&cluster).await;
    failures.extend(typed.1);
    *per_form.entry("typed, with parameters").or_default() += typed.0;
    eprintln!(
        "{strategy}: {} queries matched in {:?} (NULLs sort as in {})\n  by form: {per_form:?}\n  by feature: {per_feature:?}",
        per_form.values().sum::<usize>(),
        started.elapsed(),
        if cluster.postgres_nulls {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    assert!(
        failures.is_empty(),
        "{strategy}: {} of {} queries differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(per_form.values().sum::<usize>() >= 200);
    drop(cluster.client);
    cluster.server.stop().await;
}

/// Queries with bound parameters (extended protocol): keys and LIMIT/OFFSET as `$n`.
async fn typed_cases(cluster: &Cluster) -> (usize, Vec<String>) {
    type Param = Box<dyn tokio_postgres::types::ToSql + Sync>;
    let cases: Vec<(&str, Vec<Param>, &str, bool)> = vec![
        (
            "SELECT id, name, age FROM users WHERE id = $1",
            vec![Box::new(42i32)],
            "SELECT id, name, age FROM users WHERE id = 42",
            true,
        ),
        (
            "SELECT id, name FROM users WHERE id IN ($1, $2, $3) ORDER BY id",
            vec![Box::new(1i32), Box::new(2i32), Box::new(42i32)],
            "SELECT id, name FROM users WHERE id IN (1, 2, 42) ORDER BY id",
            true,
        ),
        (
            "SELECT id, score FROM users ORDER BY score DESC, id LIMIT $1 OFFSET $2",
            vec![Box::new(7i64), Box::new(3i64)],
            "SELECT id, score FROM users ORDER BY score DESC, id LIMIT 7 OFFSET 3",
            true,
        ),
        (
            "SELECT id, city FROM users WHERE age > $2 ORDER BY city, id LIMIT $1",
            vec![Box::new(5i64), Box::new(30i32)],
            "SELECT id, city FROM users WHERE age > 30 ORDER BY city, id LIMIT 5",
            true,
        ),
        (
            "SELECT city, count(*) FROM users WHERE age > $1 GROUP BY city ORDER BY city",
            vec![Box::new(30i32)],
            "SELECT city, count(*) FROM users WHERE age > 30 GROUP BY city ORDER BY city",
            true,
        ),
        (
            "SELECT u.id, o.total FROM users u JOIN orders o ON u.id = o.user_id WHERE o.user_id = $1 ORDER BY o.id",
            vec![Box::new(7i32)],
            "SELECT u.id, o.total FROM users u JOIN orders o ON u.id = o.user_id WHERE o.user_id = 7 ORDER BY o.id",
            true,
        ),
        (
            "SELECT count(*), sum(total), max(total) FROM orders WHERE total > $1",
            vec![Box::new(100i32)],
            "SELECT count(*), sum(total), max(total) FROM orders WHERE total > 100",
            true,
        ),
        (
            "SELECT city, count(*) FROM users GROUP BY city HAVING count(*) > $1 ORDER BY city",
            vec![Box::new(40i64)],
            "SELECT city, count(*) FROM users GROUP BY city HAVING count(*) > 40 ORDER BY city",
            true,
        ),
        (
            "SELECT city, count(*) FROM users WHERE age > $1 GROUP BY city HAVING min(age) < $2 ORDER BY city",
            vec![Box::new(10i32), Box::new(13i32)],
            "SELECT city, count(*) FROM users WHERE age > 10 GROUP BY city HAVING min(age) < 13 ORDER BY city",
            true,
        ),
        (
            "SELECT status, count(*) FROM orders WHERE total > $2 GROUP BY status HAVING count(*) > $1 ORDER BY status",
            vec![Box::new(100i64), Box::new(50i32)],
            "SELECT status, count(*) FROM orders WHERE total > 50 GROUP BY status HAVING count(*) > 100 ORDER BY status",
            true,
        ),
        (
            "SELECT name FROM users WHERE name = $1 GROUP BY name",
            vec![Box::new("Zoe")],
            "SELECT name FROM users WHERE name = 'Zoe' GROUP BY name",
            true,
        ),
        (
            "SELECT id FROM users ORDER BY id LIMIT $1 OFFSET $2",
            vec![Box::new(None::<i64>), Box::new(296i64)],
            "SELECT id FROM users ORDER BY id LIMIT -1 OFFSET 296",
            true,
        ),
    ];
    let mut matched = 0;
    let mut failures = Vec::new();
    for (pg, params, lite, ordered) in &cases {
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref() as _).collect();
        let expected = cluster.baseline_rows(lite).expect("baseline");
        match proxy_typed_rows(&cluster.client, pg, &refs).await {
            Err(e) => failures.push(format!("{pg} (typed)\n  shardgate: {e}\n")),
            Ok(actual) => {
                let (mut a, mut e) = (actual.clone(), expected.clone());
                if !ordered {
                    a.sort();
                    e.sort();
                }
                if a == e {
                    matched += 1;
                } else {
                    failures.push(format!(
                        "{pg} (typed)\n  shardgate:\n{}  SQLite:\n{}",
                        show(&actual),
                        show(&expected)
                    ));
                }
            }
        }
    }
    (matched, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_hash() {
    run_differential("hash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_consistent_hash() {
    run_differential("consistent_hash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_range() {
    run_differential("range").await;
}

// ---------------------------------------------------------------------------------------------
// Unsupported statements: tests/golden/unsupported.txt.

struct Refusal {
    line: usize,
    setup: Vec<String>,
    query: String,
    message: String,
}

fn golden_refusals() -> Vec<Refusal> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/unsupported.txt");
    let text = std::fs::read_to_string(&path).expect("golden file");
    let mut refusals = Vec::new();
    let mut current: Option<Refusal> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if let Some(done) = current.take() {
                refusals.push(done);
            }
            continue;
        }
        let refusal = current.get_or_insert_with(|| Refusal {
            line: line_no,
            setup: Vec::new(),
            query: String::new(),
            message: String::new(),
        });
        if let Some(sql) = line.strip_prefix("setup: ") {
            refusal.setup.push(sql.to_string());
        } else if let Some(sql) = line.strip_prefix("query: ") {
            assert!(refusal.query.is_empty(), "line {line_no}: a second query");
            refusal.query = sql.to_string();
        } else if let Some(message) = line.strip_prefix("error: ") {
            assert!(refusal.message.is_empty(), "line {line_no}: a second error");
            refusal.message = message.to_string();
        } else {
            panic!("line {line_no} of the golden file: {line:?}");
        }
    }
    refusals.extend(current);
    for refusal in &refusals {
        assert!(
            !refusal.query.is_empty() && !refusal.message.is_empty(),
            "the block at line {} needs a query and an error",
            refusal.line
        );
    }
    refusals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_statements_are_refused_with_their_reason() {
    let server = common::start_config(&sharded_config("hash")).await;
    let client = server.connect().await;
    client.batch_execute(SCHEMA).await.expect("schema");
    client
        .batch_execute(
            "INSERT INTO users (id, name, age) VALUES (1, 'a', 10), (2, 'b', 20), (42, 'c', 30);
             INSERT INTO orders (id, user_id, total) VALUES (1, 1, 5), (2, 2, 6), (3, 42, 7)",
        )
        .await
        .expect("data");
    // The keys the blocks rely on: 1 → shard-4, 2 → shard-1, 42 → shard-3.
    for (id, shard) in [(1, 4), (2, 1), (42, 3)] {
        let rows = proxy_rows(
            &client,
            &format!(
                "/* shardgate:shard=shard-{shard} */ SELECT count(*) FROM users WHERE id = {id}"
            ),
        )
        .await
        .expect("count");
        assert_eq!(rows, [["1".to_string()]], "user {id} is on shard-{shard}");
    }
    let refusals = golden_refusals();
    assert!(refusals.len() >= 15);
    let mut failures = Vec::new();
    for refusal in &refusals {
        // A connection of its own: a refusal inside a transaction leaves it failed.
        let client = server.connect().await;
        for sql in &refusal.setup {
            if let Err(e) = client.batch_execute(sql).await {
                failures.push(format!(
                    "line {}: setup {sql}: {}",
                    refusal.line,
                    describe_error(e)
                ));
            }
        }
        match client.simple_query(&refusal.query).await {
            Ok(_) => failures.push(format!(
                "line {}: {} succeeded; expected 0A000: {}",
                refusal.line, refusal.query, refusal.message
            )),
            Err(e) => {
                let got = describe_error(e);
                let want = format!("0A000: {}", refusal.message);
                if got != want {
                    failures.push(format!(
                        "line {}: {}\n  expected {want}\n  got      {got}",
                        refusal.line, refusal.query
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing refused changed the data.
    let rows = proxy_rows(&client, "SELECT id, name FROM users ORDER BY id")
        .await
        .expect("users");
    assert_eq!(
        rows,
        [["1", "'a'"], ["2", "'b'"], ["42", "'c'"]]
            .map(|r| r.map(String::from).to_vec())
            .to_vec()
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A generated corpus (issue 10, item 2), the way sqllogictest's random files are made: random
// expressions over columns and constants, filters, aggregates, GROUP BY/HAVING, DISTINCT/ALL,
// ORDER BY/LIMIT, joins of sharded and reference tables, with NULLs in the data. Each
// statement runs on the 4-shard proxy, on a 1-shard proxy without [sharding] and on the
// SQLite baseline:
// - the 4-shard answer equals the baseline's, or the 4-shard proxy refuses with 0A000;
// - the 1-shard proxy succeeds when the 4-shard one does (with the same rows), and fails with
//   the same SQLSTATE when it fails with another than 0A000;
// - a statement generated to break PostgreSQL's grouping rule fails with 42803 on both.
//
// Forms and their outcome across shards (the test prints the counts per form):
//
// | form | across shards |
// |---|---|
// | plain SELECT, WHERE, expressions, ORDER BY (NULLS FIRST/LAST), LIMIT/OFFSET | answered (merged) |
// | SELECT DISTINCT / SELECT ALL | answered (DISTINCT again over the shards' rows; ALL keeps duplicates) |
// | count/sum/min/max/avg/total, with DISTINCT (constants included) or FILTER | answered (partials re-aggregated) |
// | GROUP BY expressions, positions, aliases; HAVING; DISTINCT over groups | answered |
// | a column outside GROUP BY and aggregates | 42803 on any number of shards (unless its table's primary key is grouped) |
// | string_agg / group_concat / array_agg / aggregate with ORDER BY or DISTINCT + FILTER | refused (0A000) |
// | JOIN of co-located sharded tables on their keys; LEFT JOIN keeping the sharded side | answered (per shard) |
// | JOIN or LEFT JOIN of a sharded table with a reference table (sharded side preserved) | answered (per shard) |
// | outer join preserving a reference or first-shard table (LEFT from it, RIGHT/FULL to it) | refused: every shard would add its rows |
// | sharded tables joined without equality on their keys; a first-shard table beside a sharded one | refused |
// | IN / EXISTS / NOT EXISTS / scalar subquery over a reference table (per row) | answered |
// | any subquery over a sharded table (IN, NOT IN, EXISTS, NOT EXISTS, scalar, derived table) | refused |
// | a subquery in the select list, HAVING or ORDER BY of an aggregate query | refused |
// | set operations, WITH, window functions, DISTINCT ON, GROUPING SETS over sharded tables | refused |

/// A column of a generated query's FROM list.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Text,
}

struct From {
    label: &'static str,
    sql: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// Columns that together identify a row of the FROM list (NULL-extended rows included).
    unique: &'static [&'static str],
}

const USERS: &[(&str, Kind)] = &[
    ("u.id", Kind::Int),
    ("u.name", Kind::Text),
    ("u.age", Kind::Int),
    ("u.city", Kind::Text),
];
const ORDERS: &[(&str, Kind)] = &[
    ("o.id", Kind::Int),
    ("o.user_id", Kind::Int),
    ("o.total", Kind::Int),
    ("o.status", Kind::Text),
];
const USERS_ORDERS: &[(&str, Kind)] = &[
    ("u.id", Kind::Int),
    ("u.name", Kind::Text),
    ("u.age", Kind::Int),
    ("u.city", Kind::Text),
    ("o.id", Kind::Int),
    ("o.total", Kind::Int),
    ("o.status", Kind::Text),
];
const USERS_COUNTRIES: &[(&str, Kind)] = &[
    ("u.id", Kind::Int),
    ("u.name", Kind::Text),
    ("u.age", Kind::Int),
    ("u.city", Kind::Text),
    ("c.code", Kind::Text),
    ("c.name", Kind::Text),
];

const FROMS: &[From] = &[
    From {
        label: "users",
        sql: "users u",
        columns: USERS,
        unique: &["u.id"],
    },
    From {
        label: "orders",
        sql: "orders o",
        columns: ORDERS,
        unique: &["o.id"],
    },
    From {
        label: "users JOIN orders on the keys",
        sql: "users u JOIN orders o ON u.id = o.user_id",
        columns: USERS_ORDERS,
        unique: &["o.id"],
    },
    From {
        label: "orders LEFT JOIN users on the keys",
        sql: "orders o LEFT JOIN users u ON u.id = o.user_id",
        columns: USERS_ORDERS,
        unique: &["o.id"],
    },
    From {
        label: "users JOIN countries",
        sql: "users u JOIN countries c ON c.name = u.city",
        columns: USERS_COUNTRIES,
        unique: &["u.id"],
    },
    From {
        label: "users LEFT JOIN countries",
        sql: "users u LEFT JOIN countries c ON c.name = u.city",
        columns: USERS_COUNTRIES,
        unique: &["u.id"],
    },
    From {
        label: "users, countries (cross)",
        sql: "users u, countries c",
        columns: USERS_COUNTRIES,
        unique: &["u.id", "c.code"],
    },
    From {
        label: "countries LEFT JOIN users",
        sql: "countries c LEFT JOIN users u ON u.city = c.name",
        columns: USERS_COUNTRIES,
        unique: &["c.code", "u.id"],
    },
    From {
        label: "users RIGHT JOIN countries",
        sql: "users u RIGHT JOIN countries c ON u.city = c.name",
        columns: USERS_COUNTRIES,
        unique: &["c.code", "u.id"],
    },
    From {
        label: "users JOIN orders not on the keys",
        sql: "users u JOIN orders o ON u.id = o.id",
        columns: USERS_ORDERS,
        unique: &["o.id"],
    },
];

struct Gen<'a> {
    rng: Lcg,
    columns: &'a [(&'static str, Kind)],
}

impl Gen<'_> {
    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    fn column(&mut self, kind: Kind) -> &'static str {
        let matching: Vec<&'static str> = self
            .columns
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(c, _)| *c)
            .collect();
        self.rng.pick(&matching)
    }

    fn int(&mut self, depth: u32) -> String {
        let constant = |g: &mut Self| (g.rng.below(41) as i64 - 20).to_string();
        if depth == 0 {
            return if self.chance(75) {
                self.column(Kind::Int).to_string()
            } else {
                constant(self)
            };
        }
        match self.rng.below(10) {
            0 => format!("({} + {})", self.int(depth - 1), self.int(depth - 1)),
            1 => format!("({} - {})", self.int(depth - 1), constant(self)),
            2 => format!("({} * {})", self.int(depth - 1), self.rng.below(5)),
            3 => format!("abs({})", self.int(depth - 1)),
            4 => format!("coalesce({}, {})", self.int(depth - 1), constant(self)),
            5 => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                self.boolean(depth - 1),
                self.int(depth - 1),
                self.int(depth - 1)
            ),
            6 => format!("nullif({}, {})", self.int(depth - 1), constant(self)),
            7 => format!("(-({}))", self.int(depth - 1)),
            _ => self.int(0),
        }
    }

    fn text(&mut self, depth: u32) -> String {
        let constant =
            |g: &mut Self| text(g.rng.pick(&["Paris", "paris", "Oslo", "A", "Zoe", "x", ""]));
        if depth == 0 {
            return if self.chance(80) {
                self.column(Kind::Text).to_string()
            } else {
                constant(self)
            };
        }
        match self.rng.below(6) {
            0 => format!("upper({})", self.text(depth - 1)),
            1 => format!("lower({})", self.text(depth - 1)),
            2 => format!("coalesce({}, {})", self.text(depth - 1), constant(self)),
            3 => format!("({} || {})", self.text(depth - 1), constant(self)),
            _ => self.text(0),
        }
    }

    fn expr(&mut self, depth: u32) -> (String, Kind) {
        if self.chance(65) {
            (self.int(depth), Kind::Int)
        } else {
            (self.text(depth), Kind::Text)
        }
    }

    fn boolean(&mut self, depth: u32) -> String {
        let compare = |g: &mut Self| g.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
        if depth == 0 {
            return match self.rng.below(7) {
                0 | 1 => format!("{} {} {}", self.int(0), compare(self), self.int(0)),
                2 => format!("{} {} {}", self.text(0), compare(self), self.text(0)),
                3 => format!("{} IS NULL", self.expr(0).0),
                4 => format!("{} IS NOT NULL", self.expr(0).0),
                5 => format!(
                    "{} BETWEEN {} AND {}",
                    self.int(0),
                    self.rng.below(30) as i64 - 10,
                    self.rng.below(60)
                ),
                _ => format!(
                    "{} LIKE {}",
                    self.text(0),
                    text(self.rng.pick(&["P%", "%a%", "_o%"]))
                ),
            };
        }
        match self.rng.below(12) {
            0 => format!(
                "({} AND {})",
                self.boolean(depth - 1),
                self.boolean(depth - 1)
            ),
            1 => format!(
                "({} OR {})",
                self.boolean(depth - 1),
                self.boolean(depth - 1)
            ),
            2 => format!("NOT ({})", self.boolean(depth - 1)),
            3 => format!(
                "{} IN ({}, {}, {})",
                self.int(0),
                self.rng.below(20),
                self.rng.below(50),
                self.rng.below(300)
            ),
            4 => format!("{} IN (SELECT name FROM countries)", self.text(0)),
            5 => format!(
                "NOT EXISTS (SELECT 1 FROM countries x WHERE x.name = {})",
                self.text(0)
            ),
            // Over a sharded table: refused.
            6 => format!("{} NOT IN (SELECT user_id FROM orders)", self.int(0)),
            7 => format!(
                "EXISTS (SELECT 1 FROM orders x WHERE x.user_id = {})",
                self.int(0)
            ),
            _ => self.boolean(0),
        }
    }

    /// An aggregate call over the FROM list's rows.
    fn aggregate(&mut self) -> String {
        let filter = |g: &mut Self| {
            if g.chance(15) {
                format!(" FILTER (WHERE {})", g.boolean(0))
            } else {
                String::new()
            }
        };
        match self.rng.below(16) {
            0 | 1 => format!("count(*){}", filter(self)),
            2 => format!("count({}){}", self.expr(1).0, filter(self)),
            3 => format!("count(DISTINCT {})", self.expr(1).0),
            4 | 5 => format!("sum({}){}", self.int(1), filter(self)),
            6 => format!("min({}){}", self.expr(1).0, filter(self)),
            7 => format!("max({}){}", self.expr(1).0, filter(self)),
            8 => format!("avg({}){}", self.int(1), filter(self)),
            9 => format!("sum(DISTINCT {})", self.int(1)),
            10 => format!("max(DISTINCT {})", self.rng.below(9)),
            11 => format!("count(DISTINCT {})", self.rng.below(9)),
            12 => format!("min(DISTINCT {})", self.expr(0).0),
            13 => format!("(count(*) + {})", self.rng.below(9)),
            // Not combinable across shards: refused.
            14 => format!("string_agg({}, ',')", self.text(0)),
            _ => format!("total({})", self.int(0)),
        }
    }
}

struct Generated {
    form: String,
    sql: String,
    /// The ORDER BY orders every row: compare in order.
    ordered: bool,
    /// Generated to break the grouping rule: both proxies must answer 42803.
    ungrouped: bool,
}

fn direction(g: &mut Gen) -> &'static str {
    g.rng.pick(&[
        "",
        " DESC",
        " NULLS FIRST",
        " DESC NULLS LAST",
        " NULLS LAST",
    ])
}

fn limit(g: &mut Gen) -> String {
    match g.rng.below(4) {
        0 => format!(" LIMIT {}", g.rng.below(12)),
        1 => format!(" LIMIT {} OFFSET {}", g.rng.below(20), g.rng.below(10)),
        _ => String::new(),
    }
}

fn generate(seed: u64) -> Generated {
    let mut rng = Lcg(seed);
    let from = &FROMS[rng.below(FROMS.len() as u64) as usize];
    let mut g = Gen {
        rng,
        columns: from.columns,
    };
    let filter = if g.chance(60) {
        format!(" WHERE {}", g.boolean(2))
    } else {
        String::new()
    };
    let quantifier = g.rng.pick(&["", "", "DISTINCT ", "ALL "]);
    let shape = g.rng.below(10);
    let mut form = format!("{} / ", from.label);
    let (sql, ordered, ungrouped) = if shape < 4 {
        // Plain rows.
        let items: Vec<String> = (0..=g.rng.below(3)).map(|_| g.expr(2).0).collect();
        form.push_str(if quantifier == "DISTINCT " {
            "DISTINCT rows"
        } else {
            "rows"
        });
        let (order, ordered) = match (g.rng.below(3), quantifier) {
            (0, _) => (String::new(), false),
            // DISTINCT orders by its select list only.
            (_, "DISTINCT ") => {
                let terms: Vec<String> = (1..=items.len())
                    .map(|p| format!("{p}{}", direction(&mut g)))
                    .collect();
                (format!(" ORDER BY {}", terms.join(", ")), true)
            }
            _ => {
                let mut terms = vec![format!("1{}", direction(&mut g))];
                terms.extend(from.unique.iter().map(|u| u.to_string()));
                (format!(" ORDER BY {}", terms.join(", ")), true)
            }
        };
        let limit = if ordered {
            limit(&mut g)
        } else {
            String::new()
        };
        (
            format!(
                "SELECT {quantifier}{} FROM {}{filter}{order}{limit}",
                items.join(", "),
                from.sql
            ),
            ordered,
            false,
        )
    } else if shape < 6 {
        // Aggregates over all rows: one row (none when HAVING rejects it).
        form.push_str("aggregates");
        let items: Vec<String> = (0..=g.rng.below(3)).map(|_| g.aggregate()).collect();
        let having = if g.chance(20) {
            format!(" HAVING {} > {}", g.aggregate(), g.rng.below(50))
        } else {
            String::new()
        };
        let ungrouped = g.chance(8);
        let extra = if ungrouped {
            format!(", {}", g.column(Kind::Int))
        } else {
            String::new()
        };
        (
            format!(
                "SELECT {quantifier}{}{extra} FROM {}{filter}{having}",
                items.join(", "),
                from.sql
            ),
            false,
            ungrouped,
        )
    } else {
        // Groups: each group expression in the select list, grouped by expression or
        // position, with aggregates and expressions over the groups.
        form.push_str(if quantifier == "DISTINCT " {
            "DISTINCT groups"
        } else {
            "groups"
        });
        // Each group reads a column: an integer literal in GROUP BY is a position (and
        // SQLite reads a negated one as a position too).
        let groups: Vec<(String, Kind)> = (0..=g.rng.below(2))
            .map(|_| {
                loop {
                    let group = g.expr(1);
                    if group.0.contains('.') {
                        break group;
                    }
                }
            })
            .collect();
        let mut items: Vec<String> = groups.iter().map(|(e, _)| e.clone()).collect();
        for _ in 0..=g.rng.below(2) {
            items.push(g.aggregate());
        }
        if g.chance(30)
            && let Some((group, Kind::Int)) = groups.first()
        {
            items.push(format!("{group} + {}", g.rng.below(5)));
        }
        let group_by: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, (e, _))| {
                if g.chance(40) {
                    (i + 1).to_string()
                } else {
                    e.clone()
                }
            })
            .collect();
        let having = match g.rng.below(5) {
            0 => format!(" HAVING {} > {}", g.aggregate(), g.rng.below(10)),
            1 => format!(" HAVING {} IS NOT NULL", groups[0].0),
            _ => String::new(),
        };
        // A column no group reads, of a table whose primary key (users.id, countries.code)
        // no group reads.
        let free: Vec<&str> = from
            .columns
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| {
                let table = &c[..2];
                !groups.iter().any(|(e, _)| {
                    e.contains(c)
                        || (table == "u." && e.contains("u.id"))
                        || (table == "c." && e.contains("c.code"))
                })
            })
            .collect();
        let ungrouped = !free.is_empty() && g.chance(8);
        if ungrouped {
            items.push(format!("coalesce(59, {})", g.rng.pick(&free)));
        }
        let terms: Vec<String> = (1..=groups.len())
            .map(|p| format!("{p}{}", direction(&mut g)))
            .collect();
        let ordered = g.chance(70);
        let (order, limit) = if ordered {
            (format!(" ORDER BY {}", terms.join(", ")), limit(&mut g))
        } else {
            (String::new(), String::new())
        };
        (
            format!(
                "SELECT {quantifier}{} FROM {}{filter} GROUP BY {}{having}{order}{limit}",
                items.join(", "),
                from.sql,
                group_by.join(", ")
            ),
            ordered,
            ungrouped,
        )
    };
    Generated {
        form,
        sql,
        ordered,
        ungrouped,
    }
}

/// The first word of an error (its SQLSTATE) or the whole text.
fn sqlstate_of(error: &str) -> &str {
    error.split(':').next().unwrap_or(error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_corpus_agrees_with_one_database_or_is_refused() {
    const STATEMENTS: u64 = 3000;
    let started = std::time::Instant::now();
    let cluster = cluster("hash").await;
    // PostgreSQL (and shardgate) fold the case of every letter ('Émile'); SQLite's own
    // upper/lower fold ASCII only. A letter whose mapping is several characters stays.
    let fold = |upper: bool| {
        move |ctx: &rusqlite::functions::Context<'_>| -> rusqlite::Result<Option<String>> {
            let text: Option<String> = ctx.get(0)?;
            Ok(text.map(|t| {
                t.chars()
                    .map(|c| {
                        let mapped: Vec<char> = if upper {
                            c.to_uppercase().collect()
                        } else {
                            c.to_lowercase().collect()
                        };
                        match mapped.as_slice() {
                            [single] => *single,
                            _ => c,
                        }
                    })
                    .collect()
            }))
        }
    };
    let flags = rusqlite::functions::FunctionFlags::SQLITE_UTF8
        | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC;
    cluster
        .baseline
        .create_scalar_function("upper", 1, flags, fold(true))
        .expect("upper");
    cluster
        .baseline
        .create_scalar_function("lower", 1, flags, fold(false))
        .expect("lower");
    let single = common::start_config(&common::config_text(
        "trust",
        "app",
        "[[shards]]\nname = \"main\"\nprimary = \"main/primary.db\"\n",
    ))
    .await;
    let one = single.connect().await;
    one.batch_execute(SCHEMA).await.expect("schema");
    for statement in data_statements() {
        one.batch_execute(&statement).await.expect("data");
    }
    let mut failures = Vec::new();
    // form → (answered, refused, 42803)
    let mut outcomes: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for seed in 0..STATEMENTS {
        let case = generate(0x5eed_0000 + seed);
        let sharded = proxy_rows(&cluster.client, &case.sql).await;
        let single = proxy_rows(&one, &case.sql).await;
        let entry = outcomes.entry(case.form.clone()).or_default();
        if case.ungrouped {
            let refused_here = matches!(&sharded, Err(e) if sqlstate_of(e) == "0A000");
            let ok = |r: &Result<Rows, String>| matches!(r, Err(e) if sqlstate_of(e) == "42803");
            if !(ok(&sharded) || refused_here) || !ok(&single) {
                failures.push(format!(
                    "{}\n  expected 42803\n  4 shards: {sharded:?}\n  1 shard: {single:?}",
                    case.sql
                ));
            }
            entry.2 += 1;
            continue;
        }
        match (&sharded, &single) {
            (Err(e), _) if sqlstate_of(e) == "0A000" => {
                entry.1 += 1;
                continue;
            }
            (Err(a), Err(b)) if sqlstate_of(a) == sqlstate_of(b) => {
                failures.push(format!("{}\n  both proxies fail: {a}", case.sql));
                continue;
            }
            (Ok(_), Ok(_)) => {}
            _ => {
                failures.push(format!(
                    "{}\n  4 shards: {sharded:?}\n  1 shard: {single:?}",
                    case.sql
                ));
                continue;
            }
        }
        let (Ok(mut actual), Ok(mut alone)) = (sharded, single) else {
            continue;
        };
        let mut expected = match cluster.baseline_rows(&case.sql) {
            Ok(rows) => rows,
            Err(e) => {
                failures.push(format!("{}\n  the baseline fails: {e}", case.sql));
                continue;
            }
        };
        if !case.ordered {
            actual.sort();
            expected.sort();
            alone.sort();
        }
        if actual != expected || alone != actual {
            failures.push(format!(
                "{}{}\n  4 shards ({} rows):\n{}  1 shard ({} rows):\n{}  SQLite ({} rows):\n{}",
                case.sql,
                if case.ordered { " (ordered)" } else { "" },
                actual.len(),
                show(&actual),
                alone.len(),
                show(&alone),
                expected.len(),
                show(&expected)
            ));
            continue;
        }
        entry.0 += 1;
    }
    let mut table =
        String::from("| form | answered | refused (0A000) | 42803 |\n|---|---|---|---|\n");
    for (form, (answered, refused, ungrouped)) in &outcomes {
        let _ = writeln!(table, "| {form} | {answered} | {refused} | {ungrouped} |");
    }
    eprintln!(
        "{STATEMENTS} generated statements in {:?}:\n{table}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {STATEMENTS} generated statements differ:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let answered: usize = outcomes.values().map(|o| o.0).sum();
    assert!(
        answered > STATEMENTS as usize / 2,
        "only {answered} answered"
    );
    drop(one);
    single.stop().await;
    drop(cluster.client);
    cluster.server.stop().await;
}
