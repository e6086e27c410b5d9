//! Exporting the inventory: every SIM of the caller's tenant matching the list filters,
//! streamed a page at a time (constant memory, whatever the inventory's size; no database
//! connection held between pages, so a slow reader pins none), recorded as one audit record
//! naming the filters and the count.
//!
//! Fail closed, and why the count is taken first: the record must name how many SIMs the
//! export holds, but a streamed export only knows that at its end, when the rows are already
//! sent. So the use case counts the matching SIMs, writes the record durably (group commit)
//! and only then starts reading pages: when the record cannot be written, the caller gets an
//! error and not one row. The count is the number matching when the export began; SIMs
//! created, deleted or changed while it streams can make the rows sent differ from it (a SIM
//! never appears twice: the pages follow the creation order, which never moves).
//!
//! Must never: send a row before the record is durable; hand out a row that failed its
//! integrity check (the store refuses it; the export ends there and the row is reported).

use tokio::sync::mpsc;

use super::audit::Event;
use super::sims::ForPlan;
use super::{Core, Inventory, ServiceResult};
use crate::domain::audit::AuditOutcome;
use crate::domain::sim::SimListQuery;
use crate::domain::{Principal, Sim, TenantId};
use crate::policy::Action;
use crate::store::sims::{self as repo, ExportCursor};

/// SIMs read per page.
const PAGE: u32 = 500;

/// An export under way: how many SIMs it holds (as recorded), and its pages as they are read.
#[derive(Debug)]
pub struct SimExport {
    /// The SIMs matching when the export began: the number in its audit record.
    pub count: u64,
    /// Pages of SIMs, oldest first; an error ends the export.
    pub pages: mpsc::Receiver<ServiceResult<Vec<Sim>>>,
}

impl Inventory {
    /// `GET /v1/sims/export`: every SIM of the caller's tenant matching `query`'s filters (its
    /// paging and sorting are not used), once the caller may export and the export is recorded.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "export_sims"))]
    pub async fn export_sims(
        &self,
        principal: &Principal,
        query: SimListQuery,
        for_plan: Option<ForPlan>,
    ) -> ServiceResult<SimExport> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::ExportSims)
            .await?;
        self.start_export(principal, query, for_plan, decision.policy_ids)
            .await
    }

    /// `simvault export`: [`Inventory::export_sims`] for whoever runs the CLI on the host (who
    /// holds the database and its keys: no policy decides), recorded in the tenant's chain as
    /// the CLI's principal.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %tenant, action = "host_export_sims"))]
    pub async fn host_export_sims(
        &self,
        tenant: &TenantId,
        query: SimListQuery,
        for_plan: Option<ForPlan>,
    ) -> ServiceResult<SimExport> {
        self.start_export(&Principal::cli(tenant.clone()), query, for_plan, Vec::new())
            .await
    }

    async fn start_export(
        &self,
        principal: &Principal,
        mut query: SimListQuery,
        for_plan: Option<ForPlan>,
        policy_ids: Vec<String>,
    ) -> ServiceResult<SimExport> {
        let filters = describe(&query, for_plan);
        let tenant = &principal.tenant;
        let any = self.apply_plan(tenant, &mut query, for_plan).await?;
        let count = if any {
            repo::count(&self.core.db, tenant, &query).await?
        } else {
            0
        };
        let reason = format!("filters: {filters}; count {count}");
        let event = Event::tenant_wide(
            Action::ExportSims,
            AuditOutcome::Allowed,
            Some(&reason),
            policy_ids,
        );
        self.core.audit_alone(principal, event).await?;
        let (pages_tx, pages) = mpsc::channel(2);
        if any {
            tokio::spawn(send_pages(
                self.core.clone(),
                tenant.clone(),
                query,
                pages_tx,
            ));
        }
        Ok(SimExport { count, pages })
    }
}

/// Sends the matching SIMs a page at a time until they are all sent, one fails to read, or
/// the receiver goes away. A row that fails its check ends the export and is reported.
async fn send_pages(
    core: Core,
    tenant: TenantId,
    query: SimListQuery,
    out: mpsc::Sender<ServiceResult<Vec<Sim>>>,
) {
    let mut after = None;
    loop {
        let page = match core.row_key() {
            Ok(key) => repo::export_page(&core.db, &key, &tenant, &query, after.as_ref(), PAGE)
                .await
                .map_err(Into::into),
            Err(e) => Err(e),
        };
        let sims = match page {
            Ok(sims) => sims,
            Err(e) => {
                if let super::ServiceError::Integrity(failure) = &e {
                    core.report_integrity(failure).await;
                }
                let _ = out.send(Err(e)).await;
                return;
            }
        };
        let Some(last) = sims.last() else { return };
        after = Some(ExportCursor::after(last));
        let last_page = sims.len() < PAGE as usize;
        if out.send(Ok(sims)).await.is_err() || last_page {
            return;
        }
    }
}

/// The filters of an export as its record names them: `name=value` pairs (a repeatable
/// filter's values joined with `,`), in a fixed order, or `none`.
fn describe(q: &SimListQuery, for_plan: Option<ForPlan>) -> String {
    let mut parts = Vec::new();
    let mut list = |name: &str, values: Vec<&str>| {
        if !values.is_empty() {
            parts.push(format!("{name}={}", values.join(",")));
        }
    };
    list("state", q.states.iter().map(|s| s.as_str()).collect());
    list("sim_type", q.sim_type.iter().map(|t| t.as_str()).collect());
    list(
        "compatibility_zones",
        q.compatibility_zones.iter().map(String::as_str).collect(),
    );
    list("tags", q.tags.iter().map(String::as_str).collect());
    for (name, value) in [
        ("group_id", &q.group_id),
        ("vendor", &q.vendor),
        ("iccid", &q.iccid),
        ("search", &q.search),
    ] {
        list(name, value.iter().map(String::as_str).collect());
    }
    let plan = for_plan.map(|ForPlan(id)| id.to_string());
    list("for_plan_id", plan.iter().map(String::as_str).collect());
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SimState, SimType};

    #[test]
    fn filters_are_named_in_a_fixed_order() {
        assert_eq!(describe(&SimListQuery::default(), None), "none");
        let q = SimListQuery {
            states: vec![SimState::Active, SimState::Suspended],
            sim_type: Some(SimType::Esim),
            tags: vec!["a".into(), "b".into()],
            vendor: Some("GEMALTO".into()),
            search: Some("4477".into()),
            ..SimListQuery::default()
        };
        let plan = ForPlan(uuid::Uuid::nil());
        assert_eq!(
            describe(&q, Some(plan)),
            "state=active,suspended sim_type=esim tags=a,b vendor=GEMALTO search=4477 \
             for_plan_id=00000000-0000-0000-0000-000000000000"
        );
    }
}
