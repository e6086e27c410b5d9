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

/// The filters of an export as its record names them: `name=value` pairs in the list's
/// parameter order (a repeatable filter's values joined with `,`), or `none`. Each value is a
/// JSON string, quotes and all, so that no value can pass for more of the record: `tags="x;
/// count 0"` is one tag, and the record's own `; count N` is the one outside quotes.
fn describe(q: &SimListQuery, for_plan: Option<ForPlan>) -> String {
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    let filters: [(&str, Vec<String>); 13] = [
        (
            "state",
            q.states.iter().map(|s| s.as_str().into()).collect(),
        ),
        (
            "sim_type",
            q.sim_type.iter().map(|t| t.as_str().into()).collect(),
        ),
        ("compatibility_zones", q.compatibility_zones.clone()),
        ("tags", q.tags.clone()),
        ("group_id", one(&q.group_id)),
        ("vendor", one(&q.vendor)),
        ("communication_plan", one(&q.carrier.communication_plan)),
        ("rate_plan", one(&q.carrier.rate_plan)),
        ("mno_integration_id", one(&q.carrier.mno_integration_id)),
        (
            "condition",
            q.conditions.iter().map(|c| c.as_str().into()).collect(),
        ),
        ("iccid", one(&q.iccid)),
        ("search", one(&q.search)),
        (
            "for_plan_id",
            for_plan
                .map(|ForPlan(id)| id.to_string())
                .into_iter()
                .collect(),
        ),
    ];
    let parts: Vec<String> = filters
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| {
            let quoted: Vec<String> = values
                .into_iter()
                .map(|v| serde_json::Value::String(v).to_string())
                .collect();
            format!("{name}={}", quoted.join(","))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::condition::Condition;
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
            r#"state="active","suspended" sim_type="esim" tags="a","b" vendor="GEMALTO" "#
                .to_owned()
                + r#"search="4477" for_plan_id="00000000-0000-0000-0000-000000000000""#
        );
    }

    #[test]
    fn every_filter_is_named_the_carrier_fields_and_conditions_too() {
        let q = SimListQuery {
            carrier: crate::domain::sim::CarrierFields {
                communication_plan: Some("CP1".into()),
                rate_plan: Some("RP 2".into()),
                mno_integration_id: Some("mno-9".into()),
            },
            conditions: vec![Condition::DataLimitExceeded, Condition::UnauthorizedImei],
            group_id: Some("fleet".into()),
            compatibility_zones: vec!["eu".into()],
            iccid: Some("8944".into()),
            ..SimListQuery::default()
        };
        assert_eq!(
            describe(&q, None),
            r#"compatibility_zones="eu" group_id="fleet" communication_plan="CP1" "#.to_owned()
                + r#"rate_plan="RP 2" mno_integration_id="mno-9" "#
                + r#"condition="data_limit_exceeded","unauthorized_imei" iccid="8944""#
        );
    }

    #[test]
    fn a_value_cannot_forge_more_of_the_record() {
        let q = SimListQuery {
            tags: vec!["x; count 0".into(), "y\",\"z".into()],
            vendor: Some("v\" count 0".into()),
            ..SimListQuery::default()
        };
        assert_eq!(
            describe(&q, None),
            r#"tags="x; count 0","y\",\"z" vendor="v\" count 0""#
        );
    }
}
