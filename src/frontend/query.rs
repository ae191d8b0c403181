//! Running statements for a session: the simple and extended query protocols, transaction
//! state, session statements, and the encoding of results.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::{Sink, SinkExt, stream};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_describe_response};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{DataRow, ParameterDescription};
use pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_STATEMENT};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::ParameterStatus;
use rusqlite::types::Value;

use super::Shared;
use super::session::{CopyTarget, LOCK_TIMEOUT, REPORTED, Session, SessionState, Txn, TxnState};
use super::status::{REPLICAS_STATUS, SHARDS_STATUS};
use super::values::{encode_field, from_binary, from_text};
use crate::error::{Error, SessionError};
use crate::router::ReadFrom;
use crate::sql::copy::CopySource;
use crate::sql::infer::ProjectedItem;
use crate::sql::plan::{Action, Plan, TRANSACTION_ISOLATION, TxnOp};
use crate::sql::types::{PgType, TypeWithMod, declared_type};
use crate::storage::{ColumnOrigin, Schema};

/// A result column as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    pub name: String,
    pub ty: TypeWithMod,
}

/// A statement prepared with Parse: its plan and what Describe reports.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Arc<Plan>,
    pub params: Vec<TypeWithMod>,
    pub columns: Vec<ResultColumn>,
}

/// What running one plan produced.
pub enum Outcome {
    Rows {
        columns: Vec<ResultColumn>,
        rows: Vec<Vec<Value>>,
        tag: String,
    },
    Command(Tag),
    TransactionStart(Tag),
    TransactionEnd(Tag),
    Empty,
    CopyIn(usize),
    CopyOut {
        columns: usize,
        data: Vec<bytes::Bytes>,
    },
}

/// Result columns from SQLite's description of a statement and what its select list says.
pub fn result_columns(
    origins: &[ColumnOrigin],
    projection: Option<&[ProjectedItem]>,
    schema: &Schema,
) -> Vec<ResultColumn> {
    // Map each SQLite column to its select-list item: items before the first wildcard
    // and after the last one line up from the start and from the end.
    let items = projection.unwrap_or(&[]);
    let wildcard_count = items
        .iter()
        .filter(|i| **i == ProjectedItem::Wildcard)
        .count();
    let item_for = |index: usize| -> Option<&ProjectedItem> {
        if wildcard_count == 0 {
            return items.get(index).filter(|_| items.len() == origins.len());
        }
        let first_wild = items.iter().position(|i| *i == ProjectedItem::Wildcard)?;
        if index < first_wild {
            return items.get(index);
        }
        let last_wild = items.iter().rposition(|i| *i == ProjectedItem::Wildcard)?;
        let after = items.len() - last_wild - 1;
        let from_end = origins.len() - index;
        if from_end <= after {
            return items.get(items.len() - from_end);
        }
        None
    };
    origins
        .iter()
        .enumerate()
        .map(|(index, origin)| {
            let (hint_name, hint_ty) = match item_for(index) {
                Some(ProjectedItem::Column { name, ty }) => (name.clone(), *ty),
                _ => (None, None),
            };
            let from_table = match (&origin.table, &origin.column) {
                (Some(t), Some(c)) => schema.column_type(t, c),
                _ => None,
            };
            let ty = from_table
                .or(hint_ty)
                .or_else(|| origin.decltype.as_deref().map(|d| declared_type(d).ty))
                .unwrap_or(TypeWithMod::plain(PgType::Text));
            ResultColumn {
                name: hint_name.unwrap_or_else(|| origin.name.clone()),
                ty,
            }
        })
        .collect()
}

fn field_infos(columns: &[ResultColumn], format: Option<&Format>) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let format = format.map(|f| f.format_for(i)).unwrap_or(FieldFormat::Text);
            FieldInfo::new(c.name.clone(), None, None, c.ty.pg.wire_type(), format)
                .with_type_size(c.ty.pg.type_size())
                .with_type_modifier(c.ty.typmod)
        })
        .collect()
}

fn encode_rows(
    columns: &[ResultColumn],
    rows: Vec<Vec<Value>>,
    format: Option<&Format>,
) -> Result<Vec<DataRow>, Error> {
    let binary: Vec<bool> = (0..columns.len())
        .map(|i| format.is_some_and(|f| f.is_binary(i)))
        .collect();
    let mut buf = BytesMut::with_capacity(rows.len() * 16 * columns.len().max(1));
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            let ty = columns
                .get(i)
                .map(|c| c.ty)
                .unwrap_or(TypeWithMod::plain(PgType::Text));
            encode_field(&mut buf, value, ty, binary.get(i).copied().unwrap_or(false))?;
        }
        out.push(DataRow::new(buf.split(), row.len() as i16));
    }
    Ok(out)
}

pub(super) fn notice(message: &str, code: &str) -> PgWireBackendMessage {
    PgWireBackendMessage::NoticeResponse(NoticeResponse::from(ErrorInfo::new(
        "WARNING".into(),
        code.into(),
        message.into(),
    )))
}

/// The statement and portal handlers for all sessions.
pub struct QueryHandler {
    pub shared: Arc<Shared>,
    parser: Arc<StatementParser>,
}

impl QueryHandler {
    pub fn new(shared: Arc<Shared>) -> QueryHandler {
        QueryHandler {
            parser: Arc::new(StatementParser {
                shared: shared.clone(),
            }),
            shared,
        }
    }
}

pub fn session_of<C: ClientInfo>(client: &C) -> Result<Arc<Session>, Error> {
    client
        .session_extensions()
        .get::<Arc<Session>>()
        .map(|s| (*s).clone())
        .ok_or_else(|| {
            SessionError::Protocol("no session: authentication did not finish".into()).into()
        })
}

impl Shared {
    /// Runs one plan for a session. `messages` collects notices and parameter statuses.
    pub async fn run(
        &self,
        session: &Session,
        state: &mut SessionState,
        plan: &Plan,
        params: Vec<Value>,
        messages: &mut Vec<PgWireBackendMessage>,
    ) -> Result<Outcome, Error> {
        let _running = self.drain.start_statement()?;
        let failed = matches!(state.txn, TxnState::Failed(_));
        let ends_txn = matches!(
            plan.action,
            Action::Transaction(TxnOp::Commit | TxnOp::Rollback | TxnOp::RollbackTo(_))
        );
        if failed && !ends_txn {
            return Err(SessionError::InFailedTransaction.into());
        }
        match &plan.action {
            Action::Empty => Ok(Outcome::Empty),
            Action::Refuse(e) => Err(e.clone().into()),
            Action::NoOp => Ok(Outcome::Command(Tag::new(&plan.tag))),
            Action::Set { name, value } => {
                let lowered = name.to_ascii_lowercase();
                let value = &super::session::checked_setting(name, value.clone())?;
                if lowered == TRANSACTION_ISOLATION {
                    return self
                        .set_transaction_isolation(session, state, value.as_deref(), messages)
                        .await;
                }
                if lowered == ReadFrom::SETTING {
                    if value
                        .as_deref()
                        .is_some_and(|v| ReadFrom::parse(v).is_none())
                    {
                        return Err(crate::sql::error::SqlError::InvalidParameter(format!(
                            "invalid value for parameter \"{name}\": {:?} (primary, replica or auto)",
                            value.as_deref().unwrap_or_default()
                        ))
                        .into());
                    }
                } else if lowered == super::execute::SHARD_SETTING {
                    if let Some(shard) = value.as_deref().filter(|v| !v.is_empty())
                        && self.router.shard_index(shard).is_none()
                    {
                        return Err(crate::sql::error::SqlError::InvalidParameter(format!(
                            "there is no shard named {shard:?}"
                        ))
                        .into());
                    }
                } else if lowered == "standard_conforming_strings"
                    && value.as_deref().and_then(crate::sql::rewrite::parse_bool) == Some(false)
                {
                    // The parser reads every '...' literal with backslashes as plain
                    // characters; with the setting off PostgreSQL would read them as escapes
                    // (and a LIKE pattern's `\%` would lose its escape).
                    return Err(crate::sql::error::SqlError::Unsupported(
                        "standard_conforming_strings = off is not supported: shardgate reads string literals as PostgreSQL does with it on (use E'...' for escapes)".into(),
                    )
                    .into());
                } else if lowered.starts_with("shardgate.")
                    && lowered != crate::config::ReadConsistency::SETTING
                {
                    return Err(crate::sql::error::SqlError::UnknownSetting(name.clone()).into());
                }
                match state.settings.set(name, value.clone()) {
                    Some((canonical, value)) => {
                        session
                            .canceller
                            .set_lock_timeout(state.settings.timeout(LOCK_TIMEOUT));
                        if REPORTED.contains(&canonical.as_str()) {
                            messages.push(PgWireBackendMessage::ParameterStatus(
                                ParameterStatus::new(canonical, value.clone()),
                            ));
                        }
                        if plan.tag == "SELECT" {
                            return Ok(Outcome::Rows {
                                columns: vec![ResultColumn {
                                    name: "set_config".into(),
                                    ty: TypeWithMod::plain(PgType::Text),
                                }],
                                rows: vec![vec![Value::Text(value)]],
                                tag: "SELECT".into(),
                            });
                        }
                        Ok(Outcome::Command(Tag::new("SET")))
                    }
                    None => Err(crate::sql::error::SqlError::UnknownSetting(name.clone()).into()),
                }
            }
            Action::ResetAll => {
                state.settings.reset_all();
                session
                    .canceller
                    .set_lock_timeout(state.settings.timeout(LOCK_TIMEOUT));
                Ok(Outcome::Command(Tag::new(&plan.tag)))
            }
            Action::Show { name, .. } if name.eq_ignore_ascii_case(REPLICAS_STATUS) => {
                Ok(self.replicas_status())
            }
            Action::Show { name, .. } if name.eq_ignore_ascii_case(SHARDS_STATUS) => {
                self.shards_status(session).await
            }
            Action::Show { name, column } => {
                let value = state
                    .setting(name)
                    .ok_or_else(|| crate::sql::error::SqlError::UnknownSetting(name.clone()))?;
                Ok(Outcome::Rows {
                    columns: vec![ResultColumn {
                        name: column.clone(),
                        ty: TypeWithMod::plain(PgType::Text),
                    }],
                    rows: vec![vec![Value::Text(value.to_string())]],
                    tag: "SHOW".into(),
                })
            }
            Action::Transaction(op) => self.transaction(session, state, op, messages).await,
            Action::Copy(copy) => self.start_copy(session, state, copy).await,
            Action::Execute => self.execute_plan(session, state, plan, params).await,
        }
    }

    async fn transaction(
        &self,
        session: &Session,
        state: &mut SessionState,
        op: &TxnOp,
        messages: &mut Vec<PgWireBackendMessage>,
    ) -> Result<Outcome, Error> {
        match op {
            TxnOp::Begin {
                read_only,
                isolation,
            } => {
                if !matches!(state.txn, TxnState::Idle) {
                    messages.push(notice(
                        "there is already a transaction in progress",
                        "25001",
                    ));
                    return Ok(Outcome::Command(Tag::new("BEGIN")));
                }
                // A shard joins a READ COMMITTED transaction at its first write there (a
                // read-only transaction at its first read, and may then run on one replica
                // throughout); REPEATABLE READ and SERIALIZABLE take every writer now.
                let isolation = isolation.unwrap_or_else(|| state.settings.default_isolation());
                let txn = self.begin_txn(session, *read_only, isolation).await?;
                state.txn = TxnState::Active(txn);
                Ok(Outcome::TransactionStart(Tag::new("BEGIN")))
            }
            TxnOp::Commit | TxnOp::Rollback => match state.txn.take() {
                TxnState::Idle => {
                    messages.push(notice("there is no transaction in progress", "25P01"));
                    let tag = if *op == TxnOp::Commit {
                        "COMMIT"
                    } else {
                        "ROLLBACK"
                    };
                    Ok(Outcome::TransactionEnd(Tag::new(tag)))
                }
                TxnState::Active(txn) if *op == TxnOp::Commit => {
                    self.commit_txn(session, txn).await?;
                    Ok(Outcome::TransactionEnd(Tag::new("COMMIT")))
                }
                TxnState::Active(txn) | TxnState::Failed(txn) => {
                    self.rollback_txn(session, txn).await;
                    Ok(Outcome::TransactionEnd(Tag::new("ROLLBACK")))
                }
            },
            TxnOp::Savepoint(name) | TxnOp::Release(name) | TxnOp::RollbackTo(name) => {
                let (command, tag) = match op {
                    TxnOp::Savepoint(_) => ("SAVEPOINT", "SAVEPOINT"),
                    TxnOp::Release(_) => ("RELEASE SAVEPOINT", "RELEASE"),
                    _ => ("ROLLBACK TO SAVEPOINT", "ROLLBACK"),
                };
                // `run` lets only ROLLBACK TO reach here in a failed transaction.
                let mut txn = match state.txn.take() {
                    TxnState::Idle => return Err(SessionError::NoTransaction(command).into()),
                    TxnState::Active(txn) | TxnState::Failed(txn) => txn,
                };
                if command != "SAVEPOINT" && !txn.savepoints.iter().any(|s| s == name) {
                    state.txn = TxnState::Failed(txn);
                    return Err(SessionError::NoSavepoint(name.clone()).into());
                }
                match self
                    .savepoint_everywhere(session, &mut txn, command, name)
                    .await
                {
                    Ok(()) => {
                        state.txn = TxnState::Active(txn);
                        Ok(Outcome::Command(Tag::new(tag)))
                    }
                    Err(e) => {
                        state.txn = TxnState::Failed(txn);
                        Err(e)
                    }
                }
            }
        }
    }

    async fn start_copy(
        &self,
        session: &Session,
        state: &mut SessionState,
        copy: &crate::sql::copy::CopyCommand,
    ) -> Result<Outcome, Error> {
        let schema = self.backend.schema();
        if copy.from_stdin {
            let CopySource::Table { table, columns } = &copy.source else {
                return Err(
                    crate::sql::error::SqlError::Syntax("COPY FROM needs a table".into()).into(),
                );
            };
            let info = schema.table(table).ok_or_else(|| {
                crate::storage::StorageError::new(
                    crate::storage::StorageErrorKind::UndefinedTable,
                    format!("relation \"{table}\" does not exist"),
                )
            })?;
            let names: Vec<String> = if columns.is_empty() {
                info.columns.iter().map(|c| c.name.clone()).collect()
            } else {
                columns.clone()
            };
            let mut types = Vec::new();
            for name in &names {
                let column = info.column(name).ok_or_else(|| {
                    crate::storage::StorageError::new(
                        crate::storage::StorageErrorKind::UndefinedColumn,
                        format!("column \"{name}\" of relation \"{table}\" does not exist"),
                    )
                })?;
                types.push(column.ty.pg);
            }
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let quoted: Vec<String> = names
                .iter()
                .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
                .collect();
            let insert_sql: Arc<str> = Arc::from(format!(
                "INSERT INTO \"{}\" ({}) VALUES ({})",
                info.name.replace('"', "\"\""),
                quoted.join(", "),
                placeholders.join(", ")
            ));
            let (txn, own_transaction) = match state.txn.take() {
                TxnState::Active(txn) => (txn, false),
                other => {
                    state.txn = other;
                    (Txn::new(false, true), true)
                }
            };
            let table_name = info.name.to_ascii_lowercase();
            let target = match &self.router.sharding {
                Some(sharding) if sharding.is_reference(&table_name) => CopyTarget::Everywhere,
                Some(sharding) => match sharding.key_of(&table_name) {
                    Some(key) => {
                        let position = names
                            .iter()
                            .position(|n| n.eq_ignore_ascii_case(key))
                            .ok_or_else(|| {
                                crate::sql::error::SqlError::Unsupported(format!(
                                    "COPY into sharded table {table_name} must include its shard key {key}"
                                ))
                            })?;
                        CopyTarget::ByKey {
                            position,
                            kind: crate::router::placement::KeyKind::of(
                                types.get(position).copied(),
                            ),
                        }
                    }
                    None => CopyTarget::Shard(0),
                },
                None => CopyTarget::Shard(0),
            };
            state.copy_in = Some(super::session::CopyInState {
                insert_sql,
                types,
                options: copy.options.clone(),
                pending: Vec::new(),
                rows: Vec::new(),
                count: 0,
                header_pending: copy.options.header,
                error: None,
                txn: Some(txn),
                own_transaction,
                target,
            });
            return Ok(Outcome::CopyIn(names.len()));
        }
        let query = match &copy.source {
            CopySource::Query(q) => q.clone(),
            CopySource::Table { table, columns } => {
                let cols = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("SELECT {cols} FROM \"{table}\"")
            }
        };
        let plans = self.plans.plan(&query, &schema);
        let [plan] = &plans[..] else {
            return Err(
                crate::sql::error::SqlError::Syntax("COPY needs exactly one query".into()).into(),
            );
        };
        let mut ignored = Vec::new();
        match Box::pin(self.run(session, state, plan, Vec::new(), &mut ignored)).await? {
            Outcome::Rows { columns, rows, .. } => {
                let mut data = Vec::with_capacity(rows.len() + 1);
                if copy.options.header {
                    let header: Vec<Option<String>> =
                        columns.iter().map(|c| Some(c.name.clone())).collect();
                    data.push(bytes::Bytes::from(crate::sql::copy::format_line(
                        &header,
                        &copy.options,
                    )));
                }
                for row in rows {
                    let fields = row
                        .iter()
                        .zip(&columns)
                        .map(|(v, c)| match v {
                            Value::Null => Ok(None),
                            v => super::values::to_text(v, c.ty).map(Some),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    data.push(bytes::Bytes::from(crate::sql::copy::format_line(
                        &fields,
                        &copy.options,
                    )));
                }
                Ok(Outcome::CopyOut {
                    columns: columns.len(),
                    data,
                })
            }
            _ => Err(crate::sql::error::SqlError::Syntax(
                "COPY query returned no rows description".into(),
            )
            .into()),
        }
    }
}

fn outcome_response(outcome: Outcome, format: Option<&Format>) -> Result<Response, Error> {
    Ok(match outcome {
        Outcome::Empty => Response::EmptyQuery,
        Outcome::Command(tag) => Response::Execution(tag),
        Outcome::TransactionStart(tag) => Response::TransactionStart(tag),
        Outcome::TransactionEnd(tag) => Response::TransactionEnd(tag),
        Outcome::Rows { columns, rows, tag } => {
            let fields = Arc::new(field_infos(&columns, format));
            let encoded = encode_rows(&columns, rows, format)?;
            let mut response =
                QueryResponse::new(fields, stream::iter(encoded.into_iter().map(Ok)));
            // The tag carries the row count already for DML ... RETURNING; SELECT's count is
            // added by pgwire as rows are sent.
            let base = tag
                .split_whitespace()
                .next()
                .unwrap_or("SELECT")
                .to_string();
            let tag = if base == "INSERT" {
                "INSERT 0".to_string()
            } else {
                base
            };
            response.set_command_tag(&tag);
            Response::Query(response)
        }
        Outcome::CopyIn(columns) => Response::CopyIn(pgwire::api::results::CopyResponse::new(
            0,
            columns,
            stream::empty(),
        )),
        Outcome::CopyOut { columns, data } => {
            Response::CopyOut(pgwire::api::results::CopyResponse::new(
                0,
                columns,
                stream::iter(
                    data.into_iter()
                        .map(|d| Ok(pgwire::messages::copy::CopyData::new(d))),
                ),
            ))
        }
    })
}

async fn send_messages<C>(client: &mut C, messages: Vec<PgWireBackendMessage>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for message in messages {
        client.feed(message).await?;
    }
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client).map_err(|e| e.to_pgwire())?;
        let plans = self.shared.plans.plan(query, &self.shared.backend.schema());
        let mut state = session.state.lock().await;
        let mut responses = Vec::with_capacity(plans.len());
        let mut messages = Vec::new();
        // Several statements outside a transaction run in one implicit transaction, as in
        // PostgreSQL: an error rolls back the earlier ones.
        let implicit = plans.len() > 1
            && matches!(state.txn, TxnState::Idle)
            && plans.iter().any(|p| p.is_write)
            && !plans
                .iter()
                .any(|p| matches!(p.action, Action::Transaction(_) | Action::Copy(_)));
        if implicit {
            let mut txn = Txn::new(false, true);
            let shards = self.shared.write_shards(&plans, &state);
            if shards.len() > 1
                && let Err(e) = self.shared.join_writers(&session, &mut txn, shards).await
            {
                return Ok(vec![Response::Error(Box::new(e.to_error_info()))]);
            }
            state.txn = TxnState::Active(txn);
        }
        let mut failed = false;
        for plan in plans.iter() {
            let result = self
                .shared
                .run(&session, &mut state, plan, Vec::new(), &mut messages)
                .await;
            send_messages(client, std::mem::take(&mut messages)).await?;
            match result.and_then(|outcome| outcome_response(outcome, None)) {
                Ok(response) => {
                    let copy_in = matches!(response, Response::CopyIn(_));
                    responses.push(response);
                    if copy_in {
                        break;
                    }
                }
                Err(e) => {
                    state.txn.fail();
                    responses.push(Response::Error(Box::new(e.to_error_info())));
                    failed = true;
                    break;
                }
            }
        }
        if implicit && let TxnState::Active(txn) | TxnState::Failed(txn) = state.txn.take() {
            if failed {
                self.shared.rollback_txn(&session, txn).await;
            } else if let Err(e) = self.shared.commit_txn(&session, txn).await {
                responses.push(Response::Error(Box::new(e.to_error_info())));
            }
        }
        Ok(responses)
    }
}

/// Plans a statement at Parse time and finds its result columns.
pub struct StatementParser {
    shared: Arc<Shared>,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Arc<Prepared>>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client).ok();
        let in_transaction = match &session {
            Some(session) => matches!(session.state.lock().await.txn, TxnState::Active(_)),
            None => false,
        };
        match self.prepare(sql, in_transaction).await {
            Ok(prepared) => Ok(Some(prepared)),
            // The connection's error path fails the transaction.
            Err(e) => Err(e.to_pgwire()),
        }
    }

    fn get_parameter_types(&self, stmt: &Arc<Prepared>) -> PgWireResult<Vec<Type>> {
        Ok(stmt.params.iter().map(|t| t.pg.wire_type()).collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Arc<Prepared>,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(field_infos(&stmt.columns, format))
    }
}

impl StatementParser {
    /// Plans a statement and describes it. Inside a transaction, a statement over a table the
    /// transaction itself created cannot be described outside it: it is prepared without
    /// result columns, and Execute reports what it finds.
    async fn prepare(&self, sql: &str, in_transaction: bool) -> Result<Arc<Prepared>, Error> {
        let schema = self.shared.backend.schema();
        let plans = self.shared.plans.plan(sql, &schema);
        let plan = match &plans[..] {
            [plan] => plan.clone(),
            _ => return Err(SessionError::MultipleCommandsInPrepared.into()),
        };
        if let Action::Refuse(e) = &plan.action {
            return Err(e.clone().into());
        }
        let (params, columns) = match (&plan.action, plan.rewritten.statements.last()) {
            // DDL has no result columns, and its last statement may depend on the ones before
            // it (a table's triggers on the table), so it cannot be prepared before they ran.
            (Action::Execute, Some(_)) if plan.rewritten.changes_schema => {
                (plan.params.clone(), Vec::new())
            }
            (Action::Execute, Some(last)) => {
                match self.shared.backend.describe(Arc::from(last.as_str())).await {
                    Ok(shape) => {
                        let mut params = plan.params.clone();
                        params.resize(shape.param_count, TypeWithMod::plain(PgType::Text));
                        (
                            params,
                            result_columns(&shape.columns, plan.projection.as_deref(), &schema),
                        )
                    }
                    Err(e)
                        if in_transaction
                            && matches!(
                                e.kind,
                                crate::storage::StorageErrorKind::UndefinedTable
                                    | crate::storage::StorageErrorKind::UndefinedColumn
                            ) =>
                    {
                        (plan.params.clone(), Vec::new())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            (Action::Show { column, .. }, _) => (
                Vec::new(),
                vec![ResultColumn {
                    name: column.clone(),
                    ty: TypeWithMod::plain(PgType::Text),
                }],
            ),
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Arc::new(Prepared {
            plan,
            params,
            columns,
        }))
    }
}

/// Decodes Bind parameters with the types announced in ParameterDescription (the client's
/// own types where it sent them).
fn bind_parameters(portal: &Portal<Arc<Prepared>>) -> Result<Vec<Value>, Error> {
    let prepared = &portal.statement.statement;
    let client_types = &portal.statement.parameter_types;
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let ty = client_types
                .get(i)
                .and_then(|t| t.as_ref())
                .and_then(|t| PgType::from_oid(t.oid()))
                .or_else(|| prepared.params.get(i).map(|t| t.pg))
                .unwrap_or(PgType::Text);
            match raw {
                None => Ok(Value::Null),
                Some(bytes) if portal.parameter_format.is_binary(i) => Ok(from_binary(bytes, ty)?),
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        crate::sql::error::SqlError::InvalidParameter(
                            "invalid UTF-8 in parameter".into(),
                        )
                    })?;
                    Ok(from_text(text, ty)?)
                }
            }
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = Arc<Prepared>;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    /// pgwire answers Describe of a statement that has parameters but no result columns with
    /// an empty RowDescription; PostgreSQL answers NoData, and pgjdbc's `executeBatch` reports
    /// 0 rows per statement after anything else. Statements are answered here; portals (which
    /// have no ParameterDescription) already get NoData from pgwire.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let statement = match client.portal_store().get_statement(name) {
            Some(Entry::Value(statement)) if message.target_type == TARGET_TYPE_BYTE_STATEMENT => {
                statement
            }
            _ => return self._on_describe(client, message).await,
        };
        let described = self.do_describe_statement(client, &statement).await?;
        client
            .send(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(described.parameters.iter().map(|t| t.oid()).collect()),
            ))
            .await?;
        // Without fields this sends NoData, with them the RowDescription.
        send_describe_response(client, &DescribePortalResponse::new(described.fields)).await
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Arc<Prepared>>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &target.statement;
        let params = (0..prepared.params.len().max(target.parameter_types.len()))
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| t.oid() != 0)
                    .or_else(|| prepared.params.get(i).map(|t| t.pg.wire_type()))
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        Ok(DescribeStatementResponse::new(
            params,
            field_infos(&prepared.columns, None),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Arc<Prepared>>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(DescribePortalResponse::new(field_infos(
            &portal.statement.statement.columns,
            Some(&portal.result_column_format),
        )))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Arc<Prepared>>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client).map_err(|e| e.to_pgwire())?;
        let params = bind_parameters(portal).map_err(|e| e.to_pgwire())?;
        let prepared = &portal.statement.statement;
        let mut messages = Vec::new();
        let result = {
            let mut state = session.state.lock().await;
            self.shared
                .run(&session, &mut state, &prepared.plan, params, &mut messages)
                .await
        };
        send_messages(client, messages).await?;
        let outcome = result.map_err(|e| e.to_pgwire())?;
        // Describe promised these columns; rows are encoded with the promised types.
        let outcome = match outcome {
            Outcome::Rows { columns, rows, tag }
                if columns.len() == prepared.columns.len() && !prepared.columns.is_empty() =>
            {
                Outcome::Rows {
                    columns: prepared.columns.clone(),
                    rows,
                    tag,
                }
            }
            other => other,
        };
        outcome_response(outcome, Some(&portal.result_column_format)).map_err(|e| e.to_pgwire())
    }
}
