//! The group-commit writer: records of many requests appended and committed together, and
//! the linking of records to the end of their chain inside a transaction.

use tokio::sync::{mpsc, oneshot};

use super::{AuditRecord, link};
use crate::service::{ServiceError, ServiceResult};
use crate::store::audit::{self, AuditRow};
use crate::store::{Db, Tx};

/// Links `record` to the end of its chain, inside `tx`. Any failure is `Unavailable`: the
/// request it belongs to is refused with `503` (fail closed).
pub(crate) async fn append(tx: &mut Tx, record: AuditRecord) -> ServiceResult<()> {
    append_chain(tx, vec![record]).await
}

/// Links records of one chain, in order, to its end.
pub(crate) async fn append_chain(tx: &mut Tx, records: Vec<AuditRecord>) -> ServiceResult<()> {
    link_records(tx, records).await.map_err(|e| match e {
        ServiceError::Unavailable(_) => e,
        other => ServiceError::Unavailable(format!("audit log: {other}")),
    })
}

async fn link_records(tx: &mut Tx, records: Vec<AuditRecord>) -> ServiceResult<()> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    let (mut seq, mut prev_hash) = audit::lock_head(tx, &first.tenant).await?;
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let text = serde_json::to_string(&record).map_err(|e| {
            ServiceError::internal_because("an audit record that does not serialise", e)
        })?;
        seq += 1;
        let hash = link(&prev_hash, &text);
        rows.push(AuditRow {
            tenant_id: record.tenant,
            seq,
            id: record.id,
            occurred_at: record.occurred_at,
            action: record.action,
            outcome: record.outcome.as_str().to_owned(),
            subject: record.subject,
            sim_id: record.sim_id,
            iccid: record.iccid,
            record: text,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    audit::append(tx, &rows).await?;
    Ok(())
}

/// A record waiting for the writer, and who to tell once it is durable.
pub type Pending = (AuditRecord, oneshot::Sender<Result<(), String>>);

/// Most records committed together.
const BATCH: usize = 256;

/// The group-commit writer: takes every record waiting, appends them in one transaction (in
/// tenant order, so that replicas lock chain heads in the same order), commits once, and
/// answers each. A failed commit fails every record of the batch: none of their requests
/// proceeds (fail closed).
pub async fn writer(db: Db, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| a.0.tenant.cmp(&b.0.tenant));
        let (records, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let outcome = commit_batch(&db, records).await.map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "audit records could not be written");
        }
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

/// Appends a batch (sorted by chain) in one transaction: each chain's head is locked once.
async fn commit_batch(db: &Db, records: Vec<AuditRecord>) -> ServiceResult<()> {
    let mut tx = db.begin().await?;
    let mut chain: Vec<AuditRecord> = Vec::new();
    for record in records {
        if chain.first().is_some_and(|c| c.tenant != record.tenant) {
            append_chain(&mut tx, std::mem::take(&mut chain)).await?;
        }
        chain.push(record);
    }
    append_chain(&mut tx, chain).await?;
    Ok(tx.commit().await?)
}
