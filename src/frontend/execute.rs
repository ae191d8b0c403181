//! Running a planned statement where the router sends it: on one shard (its primary or a
//! replica), on several shards (a write on all of them together, a read merged), or split by
//! rows; inside a transaction, on the writers the transaction holds (taken in shard order,
//! all that a statement needs before it runs) or, for a READ COMMITTED read of a shard it has
//! not written on, like an autocommit read.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rusqlite::types::Value;

use super::Shared;
use super::merge::MergePlan;
use super::query::{Outcome, ResultColumn, result_columns};
use super::session::{Session, SessionState, Txn, TxnState};
use crate::error::{Error, SessionError};
use crate::router::sharding::Route;
use crate::router::{ReadFrom, ReadTarget};
use crate::sql::error::SqlError;
use crate::sql::plan::{Action, Isolation, Plan};
use crate::storage::{
    Backend, BackendSession, ExecOutput, ExecRequest, Intent, Params, StorageError,
    StorageErrorKind,
};

/// `SET shardgate.shard = 'name'`: run this session's statements on that shard.
pub const SHARD_SETTING: &str = "shardgate.shard";

fn request_for(plan: &Plan, params: Vec<Value>) -> ExecRequest {
    ExecRequest {
        statements: plan
            .rewritten
            .statements
            .iter()
            .map(|s| Arc::from(s.as_str()))
            .collect(),
        params: Params::One(params),
        catalog: plan.rewritten.catalog.clone(),
        changes_schema: plan.rewritten.changes_schema,
        reads_catalog: plan.reads_catalog,
    }
}

/// The outputs of one statement on several shards as one: rows concatenated, counts summed.
fn concatenate(outputs: Vec<ExecOutput>) -> ExecOutput {
    let mut merged = ExecOutput::default();
    for output in outputs {
        if merged.columns.is_empty() {
            merged.columns = output.columns;
        }
        merged.rows.extend(output.rows);
        merged.changes += output.changes;
    }
    merged
}

fn command_tag(plan: &Plan, output: &ExecOutput) -> pgwire::api::results::Tag {
    use pgwire::api::results::Tag;
    let rows = output.changes as usize;
    match plan.tag.as_str() {
        "INSERT" => Tag::new("INSERT").with_oid(0).with_rows(rows),
        "UPDATE" | "DELETE" | "SELECT" | "COPY" => Tag::new(&plan.tag).with_rows(rows),
        other => Tag::new(other),
    }
}

impl Shared {
    /// A write committed on `shard` at `lsn` (if it was logged): remember it for the
    /// session's read-your-writes and wait for the acknowledgements the replication mode asks
    /// for.
    pub async fn acknowledge_write(&self, session: &Session, shard: usize, lsn: Option<u64>) {
        if let (Some(lsn), Some(last), Some(target)) = (
            lsn,
            session.last_write_lsn.get(shard),
            self.router.shards.get(shard),
        ) {
            last.fetch_max(lsn, Ordering::AcqRel);
            target.acknowledge(lsn).await;
        }
    }

    fn read_from(plan: &Plan, state: &SessionState) -> ReadFrom {
        if plan.primary_hint {
            return ReadFrom::Primary;
        }
        state
            .settings
            .get(ReadFrom::SETTING)
            .and_then(ReadFrom::parse)
            .unwrap_or(ReadFrom::Auto)
    }

    /// The shard a hint names (comment first, then the session setting).
    fn hinted_shard(&self, plan: &Plan, state: &SessionState) -> Result<Option<usize>, Error> {
        let hint = plan.shard_hint.clone().or_else(|| {
            state
                .settings
                .get(SHARD_SETTING)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        });
        let Some(name) = hint else {
            return Ok(None);
        };
        self.router.shard_index(&name).map(Some).ok_or_else(|| {
            SqlError::InvalidParameter(format!("there is no shard named {name:?}")).into()
        })
    }

    /// Where a plan runs, given its bound parameters.
    pub fn route(
        &self,
        plan: &Plan,
        params: &[Value],
        state: &SessionState,
    ) -> Result<Route, Error> {
        if let Some(shard) = self.hinted_shard(plan, state)? {
            return Ok(Route::One(shard));
        }
        let Some(sharding) = &self.router.sharding else {
            return Ok(Route::One(0));
        };
        if plan.reads_catalog {
            return Ok(Route::One(0));
        }
        let all = || (0..self.router.shards.len()).collect::<Vec<_>>();
        match &plan.statement {
            Some(stmt) => {
                Ok(sharding.route(stmt, params, &self.backend.schema(), plan.is_write)?)
            }
            None if plan.rewritten.changes_schema => Ok(Route::Everywhere(all())),
            None if plan.is_write => Err(SqlError::Unsupported(
                "a statement shardgate cannot parse cannot be routed across shards".into(),
            )
            .into()),
            None => Ok(Route::One(0)),
        }
    }

    /// Runs an `Action::Execute` plan.
    pub(super) async fn execute_plan(
        &self,
        session: &Session,
        state: &mut SessionState,
        plan: &Plan,
        params: Vec<Value>,
    ) -> Result<Outcome, Error> {
        if plan.creates_virtual_table && self.router.shards.iter().any(|s| s.replication.is_some())
        {
            return Err(SqlError::Unsupported(
                "virtual tables cannot be replicated, and this shard has replicas".into(),
            )
            .into());
        }
        let route = self.route(plan, &params, state)?;
        let read_from = Self::read_from(plan, state);
        let result = match (&mut state.txn, route) {
            (TxnState::Active(txn), route) => {
                self.execute_in_txn(session, txn, plan, params, route).await
            }
            (_, Route::One(shard)) => {
                self.execute_on_shard(session, shard, read_from, plan, request_for(plan, params))
                    .await
            }
            (_, route) if plan.is_write => self.execute_across(session, plan, params, route).await,
            (_, Route::Many(shards)) => {
                self.scatter(session, &shards, read_from, plan, params)
                    .await
            }
            (_, Route::Everywhere(shards)) => {
                let any = shards.first().copied().unwrap_or(0);
                self.execute_on_shard(session, any, read_from, plan, request_for(plan, params))
                    .await
            }
            (_, Route::Split(_)) => {
                Err(SqlError::Unsupported("a read cannot be split by rows".into()).into())
            }
        };
        if plan.rewritten.changes_schema {
            self.plans.invalidate();
        }
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                if let TxnState::Active(txn) = state.txn.take() {
                    state.txn = TxnState::Failed(txn);
                }
                return Err(e);
            }
        };
        let tag = command_tag(plan, &output);
        if output.columns.is_empty() {
            return Ok(Outcome::Command(tag));
        }
        let columns: Vec<ResultColumn> = result_columns(
            &output.columns,
            plan.projection.as_deref(),
            &self.backend.schema(),
        );
        let tag_text = pgwire::messages::response::CommandComplete::from(tag).tag;
        Ok(Outcome::Rows {
            columns,
            rows: output.rows,
            tag: tag_text,
        })
    }

    /// One statement (`request`, of `plan`), one shard, no transaction.
    async fn execute_on_shard(
        &self,
        session: &Session,
        shard: usize,
        read_from: ReadFrom,
        plan: &Plan,
        request: ExecRequest,
    ) -> Result<ExecOutput, Error> {
        let target = &self.router.shards[shard];
        // The emulated catalog is rebuilt in place, which a query_only read connection
        // refuses: catalog reads use the writer.
        if !(plan.is_write || plan.reads_catalog) {
            return Ok(self
                .execute_read(session, shard, read_from, request)
                .await?);
        }
        if plan.is_write {
            target.primary_writes.fetch_add(1, Ordering::Relaxed);
        }
        let mut backend = target
            .primary
            .session(Intent::Write, &session.canceller)
            .await?;
        let output = backend.execute(request, &session.canceller).await;
        // The writer is free for others while replicas acknowledge.
        drop(backend);
        let output = output?;
        self.acknowledge_write(session, shard, output.lsn).await;
        Ok(output)
    }

    /// Runs a read outside a transaction on `shard`, where its router sends it. A replica
    /// whose file fails is taken out of rotation and the read is answered by the primary.
    async fn execute_read(
        &self,
        session: &Session,
        shard: usize,
        read_from: ReadFrom,
        request: ExecRequest,
    ) -> Result<ExecOutput, StorageError> {
        let target = &self.router.shards[shard];
        let last_write = session
            .last_write_lsn
            .get(shard)
            .map_or(0, |l| l.load(Ordering::Acquire));
        if let ReadTarget::Replica(replica, backend) = target.read_target(last_write, read_from) {
            let attempt = async {
                let mut connection = backend.session(Intent::Read, &session.canceller).await?;
                connection
                    .execute(request.clone(), &session.canceller)
                    .await
            };
            match attempt.await {
                Ok(output) => {
                    replica.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(output);
                }
                Err(e) if e.kind == StorageErrorKind::Corrupt => {
                    replica.request_rebuild(format!("{}: {e}", crate::replication::READ_FAILED));
                }
                Err(e) if e.kind.is_file_failure() => {
                    replica.errors.fetch_add(1, Ordering::Relaxed);
                    replica.mark_unhealthy(format!("{}: {e}", crate::replication::READ_FAILED));
                }
                // A replica that has not applied the latest DDL yet may lack the table or
                // column the primary has: the primary answers.
                Err(e)
                    if matches!(
                        e.kind,
                        StorageErrorKind::UndefinedTable | StorageErrorKind::UndefinedColumn
                    ) && target.is_behind(&replica) => {}
                Err(e) => return Err(e),
            }
        }
        target.primary_reads.fetch_add(1, Ordering::Relaxed);
        let mut connection = target
            .primary
            .session(Intent::Read, &session.canceller)
            .await?;
        connection.execute(request, &session.canceller).await
    }

    /// A read over several shards, outside a transaction: run everywhere at once, merge.
    async fn scatter(
        &self,
        session: &Session,
        shards: &[usize],
        read_from: ReadFrom,
        plan: &Plan,
        params: Vec<Value>,
    ) -> Result<ExecOutput, Error> {
        let (merge, request) = self.scatter_plan(plan, params)?;
        let runs = shards.iter().map(|&shard| {
            let request = request.clone();
            async move {
                self.execute_read(session, shard, read_from, request)
                    .await
                    .map_err(|e| self.on_shard(shard, e))
            }
        });
        let outputs = futures::future::try_join_all(runs).await?;
        self.merge_outputs(plan, &merge, outputs).await
    }

    /// How a read over several shards is merged, and what each shard runs.
    fn scatter_plan(
        &self,
        plan: &Plan,
        params: Vec<Value>,
    ) -> Result<(MergePlan, ExecRequest), Error> {
        let schema = self.backend.schema();
        let tables: Vec<String> = plan
            .statement
            .as_deref()
            .map(|stmt| {
                let mut tables = Vec::new();
                let _ = sqlparser::ast::visit_relations(stmt, |name| {
                    tables.push(crate::sql::rewrite::name_text(name));
                    std::ops::ControlFlow::<()>::Continue(())
                });
                tables
            })
            .unwrap_or_default();
        let is_input_column = |column: &str| {
            tables
                .iter()
                .filter_map(|t| schema.table(t))
                .any(|t| t.column(column).is_some())
        };
        let merge = MergePlan::for_plan(plan, &params, &is_input_column)?;
        let request = match &merge {
            MergePlan::Concatenate => request_for(plan, params),
            MergePlan::Staged(staged) => {
                let plans = self.plans.plan(&staged.shard_sql, &self.backend.schema());
                let [shard_plan] = &plans[..] else {
                    return Err(SqlError::Syntax("a shard query did not plan".into()).into());
                };
                if let Action::Refuse(e) = &shard_plan.action {
                    return Err(e.clone().into());
                }
                // LIMIT and OFFSET parameters are folded into the shard query.
                let mut params = params;
                params.truncate(shard_plan.params.len());
                request_for(shard_plan, params)
            }
        };
        Ok((merge, request))
    }

    async fn merge_outputs(
        &self,
        plan: &Plan,
        merge: &MergePlan,
        outputs: Vec<ExecOutput>,
    ) -> Result<ExecOutput, Error> {
        let MergePlan::Staged(staged) = merge else {
            let mut merged = concatenate(outputs);
            merged.changes = merged.rows.len() as u64;
            return Ok(merged);
        };
        let rewrite = |sql: &str| -> Result<String, SqlError> {
            let plans = crate::sql::plan::plan_text(sql, &crate::storage::Schema::default());
            match plans
                .first()
                .map(|p| (&p.action, p.rewritten.statements.last()))
            {
                Some((Action::Execute, Some(statement))) => Ok(statement.clone()),
                Some((Action::Refuse(e), _)) => Err(e.clone()),
                _ => Err(SqlError::Syntax(format!(
                    "cannot plan the merge query {sql}"
                ))),
            }
        };
        let scratch =
            crate::storage::open_scratch(&crate::storage::ConnectionSettings::new(&self.config))?;
        let mut output = staged.merge(scratch, outputs, rewrite)?;
        if staged.aggregates()
            && let Some(original) = plan.rewritten.statements.last()
        {
            // The shard query returned partial aggregates: describe the client's query.
            output.columns = self
                .backend
                .describe(Arc::from(original.as_str()))
                .await?
                .columns;
        }
        Ok(output)
    }

    /// Names the shard in an error from it; a partial result is never returned.
    fn on_shard(&self, shard: usize, e: StorageError) -> StorageError {
        let name = self
            .router
            .shards
            .get(shard)
            .map_or("?", |s| s.name.as_str());
        if self.router.shards.len() == 1 {
            return e;
        }
        StorageError::new(e.kind, format!("shard {name}: {}", e.message))
    }

    /// A write over several shards outside a client transaction: every shard executes it in
    /// its own transaction, and only when all succeeded do they commit.
    async fn execute_across(
        &self,
        session: &Session,
        plan: &Plan,
        params: Vec<Value>,
        route: Route,
    ) -> Result<ExecOutput, Error> {
        let mut txn = Txn::new(false, true);
        match self
            .execute_in_txn(session, &mut txn, plan, params, route)
            .await
        {
            Ok(output) => {
                self.commit_txn(session, txn).await?;
                Ok(output)
            }
            Err(e) => {
                self.rollback_txn(session, txn).await;
                Err(e)
            }
        }
    }

    /// Starts a client transaction. One that holds its snapshot (REPEATABLE READ,
    /// SERIALIZABLE) takes every shard's writer now, in shard order; READ COMMITTED takes a
    /// shard's writer at its first write there.
    pub(super) async fn begin_txn(
        &self,
        session: &Session,
        read_only: bool,
        isolation: Isolation,
    ) -> Result<Txn, Error> {
        let mut txn = Txn::new(read_only, false);
        self.set_isolation(session, &mut txn, isolation).await?;
        Ok(txn)
    }

    /// `SET TRANSACTION ISOLATION LEVEL`: only before the transaction's first statement.
    pub(super) async fn set_isolation(
        &self,
        session: &Session,
        txn: &mut Txn,
        isolation: Isolation,
    ) -> Result<(), Error> {
        if txn.ran_statement {
            return Err(SessionError::IsolationAfterQuery.into());
        }
        txn.isolation = isolation;
        if isolation.holds_snapshot() && !txn.read_only {
            self.join_writers(session, txn, 0..self.router.shards.len())
                .await?;
        }
        Ok(())
    }

    /// `SET TRANSACTION ISOLATION LEVEL ...` (PostgreSQL warns and ignores it outside a
    /// transaction block).
    pub(super) async fn set_transaction_isolation(
        &self,
        session: &Session,
        state: &mut SessionState,
        value: Option<&str>,
        messages: &mut Vec<pgwire::messages::PgWireBackendMessage>,
    ) -> Result<Outcome, Error> {
        let tag = || Outcome::Command(pgwire::api::results::Tag::new("SET"));
        let TxnState::Active(txn) = &mut state.txn else {
            messages.push(super::query::notice(
                "SET TRANSACTION can only be used in transaction blocks",
                "25P01",
            ));
            return Ok(tag());
        };
        let isolation = value
            .and_then(Isolation::parse)
            .unwrap_or_else(|| state.settings.default_isolation());
        self.set_isolation(session, txn, isolation).await?;
        Ok(tag())
    }

    /// The shards a multi-statement query's writes go to. Its implicit transaction takes
    /// their writers before it runs (taken statement by statement, two such queries could
    /// each hold a shard the other waits for).
    pub(super) fn write_shards(&self, plans: &[Arc<Plan>], state: &SessionState) -> Vec<usize> {
        let mut shards = Vec::new();
        for plan in plans.iter().filter(|p| p.is_write) {
            // A statement that does not route fails when it runs, with its own error.
            match self.route(plan, &[], state) {
                Ok(Route::One(shard)) => shards.push(shard),
                Ok(Route::Many(many) | Route::Everywhere(many)) => shards.extend(many),
                Ok(Route::Split(parts)) => shards.extend(parts.iter().map(|(s, _)| *s)),
                Err(_) => {}
            }
        }
        shards.sort_unstable();
        shards.dedup();
        shards
    }

    /// Records that `txn` writes on `shard`: a client transaction may write on one shard only.
    fn claim_write(&self, txn: &mut Txn, shard: usize) -> Result<(), Error> {
        match txn.wrote_on {
            Some(other) if other != shard && !txn.spans_shards => Err(SqlError::Unsupported(format!(
                "this transaction wrote on shard {} and would now write on shard {}; a transaction may write on one shard only (no atomic cross-shard commit yet)",
                self.router.shards[other].name, self.router.shards[shard].name
            ))
            .into()),
            None => {
                txn.wrote_on = Some(shard);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Joins `txn` to the writers of `shards` it does not hold yet. Every session takes
    /// writers in ascending shard order, all that a statement needs before it runs, so no
    /// two sessions can each hold a writer the other waits for.
    pub(super) async fn join_writers(
        &self,
        session: &Session,
        txn: &mut Txn,
        shards: impl IntoIterator<Item = usize>,
    ) -> Result<(), Error> {
        let mut missing: Vec<usize> = shards.into_iter().filter(|s| !txn.holds(*s)).collect();
        missing.sort_unstable();
        missing.dedup();
        for shard in missing {
            self.join(session, txn, shard).await?;
        }
        Ok(())
    }

    /// The transaction's connection for a statement on `shard` (`writes`: one that writes).
    pub(super) async fn txn_session<'t>(
        &self,
        session: &Session,
        txn: &'t mut Txn,
        shard: usize,
        writes: bool,
    ) -> Result<&'t mut Box<dyn BackendSession>, Error> {
        if writes {
            self.claim_write(txn, shard)?;
            self.router.shards[shard]
                .primary_writes
                .fetch_add(1, Ordering::Relaxed);
        }
        self.join(session, txn, shard).await
    }

    /// The transaction's connection to `shard`, joined (BEGIN, savepoints) on first use: a
    /// reader (of a replica, when one has the session's writes) for a read-only transaction,
    /// else the shard's writer.
    async fn join<'t>(
        &self,
        session: &Session,
        txn: &'t mut Txn,
        shard: usize,
    ) -> Result<&'t mut Box<dyn BackendSession>, Error> {
        let existing = txn.sessions.iter().position(|(s, _)| *s == shard);
        let position = match existing {
            Some(position) => position,
            None => {
                let target = &self.router.shards[shard];
                let canceller = &session.canceller;
                let mut backend = if txn.read_only {
                    let last_write = session
                        .last_write_lsn
                        .get(shard)
                        .map_or(0, |l| l.load(Ordering::Acquire));
                    match target.read_target(last_write, ReadFrom::Auto) {
                        ReadTarget::Replica(replica, backend) => {
                            replica.reads.fetch_add(1, Ordering::Relaxed);
                            backend.session(Intent::Read, canceller).await?
                        }
                        ReadTarget::Primary => {
                            target.primary.session(Intent::Read, canceller).await?
                        }
                    }
                } else {
                    target.primary.session(Intent::Write, canceller).await?
                };
                backend.begin(canceller).await?;
                let savepoints = txn.savepoints.clone();
                for name in &savepoints {
                    backend
                        .execute(
                            ExecRequest::sql(savepoint_sql("SAVEPOINT", name)),
                            canceller,
                        )
                        .await?;
                }
                txn.sessions.push((shard, backend));
                txn.sessions.len() - 1
            }
        };
        Ok(&mut txn.sessions[position].1)
    }

    /// Runs `request` (of `plan`) on `shard` inside `txn`. A READ COMMITTED transaction
    /// reads a shard it has not written on as an autocommit read does (its own snapshot, no
    /// writer held); once it wrote there, it reads on that writer and sees its own writes.
    async fn run_in_txn(
        &self,
        session: &Session,
        txn: &mut Txn,
        shard: usize,
        plan: &Plan,
        request: ExecRequest,
    ) -> Result<ExecOutput, Error> {
        if !(plan.is_write || txn.read_only || txn.holds(shard)) {
            return self
                .execute_on_shard(session, shard, ReadFrom::Primary, plan, request)
                .await
                .map_err(|e| match e {
                    Error::Storage(e) => self.on_shard(shard, e).into(),
                    other => other,
                });
        }
        let backend = self.txn_session(session, txn, shard, plan.is_write).await?;
        Ok(backend
            .execute(request, &session.canceller)
            .await
            .map_err(|e| self.on_shard(shard, e))?)
    }

    /// Runs a plan inside `txn` on the shards of `route`.
    async fn execute_in_txn(
        &self,
        session: &Session,
        txn: &mut Txn,
        plan: &Plan,
        params: Vec<Value>,
        route: Route,
    ) -> Result<ExecOutput, Error> {
        txn.ran_statement = true;
        let writes = plan.is_write;
        // Every shard holds the same rows (reference table, DDL): one answers for all.
        let same_data = matches!(route, Route::Everywhere(_));
        match route {
            Route::One(shard) => {
                self.run_in_txn(session, txn, shard, plan, request_for(plan, params))
                    .await
            }
            Route::Many(shards) | Route::Everywhere(shards) if writes => {
                for &shard in &shards {
                    self.claim_write(txn, shard)?;
                }
                self.join_writers(session, txn, shards.iter().copied())
                    .await?;
                let mut outputs = Vec::with_capacity(shards.len());
                for shard in shards {
                    outputs.push(
                        self.run_in_txn(
                            session,
                            txn,
                            shard,
                            plan,
                            request_for(plan, params.clone()),
                        )
                        .await?,
                    );
                }
                if same_data {
                    return Ok(outputs.into_iter().next().unwrap_or_default());
                }
                Ok(concatenate(outputs))
            }
            Route::Everywhere(shards) => {
                let shard = shards.first().copied().unwrap_or(0);
                self.run_in_txn(session, txn, shard, plan, request_for(plan, params))
                    .await
            }
            Route::Many(shards) => {
                let (merge, request) = self.scatter_plan(plan, params)?;
                let mut outputs = Vec::with_capacity(shards.len());
                for shard in shards {
                    outputs.push(
                        self.run_in_txn(session, txn, shard, plan, request.clone())
                            .await?,
                    );
                }
                self.merge_outputs(plan, &merge, outputs).await
            }
            Route::Split(parts) => {
                let schema = self.backend.schema();
                let mut planned = Vec::with_capacity(parts.len());
                for (shard, sql) in parts {
                    let plans = self.plans.plan(&sql, &schema);
                    let [part] = &plans[..] else {
                        return Err(
                            SqlError::Syntax("a split INSERT did not re-plan".into()).into()
                        );
                    };
                    self.claim_write(txn, shard)?;
                    planned.push((shard, part.clone()));
                }
                self.join_writers(session, txn, planned.iter().map(|(s, _)| *s))
                    .await?;
                let mut outputs = Vec::with_capacity(planned.len());
                for (shard, part) in planned {
                    outputs.push(
                        self.run_in_txn(
                            session,
                            txn,
                            shard,
                            &part,
                            request_for(&part, params.clone()),
                        )
                        .await?,
                    );
                }
                Ok(concatenate(outputs))
            }
        }
    }

    /// Commits every shard of a transaction. The shard that was written commits first; if a
    /// later commit fails, the shards before it stay committed and the error says so.
    pub async fn commit_txn(&self, session: &Session, mut txn: Txn) -> Result<(), Error> {
        if let Some(wrote) = txn.wrote_on
            && let Some(position) = txn.sessions.iter().position(|(s, _)| *s == wrote)
        {
            let first = txn.sessions.remove(position);
            txn.sessions.insert(0, first);
        }
        let mut committed = Vec::new();
        let mut sessions = std::mem::take(&mut txn.sessions).into_iter();
        for (shard, mut backend) in sessions.by_ref() {
            match backend.commit(&session.canceller).await {
                Ok(lsn) => committed.push((shard, lsn)),
                Err(e) => {
                    // Dropping the rest rolls them back.
                    let done: Vec<&str> = committed
                        .iter()
                        .map(|(s, _)| self.router.shards[*s].name.as_str())
                        .collect();
                    let e = self.on_shard(shard, e);
                    return Err(if done.is_empty() {
                        e.into()
                    } else {
                        StorageError::new(
                            e.kind,
                            format!("{} (already committed on {})", e.message, done.join(", ")),
                        )
                        .into()
                    });
                }
            }
        }
        // The writers are free for others while replicas acknowledge.
        drop(sessions);
        for (shard, lsn) in committed {
            self.acknowledge_write(session, shard, lsn).await;
        }
        Ok(())
    }

    pub async fn rollback_txn(&self, session: &Session, txn: Txn) {
        for (_, mut backend) in txn.sessions {
            if let Err(e) = backend.rollback(&session.canceller).await {
                tracing::warn!("rollback failed: {e}");
            }
        }
    }

    /// SAVEPOINT, RELEASE or ROLLBACK TO on every shard the transaction holds.
    pub async fn savepoint_everywhere(
        &self,
        session: &Session,
        txn: &mut Txn,
        command: &'static str,
        name: &str,
    ) -> Result<(), Error> {
        for (shard, backend) in txn.sessions.iter_mut() {
            backend
                .execute(
                    ExecRequest::sql(savepoint_sql(command, name)),
                    &session.canceller,
                )
                .await
                .map_err(|e| self.on_shard(*shard, e))?;
        }
        match command {
            "SAVEPOINT" => txn.savepoints.push(name.to_string()),
            _ => {
                let keep = txn
                    .savepoints
                    .iter()
                    .rposition(|s| s == name)
                    .map_or(0, |i| {
                        if command == "RELEASE SAVEPOINT" {
                            i
                        } else {
                            i + 1
                        }
                    });
                txn.savepoints.truncate(keep);
            }
        }
        Ok(())
    }
}

pub fn savepoint_sql(command: &str, name: &str) -> String {
    format!("{command} \"{}\"", name.replace('"', "\"\""))
}
