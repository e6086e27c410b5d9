//! Secret use cases: writing secret fields through the key hierarchy and revealing them to
//! the principals the policy allows, field by field.

use std::sync::Arc;

use super::audit::Event;
use super::{ServiceError, ServiceResult, Services, Target};
use crate::domain::sim::SecretChanges;
use crate::domain::{Principal, SecretField, SecretValue, Sim, ValidationErrors};
use crate::policy::{Action, Context};
use crate::store::Tx;
use crate::store::keys::{self, DekRow, TenantKeyRow};
use crate::store::sims::{self as repo, SimKey};
use crate::vault::{self, Key, VaultError};

impl From<VaultError> for ServiceError {
    fn from(e: VaultError) -> Self {
        if e == VaultError::Unavailable {
            tracing::error!("the root key's module is unavailable: answered 503");
            return ServiceError::Unavailable(e.to_string());
        }
        // An integrity failure means tampering or a wrong key: loud in the log, opaque outside.
        tracing::error!(error = %e, "vault operation failed");
        ServiceError::Internal(e.to_string())
    }
}

/// What a caller asked to reveal and what it gets: each field's value, or `None` if unset.
pub type Revealed = Vec<(SecretField, Option<SecretValue>)>;

impl Services {
    /// A tenant KEK version, from the keyring's cache or the store.
    pub(super) async fn kek(&self, tenant: &str, version: i64) -> ServiceResult<Arc<Key>> {
        if let Some(kek) = self.keyring.cached_kek(tenant, version) {
            return Ok(kek);
        }
        let row = keys::kek(&self.db, &*self.row_key()?, tenant, version).await?;
        self.open_kek_row(tenant, version, row)
    }

    /// Opens (and caches) a KEK version read from the store.
    fn open_kek_row(
        &self,
        tenant: &str,
        version: i64,
        row: Option<TenantKeyRow>,
    ) -> ServiceResult<Arc<Key>> {
        let row = row.ok_or_else(|| {
            ServiceError::Internal(format!("tenant key version {version} is missing"))
        })?;
        Ok(self
            .keyring
            .open_kek(tenant, version, row.format, &row.wrapped_key)?)
    }

    /// The tenant's active KEK, creating version 1 on first use.
    pub(super) async fn active_kek(
        &self,
        tx: &mut Tx,
        tenant: &str,
    ) -> ServiceResult<(i64, Arc<Key>)> {
        if let Some(row) = keys::active_kek(&mut *tx, &*self.row_key()?, tenant).await? {
            let kek = self
                .keyring
                .open_kek(tenant, row.version, row.format, &row.wrapped_key)?;
            return Ok((row.version, kek));
        }
        self.check_root(tx).await?;
        let (kek, wrapped) = self.keyring.new_kek(tenant, 1)?;
        let row = TenantKeyRow {
            tenant_id: tenant.to_owned(),
            version: 1,
            format: self.keyring.format(),
            wrapped_key: wrapped,
            state: "active".into(),
            wrapped_deks: 0,
            created_at: self.clock.now(),
            retired_at: None,
        };
        if keys::insert_kek(tx, &*self.row_key()?, &row).await? {
            return Ok((1, kek));
        }
        // Another writer created it first: use theirs.
        let row = keys::active_kek(&mut *tx, &*self.row_key()?, tenant)
            .await?
            .ok_or_else(|| ServiceError::Internal("tenant key vanished".into()))?;
        let kek = self
            .keyring
            .open_kek(tenant, row.version, row.format, &row.wrapped_key)?;
        Ok((row.version, kek))
    }

    /// [`Services::kek`] inside a transaction that holds locks.
    pub(super) async fn kek_in(
        &self,
        tx: &mut Tx,
        tenant: &str,
        version: i64,
    ) -> ServiceResult<Arc<Key>> {
        if let Some(kek) = self.keyring.cached_kek(tenant, version) {
            return Ok(kek);
        }
        let row = keys::kek(&mut *tx, &*self.row_key()?, tenant, version).await?;
        self.open_kek_row(tenant, version, row)
    }

    /// Before wrapping a new KEK: is our root key still the database's? (After a root-key
    /// rotation, replicas still holding the old key must not wrap anything new with it.)
    pub(super) async fn check_root(&self, tx: &mut Tx) -> ServiceResult<()> {
        let check = keys::root_check(&mut *tx).await?;
        match check {
            Some((format, blob)) if self.keyring.verify_root_check(format, &blob).is_ok() => Ok(()),
            _ => {
                tracing::error!(
                    "the database's root key has changed: restart this replica with the new root key"
                );
                Err(ServiceError::Unavailable("root key rotated".into()))
            }
        }
    }

    /// The SIM's DEK, creating and wrapping one under the active KEK on first use.
    async fn dek_for_write(&self, tx: &mut Tx, sim: &Sim) -> ServiceResult<Key> {
        if let Some(row) = keys::dek(&mut *tx, &sim.id).await? {
            let kek = self.kek_in(tx, &sim.tenant_id, row.kek_version).await?;
            return open_dek(&kek, sim, &row);
        }
        let (version, kek) = self.active_kek(tx, &sim.tenant_id).await?;
        let dek = vault::new_key()?;
        let row = DekRow {
            kek_version: version,
            format: vault::FORMAT,
            wrapped_dek: vault::wrap_dek(&kek, &sim.tenant_id, &sim.id, version, &dek)?,
        };
        keys::insert_dek(tx, &sim.tenant_id, &sim.id, &row, self.clock.now()).await?;
        keys::count_wraps(tx, &sim.tenant_id, version, 1).await?;
        Ok(dek)
    }

    /// Encrypts and stores (or removes) secret fields inside `tx`, updating `sim`'s view of
    /// which fields are set and its retry counters. The caller writes `sim` back.
    pub(super) async fn apply_secrets(
        &self,
        tx: &mut Tx,
        sim: &mut Sim,
        changes: &SecretChanges,
    ) -> ServiceResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let dek = self.dek_for_write(tx, sim).await?;
        let now = self.clock.now();
        for (field, value) in changes {
            match value {
                Some(v) => {
                    let blob =
                        vault::seal_field(&dek, &sim.tenant_id, &sim.id, *field, v.expose())?;
                    keys::put_secret(tx, &sim.id, field.as_str(), vault::FORMAT, &blob, now)
                        .await?;
                    sim.secret_fields.insert(*field);
                    sim.counters.provisioned(*field);
                }
                None => {
                    keys::delete_secret(tx, &sim.id, field.as_str()).await?;
                    sim.secret_fields.remove(field);
                    sim.counters.removed(*field);
                }
            }
        }
        Ok(())
    }

    /// `PUT /v1/sims/{sim}/secrets`: merge the given fields into the SIM's secrets.
    pub async fn put_secrets(
        &self,
        principal: &Principal,
        key: &SimKey,
        mut changes: SecretChanges,
        op: Option<SecretValue>,
    ) -> ServiceResult<Sim> {
        let (mut tx, mut sim, decision) =
            self.lock_sim(principal, key, Action::WriteSecrets).await?;
        if let Some(op) = op {
            // OPc from OP and the SIM's stored Ki; OP itself is never stored.
            let Some(ki) = self.open_secret_in(&mut tx, &sim, SecretField::Ki).await? else {
                return Err(ValidationErrors::single_pointer(
                    "/op",
                    "this SIM has no Ki: give ki with op",
                )
                .into());
            };
            changes.push((
                SecretField::Opc,
                Some(crate::domain::milenage::opc_value(&ki, &op)),
            ));
        }
        if changes
            .iter()
            .any(|(f, _)| crate::domain::pin::blocked_for_good(&sim.counters, *f))
        {
            // A PUK-exhausted card stays dead: new PINs or PUKs would undo the block.
            return Err(ServiceError::Pin(crate::domain::pin::Verdict::PukBlocked));
        }
        self.apply_secrets(&mut tx, &mut sim, &changes).await?;
        let fields: Vec<SecretField> = changes.iter().map(|(f, _)| *f).collect();
        let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        self.emit(
            &mut tx,
            &sim,
            "sim.secrets_updated",
            serde_json::json!({"fields": names}),
        )
        .await?;
        let event = Event::allowed(Action::WriteSecrets, &sim, decision).with_fields(&fields);
        self.audit_in(&mut tx, principal, event).await?;
        sim.updated_at = self.clock.now().max(sim.updated_at);
        repo::update(&mut tx, &*self.row_key()?, &sim).await?;
        tx.commit().await?;
        tracing::info!(
            sim_id = %sim.id,
            fields = ?changes.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
            "secrets written" // audited: no value
        );
        Ok(sim)
    }

    /// Reveals `fields` of a SIM. Each field is decided on its own and the request is refused
    /// whole if any field is refused.
    pub async fn reveal_secrets(
        &self,
        principal: &Principal,
        key: &SimKey,
        fields: &[SecretField],
        reason: Option<&str>,
    ) -> ServiceResult<(Sim, Revealed)> {
        let (sim, stored) =
            repo::get_with_secrets(&self.db, &*self.row_key()?, principal.tenant.as_str(), key)
                .await?
                .ok_or(ServiceError::NotFound)?;
        let resource = super::sims::sim_resource(&sim);
        let mut policy_ids = Vec::new();
        for field in fields {
            let context = Context {
                reason_given: reason.is_some(),
                secret_field: Some(*field),
            };
            // Refused whole, and recorded with every field asked for.
            let target = Target {
                sim: Some(&sim),
                fields,
                reason,
            };
            let decision = self
                .authorize(principal, Action::ReadSecret, &resource, &context, target)
                .await?;
            policy_ids.extend(decision.policy_ids);
        }
        policy_ids.sort();
        policy_ids.dedup();
        let revealed = self.open_stored(&sim, stored, fields).await?;
        // Fail closed: no record, no secret.
        let event = Event {
            action: Action::ReadSecret,
            sim: Some(&sim),
            fields,
            outcome: "allowed",
            reason,
            policy_ids,
            remaining_attempts: None,
        };
        self.audit_alone(principal, event).await.map_err(|e| {
            tracing::error!(error = %e, "could not record a secret read: refused");
            ServiceError::Unavailable(format!("audit log: {e}"))
        })?;
        Ok((sim, revealed))
    }
}

impl Services {
    /// Decrypts `fields` from what [`repo::get_with_secrets`] returned (`None` for unset).
    pub(super) async fn open_stored(
        &self,
        sim: &Sim,
        stored: Option<(DekRow, Vec<keys::SecretRow>)>,
        fields: &[SecretField],
    ) -> ServiceResult<Revealed> {
        let mut revealed: Revealed = fields.iter().map(|f| (*f, None)).collect();
        let Some((dek_row, rows)) = stored else {
            return Ok(revealed);
        };
        let kek = self.kek(&sim.tenant_id, dek_row.kek_version).await?;
        let dek = open_dek(&kek, sim, &dek_row)?;
        for (field, slot) in &mut revealed {
            if let Some(row) = rows.iter().find(|r| r.field == field.as_str()) {
                vault::check_format(row.format)?;
                let text =
                    vault::open_field(&dek, &sim.tenant_id, &sim.id, *field, &row.ciphertext)?;
                *slot = Some(SecretValue::from_stored(text));
            }
        }
        Ok(revealed)
    }
}

/// Unwraps a SIM's DEK with the KEK version that wrapped it (checking the blob's format).
pub(super) fn open_dek(kek: &Key, sim: &Sim, row: &DekRow) -> ServiceResult<Key> {
    vault::check_format(row.format)?;
    Ok(vault::unwrap_dek(
        kek,
        &sim.tenant_id,
        &sim.id,
        row.kek_version,
        &row.wrapped_dek,
    )?)
}
