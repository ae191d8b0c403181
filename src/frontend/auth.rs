//! Startup and authentication: trust, md5 and SCRAM-SHA-256 against the configured users,
//! the database name check, and the creation of the session once the client is in.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use md5::{Digest, Md5};
use pgwire::api::ClientInfo;
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::md5pass::{Md5PasswordAuth, hash_md5_password};
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::scram::{
    SCRAM_ITERATIONS, ScramAuth, ScramSecret, gen_salted_password,
};
use pgwire::api::auth::{
    AuthDriver, AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::Shared;
use super::connection::PeerSocket;
use super::session::{RegistryGuard, Session, SessionState, Settings, TxnState};
use crate::config::{AuthMethod, StoredPassword};
use crate::storage::Canceller;

/// Looks passwords up in the configuration.
#[derive(Debug)]
pub struct ConfiguredUsers {
    users: HashMap<String, StoredPassword>,
    /// SCRAM needs a salted password; computed once per user at start-up (4096 rounds of
    /// PBKDF2 per connection would dominate connection set-up).
    scram: HashMap<String, (Vec<u8>, Vec<u8>)>,
}

impl ConfiguredUsers {
    pub fn new(config: &crate::config::Config) -> ConfiguredUsers {
        let mut users = HashMap::new();
        let mut scram = HashMap::new();
        for user in &config.users {
            users.insert(user.name.clone(), user.password.clone());
            if let StoredPassword::Plain(password) = &user.password {
                let salt: [u8; 16] = rand::random();
                let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
                scram.insert(user.name.clone(), (salt.to_vec(), salted));
            }
        }
        ConfiguredUsers { users, scram }
    }

    pub fn exists(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }
}

fn bad_password(login: &LoginInfo) -> PgWireError {
    PgWireError::InvalidPassword(login.user().unwrap_or_default().to_owned())
}

#[async_trait]
impl AuthSource for ConfiguredUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let stored = self.users.get(user).ok_or_else(|| bad_password(login))?;
        let salt: [u8; 4] = rand::random();
        let expected = match stored {
            StoredPassword::Plain(password) => hash_md5_password(user, password, &salt),
            StoredPassword::Md5Hex(inner) => {
                let mut hasher = Md5::new();
                hasher.update(inner.as_bytes());
                hasher.update(salt);
                format!("md5{:x}", hasher.finalize())
            }
        };
        Ok(Password::new(Some(salt.to_vec()), expected.into_bytes()))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let (salt, salted) = self.scram.get(user).ok_or_else(|| bad_password(login))?;
        Ok((
            ScramSecret::SaltedPassword {
                salt: salt.clone(),
                salted_password: salted.clone(),
            },
            None,
        ))
    }
}

pub struct Startup {
    shared: Arc<Shared>,
    driver: AuthDriver<DefaultServerParameterProvider>,
    md5: Md5PasswordAuth<ConfiguredUsers>,
    scram: ScramAuth,
}

impl Startup {
    pub fn new(shared: Arc<Shared>) -> Startup {
        let users = shared.users.clone();
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = crate::SERVER_VERSION.to_string();
        parameters.time_zone = "UTC".into();
        parameters.date_style = "ISO, MDY".into();
        parameters.is_superuser = false;
        Startup {
            driver: AuthDriver::new(parameters),
            md5: Md5PasswordAuth::new(users.clone()),
            scram: ScramAuth::new(users),
            shared,
        }
    }

    fn fatal(code: &str, message: String) -> PgWireError {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".into(),
            code.into(),
            message,
        )))
    }

    /// Checks what can be checked before the password: database name, capacity.
    fn admit<C: ClientInfo>(&self, client: &C) -> PgWireResult<()> {
        let metadata = client.metadata();
        let user = metadata.get("user").cloned().unwrap_or_default();
        let database = metadata
            .get("database")
            .cloned()
            .unwrap_or_else(|| user.clone());
        if database != self.shared.config.database {
            return Err(Self::fatal(
                "3D000",
                format!("database \"{database}\" does not exist"),
            ));
        }
        if self.shared.connection_count() > self.shared.config.max_connections {
            return Err(Self::fatal(
                "53300",
                "sorry, too many clients already".into(),
            ));
        }
        Ok(())
    }

    async fn finish<C>(
        &self,
        client: &mut C,
        final_message: Option<pgwire::messages::startup::Authentication>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.driver
            .complete_authentication(client, final_message)
            .await?;
        let metadata = client.metadata();
        let user = metadata.get("user").cloned().unwrap_or_default();
        let application_name = metadata
            .get("application_name")
            .cloned()
            .unwrap_or_default();
        let session = Arc::new(Session {
            state: tokio::sync::Mutex::new(SessionState {
                txn: TxnState::Idle,
                settings: Settings::new(
                    &user,
                    &application_name,
                    self.shared.session_defaults.clone(),
                ),
                copy_in: None,
            }),
            canceller: Canceller::with_lock_timeout(self.shared.config.storage.lock_timeout),
            last_write_lsn: (0..self.shared.router.shards.len())
                .map(|_| Default::default())
                .collect(),
            user,
        });
        if let Some(peer) = client.session_extensions().get::<PeerSocket>() {
            session.canceller.watch_hang_up(peer.hang_up());
        }
        let (pid, secret) = client.pid_and_secret_key();
        self.shared
            .registry
            .register(pid, secret.to_bytes().to_vec(), session.canceller.clone());
        client.session_extensions().insert(RegistryGuard {
            registry: self.shared.registry.clone(),
            pid,
        });
        client.session_extensions().insert(session);
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                pgwire::api::auth::protocol_negotiation(client, startup).await?;
                pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                self.admit(client)?;
                match self.shared.config.auth {
                    AuthMethod::Trust => {
                        let user = client.metadata().get("user").cloned().unwrap_or_default();
                        if !self.shared.users.exists(&user) {
                            return Err(PgWireError::InvalidPassword(user));
                        }
                        AuthOutcome::Authenticated {
                            identity: None,
                            final_message: None,
                        }
                    }
                    AuthMethod::Md5 => {
                        self.driver
                            .begin_authentication(client, self.md5.create())
                            .await?
                    }
                    AuthMethod::ScramSha256 => {
                        self.driver
                            .begin_authentication(client, self.scram.create())
                            .await?
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.driver.advance_authentication(client, message).await?
            }
            _ => return Ok(()),
        };
        match outcome {
            AuthOutcome::InProgress => Ok(()),
            AuthOutcome::Authenticated { final_message, .. } => {
                self.finish(client, final_message).await
            }
        }
    }
}
