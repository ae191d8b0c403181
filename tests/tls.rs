//! TLS through the wire: `[server.tls]` with a CA and server certificate generated here,
//! tokio-postgres over rustls, psql with `sslmode=require` and `verify-full`, plaintext under
//! `prefer` and refused under `require`, and config validation of the files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgwire::tokio::tokio_rustls::rustls;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use shardgate::config::{Config, ConfigError, Overrides};

const PATIENCE: Duration = Duration::from_secs(20);

/// A CA, and a certificate for `localhost` and 127.0.0.1 signed by it, as PEM files.
struct Certificates {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn generate_certificates() -> Certificates {
    let dir = common::temp_dir("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "shardgate test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Certificates {
        ca: write("ca.pem", ca_cert.pem()),
        cert: write("server.pem", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        dir,
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_section(certs: &Certificates, mode: &str) -> String {
    format!(
        "[server.tls]\ncert = {:?}\nkey = {:?}\nmode = \"{mode}\"\n\
         [[shards]]\nname = \"main\"\nprimary = \"main/primary.db\"\n",
        certs.cert.display().to_string(),
        certs.key.display().to_string()
    )
}

async fn start_tls(certs: &Certificates, mode: &str) -> common::TestServer {
    common::start_config(&common::config_text(
        "scram-sha-256",
        "app",
        &tls_section(certs, mode),
    ))
    .await
}

/// A rustls client that trusts only the test CA.
fn rustls_connector(ca: &Path) -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

fn conninfo(server: &common::TestServer, sslmode: &str) -> String {
    format!(
        "host=localhost port={} user=app password=app dbname=app sslmode={sslmode}",
        server.addr.port()
    )
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {e}"))
}

#[tokio::test]
async fn tokio_postgres_over_rustls_and_plaintext_under_prefer() {
    let certs = generate_certificates();
    let server = start_tls(&certs, "prefer").await;
    let (client, connection) = tokio::time::timeout(
        PATIENCE,
        tokio_postgres::connect(&conninfo(&server, "require"), rustls_connector(&certs.ca)),
    )
    .await
    .expect("bounded")
    .expect("a TLS connection verified against the test CA");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    // `prefer` still lets a plaintext client in.
    let (plain, connection) =
        tokio_postgres::connect(&conninfo(&server, "disable"), tokio_postgres::NoTls)
            .await
            .expect("plaintext under prefer");
    tokio::spawn(connection);
    let row = plain.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    server.stop().await;
}

#[tokio::test]
async fn require_refuses_a_plaintext_startup() {
    let certs = generate_certificates();
    let server = start_tls(&certs, "require").await;
    let err = tokio_postgres::connect(&conninfo(&server, "disable"), tokio_postgres::NoTls)
        .await
        .err()
        .expect("plaintext is refused under require");
    assert_eq!(code(&err), "28000", "{err}");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.severity(), "FATAL");
    assert!(db.message().contains("requires TLS"), "{}", db.message());
    // A TLS client is served.
    let (client, connection) =
        tokio_postgres::connect(&conninfo(&server, "require"), rustls_connector(&certs.ca))
            .await
            .expect("TLS under require");
    tokio::spawn(connection);
    assert_eq!(
        client
            .query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    server.stop().await;
}

/// Runs `SELECT 40 + 2` with psql (found by the caller) and a bounded connect.
async fn psql(psql: PathBuf, conninfo: String) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(psql)
            .args(["-X", "-At", "-c", "SELECT 40 + 2", &conninfo])
            .env("PGPASSWORD", "app")
            .env("PGCONNECT_TIMEOUT", "20")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_with_sslmode_require_and_verify_full() {
    let Some(tool) = common::tool("psql") else {
        return;
    };
    let certs = generate_certificates();
    let server = start_tls(&certs, "require").await;
    let base = format!("port={} user=app dbname=app", server.addr.port());
    for info in [
        format!("host=localhost {base} sslmode=require"),
        format!(
            "host=localhost {base} sslmode=verify-full sslrootcert={}",
            certs.ca.display()
        ),
        format!(
            "host=127.0.0.1 {base} sslmode=verify-full sslrootcert={}",
            certs.ca.display()
        ),
    ] {
        let out = psql(tool.clone(), info.clone()).await;
        assert!(
            out.status.success(),
            "{info}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{info}");
    }
    // verify-full trusts only the given CA.
    let other = generate_certificates();
    let info = format!(
        "host=localhost {base} sslmode=verify-full sslrootcert={}",
        other.ca.display()
    );
    let out = psql(tool.clone(), info).await;
    assert!(
        !out.status.success(),
        "a certificate from another CA was accepted"
    );
    // Plaintext psql under require gets the FATAL.
    let out = psql(tool, format!("host=localhost {base} sslmode=disable")).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requires TLS"), "{stderr}");
    server.stop().await;
}

fn problems(text: &str) -> Vec<(String, String)> {
    match Config::parse(text, &Overrides::default()) {
        Err(ConfigError::Invalid(problems)) => {
            problems.into_iter().map(|p| (p.key, p.problem)).collect()
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn config_validation_names_the_tls_key_at_fault() {
    let certs = generate_certificates();
    let with = |cert: &Path, key: &Path, extra: &str| {
        common::config_text(
            "scram-sha-256",
            "app",
            &format!(
                "[server.tls]\ncert = {:?}\nkey = {:?}\n{extra}[[shards]]\nname = \"main\"\nprimary = \"main/primary.db\"\n",
                cert.display().to_string(),
                key.display().to_string()
            ),
        )
    };
    let valid = Config::parse(&with(&certs.cert, &certs.key, ""), &Overrides::default())
        .expect("the generated files are valid");
    assert!(valid.tls.is_some());
    let missing = certs.dir.join("missing.pem");
    let keys = |text: String| -> Vec<String> { problems(&text).into_iter().map(|p| p.0).collect() };
    assert_eq!(keys(with(&missing, &certs.key, "")), ["server.tls.cert"]);
    assert_eq!(keys(with(&certs.cert, &missing, "")), ["server.tls.key"]);
    assert_eq!(
        keys(with(&missing, &missing, "")),
        ["server.tls.cert", "server.tls.key"]
    );
    // Not PEM at all, the key given as certificate, and a key of another certificate.
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    assert_eq!(keys(with(&garbage, &certs.key, "")), ["server.tls.cert"]);
    assert_eq!(keys(with(&certs.cert, &certs.cert, "")), ["server.tls.key"]);
    let other = generate_certificates();
    let mismatch = problems(&with(&certs.cert, &other.key, ""));
    assert_eq!(mismatch.len(), 1);
    assert_eq!(mismatch[0].0, "server.tls.key");
    assert_eq!(
        keys(with(&certs.cert, &certs.key, "mode = \"sometimes\"\n")),
        ["server.tls.mode"]
    );
}
