//! COPY FROM STDIN: data arrives in arbitrary chunks, is split into lines and rows, and goes
//! into the table in batches on one write connection, committed at CopyDone.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::Shared;
use super::query::session_of;
use super::session::{CopyInState, CopyTarget, Session, TxnState};
use super::values::from_text;
use crate::error::Error;
use crate::router::placement::ShardKey;
use crate::sql::copy::split_line;
use crate::sql::error::SqlError;
use crate::storage::{ExecRequest, Value};

/// Rows buffered before they are written.
const BATCH_ROWS: usize = 5_000;

/// COPY FROM STDIN data for every session.
pub struct CopyIn {
    pub shared: Arc<Shared>,
}

fn take_lines(copy: &mut CopyInState) -> Result<(), Error> {
    while let Some(end) = copy.pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = copy.pending.drain(..=end).collect();
        let line = std::str::from_utf8(&line[..line.len() - 1])
            .map_err(|_| SqlError::InvalidCopy("invalid UTF-8 in COPY data".into()))?;
        add_line(copy, line.trim_end_matches('\r'))?;
    }
    Ok(())
}

fn add_line(copy: &mut CopyInState, line: &str) -> Result<(), Error> {
    if line == "\\." {
        return Ok(());
    }
    if copy.header_pending {
        copy.header_pending = false;
        return Ok(());
    }
    let fields = split_line(line, &copy.options);
    if fields.len() != copy.types.len() {
        return Err(SqlError::InvalidCopy(format!(
            "COPY row {} has {} columns, expected {}",
            copy.count + copy.rows.len() as u64 + 1,
            fields.len(),
            copy.types.len()
        ))
        .into());
    }
    let row = fields
        .into_iter()
        .zip(&copy.types)
        .map(|(field, ty)| match field {
            None => Ok(rusqlite::types::Value::Null),
            Some(text) => from_text(&text, *ty),
        })
        .collect::<Result<Vec<_>, _>>()?;
    copy.rows.push(row);
    Ok(())
}

/// Sends the buffered rows to their shards, inside the COPY's transaction.
async fn flush(shared: &Shared, session: &Session, copy: &mut CopyInState) -> Result<(), Error> {
    if copy.rows.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(&mut copy.rows);
    let count = rows.len() as u64;
    let mut by_shard: Vec<(usize, Vec<Vec<Value>>)> = Vec::new();
    let mut add =
        |shard: usize, row: Vec<Value>| match by_shard.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, rows)) => rows.push(row),
            None => by_shard.push((shard, vec![row])),
        };
    match &copy.target {
        CopyTarget::Shard(shard) => rows.into_iter().for_each(|row| add(*shard, row)),
        CopyTarget::Everywhere => {
            for shard in 0..shared.router.shards.len() {
                rows.iter().for_each(|row| add(shard, row.clone()));
            }
        }
        CopyTarget::ByKey { position } => {
            let Some(sharding) = &shared.router.sharding else {
                return Err(SqlError::InvalidCopy("COPY lost its sharding".into()).into());
            };
            for row in rows {
                let key = match row.get(*position) {
                    Some(Value::Integer(i)) => ShardKey::Int(*i),
                    Some(Value::Text(t)) => ShardKey::Text(t.clone()),
                    other => {
                        return Err(SqlError::InvalidCopy(format!(
                            "COPY row {} has no usable shard key ({other:?})",
                            copy.count + 1
                        ))
                        .into());
                    }
                };
                let shard = sharding
                    .placement
                    .shard_for(&key)
                    .map_err(|e| SqlError::Unsupported(e.to_string()))?;
                add(shard, row);
            }
        }
    }
    let Some(txn) = copy.txn.as_mut() else {
        return Err(SqlError::InvalidCopy("COPY lost its transaction".into()).into());
    };
    // A COPY in its own transaction takes the writer of every shard its rows may go to at its
    // first batch, in shard order: taken batch by batch in row order, two COPYs could each
    // hold the shard the other waits for. (A client's transaction writes on one shard only.)
    if txn.spans_shards {
        let shards = match &copy.target {
            CopyTarget::Shard(shard) => vec![*shard],
            CopyTarget::ByKey { .. } | CopyTarget::Everywhere => {
                (0..shared.router.shards.len()).collect()
            }
        };
        shared.join_writers(session, txn, shards).await?;
    }
    by_shard.sort_unstable_by_key(|(shard, _)| *shard);
    for (shard, rows) in by_shard {
        let backend = shared.txn_session(session, txn, shard, true).await?;
        backend
            .execute(
                ExecRequest::for_each_row(copy.insert_sql.clone(), rows),
                &session.canceller,
            )
            .await?;
    }
    copy.count += count;
    Ok(())
}

#[async_trait]
impl CopyHandler for CopyIn {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client).map_err(|e| e.to_pgwire())?;
        let mut state = session.state.lock().await;
        let Some(copy) = state.copy_in.as_mut() else {
            return Ok(());
        };
        if copy.error.is_some() {
            return Ok(());
        }
        copy.pending.extend_from_slice(&data.data);
        let mut result = take_lines(copy);
        if result.is_ok() && copy.rows.len() >= BATCH_ROWS {
            result = flush(&self.shared, &session, copy).await;
        }
        if let Err(e) = result {
            copy.error = Some(e);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client).map_err(|e| e.to_pgwire())?;
        let mut state = session.state.lock().await;
        let Some(mut copy) = state.copy_in.take() else {
            return Ok(());
        };
        let mut result = match copy.error.take() {
            Some(e) => Err(e),
            None => {
                let rest = std::mem::take(&mut copy.pending);
                let tail = String::from_utf8(rest).map_err(|_| {
                    Error::from(SqlError::InvalidCopy("invalid UTF-8 in COPY data".into()))
                });
                match tail {
                    Ok(tail) if !tail.trim_end_matches(['\r', '\n']).is_empty() => {
                        add_line(&mut copy, tail.trim_end_matches(['\r', '\n']))
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        };
        if result.is_ok() {
            result = flush(&self.shared, &session, &mut copy).await;
        }
        let txn = copy.txn.take();
        match (result, txn) {
            (Ok(()), Some(txn)) => {
                if copy.own_transaction {
                    self.shared
                        .commit_txn(&session, txn)
                        .await
                        .map_err(|e| e.to_pgwire())?;
                } else {
                    state.txn = TxnState::Active(txn);
                }
                client
                    .send(PgWireBackendMessage::CommandComplete(
                        Tag::new("COPY").with_rows(copy.count as usize).into(),
                    ))
                    .await?;
                Ok(())
            }
            (Err(e), txn) => {
                match (copy.own_transaction, txn) {
                    (false, Some(txn)) => state.txn = TxnState::Failed(txn),
                    (true, Some(txn)) => self.shared.rollback_txn(&session, txn).await,
                    _ => {}
                }
                Err(e.to_pgwire())
            }
            (Ok(()), None) => Err(Error::from(SqlError::InvalidCopy(
                "COPY lost its connection".into(),
            ))
            .to_pgwire()),
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Ok(session) = session_of(client) {
            let mut state = session.state.lock().await;
            if let Some(mut copy) = state.copy_in.take()
                && let Some(txn) = copy.txn.take()
            {
                if copy.own_transaction {
                    self.shared.rollback_txn(&session, txn).await;
                } else {
                    state.txn = TxnState::Failed(txn);
                }
            }
        }
        PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}
