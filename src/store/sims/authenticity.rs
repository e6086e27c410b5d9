//! What a SIM row's MAC covers, the one check every read goes through, and adoption.

use super::{COLUMNS, SimRow};
use crate::domain::{Eid, Imsi, Sim};
use crate::store::{StoreResult, Tx, on_tx};
use crate::vault::{IntegrityKey, Purpose, RowParts};

/// What a SIM's MAC covers, in this order: who the card is (id, tenant, ICCID, IMSI, EID),
/// whether it is live (state, tombstone), its PIN/PUK counters and limits, and its AuC data
/// (a rolled-back SQN replays authentication vectors).
pub(super) fn sim_parts(sim: &Sim) -> RowParts {
    let c = &sim.counters;
    RowParts::default()
        .text(&sim.id.to_string())
        .text(sim.tenant_id.as_str())
        .text(sim.iccid.as_str())
        .opt_text(sim.imsi.as_ref().map(Imsi::as_str))
        .opt_text(sim.eid.as_ref().map(Eid::as_str))
        .text(sim.state.as_str())
        .opt_int(sim.deleted_at)
        .int(c.pin_max)
        .int(c.puk_max)
        .opt_int(c.pin1)
        .opt_int(c.pin2)
        .opt_int(c.puk1)
        .opt_int(c.puk2)
        .bytes(&sim.auth.amf)
        .int(i64::try_from(sim.auth.sqn).unwrap_or(i64::MAX))
        .int(i64::from(sim.auth.ind_bitlen))
}

/// The MAC to store with `sim`.
pub(super) fn sim_mac(key: &IntegrityKey, sim: &Sim) -> Vec<u8> {
    key.mac_row(Purpose::Sim, &sim_parts(sim)).to_vec()
}

impl SimRow {
    /// The one way from a stored row to a [`Sim`]: parsed, then checked against its MAC (and
    /// its link's, when read with it; the link must name this SIM and its tenant).
    pub(super) fn into_sim(mut self, key: &IntegrityKey) -> StoreResult<Sim> {
        let mac = self.mac.take();
        let link_mac = self.link_mac.take();
        let sim = self.parse_unauthenticated()?;
        key.check_row(
            Purpose::Sim,
            &sim.id.to_string(),
            &sim_parts(&sim),
            mac.as_deref(),
        )?;
        if let Some(link) = &sim.link {
            let parts = crate::store::links::link_parts(
                &link.id,
                sim.tenant_id.as_str(),
                &sim.id,
                &link.name,
                &link.plan_ids,
            );
            key.check_row(
                Purpose::Link,
                &link.id.to_string(),
                &parts,
                link_mac.as_deref(),
            )?;
        }
        Ok(sim)
    }
}

/// Gives every SIM row (of every tenant, tombstones included) its MAC: adoption of a database
/// from before row integrity, inside its one transaction. Returns how many rows.
pub async fn adopt(tx: &mut Tx, key: &IntegrityKey) -> StoreResult<u64> {
    const PAGE: i64 = 500;
    let select = format!("SELECT {COLUMNS} FROM sims WHERE id > $1 ORDER BY id LIMIT $2");
    let mut after = String::new();
    let mut adopted = 0u64;
    loop {
        let page: Vec<SimRow> = on_tx!(&mut *tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
            .bind(&after)
            .bind(PAGE)
            .fetch_all(&mut *c)
            .await)?;
        let Some(last) = page.last() else {
            return Ok(adopted);
        };
        after = last.id.clone();
        for row in page {
            let sim = row.parse_unauthenticated()?;
            on_tx!(&mut *tx, c => sqlx::query("UPDATE sims SET mac = $1 WHERE id = $2")
                .bind(sim_mac(key, &sim))
                .bind(sim.id.to_string())
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            adopted += 1;
        }
    }
}
