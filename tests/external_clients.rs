//! psql and pgbench against the real server. Skipped (with a message) when the tool is not
//! installed, except under CI=true where a missing tool fails the test.

mod common;

use std::process::Command;

fn run(tool: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(tool)
        .args(args)
        .env("PGPASSWORD", "app")
        .output()
        .expect("tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_output_matches_postgres_format() {
    let Some(psql) = common::tool("psql") else {
        return;
    };
    let server = common::start().await;
    let url = server.url();
    let script = "CREATE TABLE p (id SERIAL PRIMARY KEY, name VARCHAR(10), ok BOOLEAN);\n\
                  INSERT INTO p (name, ok) VALUES ('a', true), ('b', false);\n\
                  SELECT id, name, ok FROM p ORDER BY id;\n\
                  SELECT count(*) FROM p;\n";
    let (ok, text) = tokio::task::spawn_blocking(move || {
        run(&psql, &[&url, "-X", "-v", "ON_ERROR_STOP=1", "-c", script])
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    let (ok2, text2) = {
        let psql = common::tool("psql").unwrap();
        let url = server.url();
        tokio::task::spawn_blocking(move || {
            run(
                &psql,
                &[
                    &url,
                    "-X",
                    "-c",
                    "SELECT id, name, ok FROM p ORDER BY id",
                    "-c",
                    "SELECT count(*) FROM p",
                ],
            )
        })
        .await
        .unwrap()
    };
    assert!(ok2, "{text2}");
    assert_eq!(
        text2,
        " id | name | ok \n----+------+----\n  1 | a    | t\n  2 | b    | f\n(2 rows)\n\n count \n-------\n     2\n(1 row)\n\n"
    );
    let _ = text;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs_in_every_protocol_mode() {
    let Some(pgbench) = common::tool("pgbench") else {
        return;
    };
    let server = common::start().await;
    let port = server.addr.port().to_string();
    let base: Vec<String> = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "app"]
        .map(String::from)
        .to_vec();
    let init: Vec<String> = base
        .iter()
        .cloned()
        .chain(["-i".into(), "app".into()])
        .collect();
    let pg = pgbench.clone();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = init.iter().map(String::as_str).collect();
        run(&pg, &refs)
    })
    .await
    .unwrap();
    assert!(ok, "pgbench -i failed:\n{text}");
    assert!(text.contains("done in"), "{text}");

    let client = server.connect().await;
    let row = client
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 100_000);

    for mode in ["simple", "extended", "prepared"] {
        for select_only in [false, true] {
            let mut args: Vec<String> = base.clone();
            args.extend(["-M", mode, "-c", "4", "-j", "2", "-T", "2"].map(String::from));
            if select_only {
                args.push("-S".into());
            }
            args.push("app".into());
            let pg = pgbench.clone();
            let (ok, text) = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                run(&pg, &refs)
            })
            .await
            .unwrap();
            assert!(ok, "pgbench -M {mode} failed:\n{text}");
            assert!(
                text.contains("number of failed transactions: 0 (0.000%)"),
                "-M {mode}:\n{text}"
            );
            let processed = text
                .lines()
                .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
                .and_then(|n| n.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            assert!(processed > 0, "-M {mode}: no transactions:\n{text}");
        }
    }
    // TPC-B-like runs keep the books balanced: branch totals equal account totals.
    let row = client
        .query_one("SELECT (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(abalance) FROM pgbench_accounts)", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    server.stop().await;
}
