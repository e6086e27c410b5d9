//! Secret use cases: writing secret fields through the key hierarchy and revealing them to
//! the principals the policy allows, field by field.

use std::collections::HashSet;
use std::sync::Arc;

use super::audit::Event;
use super::{Core, ServiceError, ServiceResult, Target};
use crate::domain::audit::AuditOutcome;
use crate::domain::event::SimChange;
use crate::domain::keys::{KeyState, SealedSecret, TenantKey, WrappedDek};
use crate::domain::milenage::opc_value;
use crate::domain::secret_input::{OP_NEEDS_KI, given_ki};
use crate::domain::sim::SecretChanges;
use crate::domain::{
    Principal, SecretField, SecretValue, Sim, SimInput, TenantId, Timestamp, ValidationErrors,
};
use crate::policy::{Action, Context};
use crate::store::Tx;
use crate::store::keys::{self, NewSecret};
use crate::store::sims::{self as repo, SimKey};
use crate::vault::{self, Key, VaultError};

super::capability! {
    /// A SIM's secrets: written through the key hierarchy, revealed under audit.
    pub struct Secrets {
        core: super::Core,
    }
}

impl From<VaultError> for ServiceError {
    fn from(e: VaultError) -> Self {
        if e == VaultError::Unavailable {
            tracing::error!("the root key's module is unavailable: answered 503");
            return ServiceError::Unavailable(e.to_string());
        }
        // An integrity failure means tampering or a wrong key: loud in the log, opaque outside.
        tracing::error!(error = %crate::telemetry::Causes(&e), "vault operation failed");
        ServiceError::internal_because("a vault operation failed", e)
    }
}

/// What a caller asked to reveal and what it gets: each field's value, or `None` if unset.
pub type Revealed = Vec<(SecretField, Option<SecretValue>)>;

impl Core {
    /// A tenant KEK version, from the keyring's cache or the store.
    pub(super) async fn kek(&self, tenant: &TenantId, version: i64) -> ServiceResult<Arc<Key>> {
        if let Some(kek) = self.keyring.cached_kek(tenant, version) {
            return Ok(kek);
        }
        let row = keys::kek(&self.db, &*self.row_key()?, tenant, version).await?;
        self.open_kek_row(tenant, version, row)
    }

    /// Opens (and caches) a KEK version read from the store.
    fn open_kek_row(
        &self,
        tenant: &TenantId,
        version: i64,
        row: Option<TenantKey>,
    ) -> ServiceResult<Arc<Key>> {
        let row = row.ok_or_else(|| {
            ServiceError::internal(format!("tenant key version {version} is missing"))
        })?;
        Ok(self
            .keyring
            .open_kek(tenant, version, row.format, &row.wrapped_key)?)
    }

    /// The tenant's active KEK, creating version 1 on first use.
    pub(super) async fn active_kek(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
    ) -> ServiceResult<(i64, Arc<Key>)> {
        if let Some(row) = keys::active_kek(&mut *tx, &*self.row_key()?, tenant).await? {
            let kek = self
                .keyring
                .open_kek(tenant, row.version, row.format, &row.wrapped_key)?;
            return Ok((row.version, kek));
        }
        self.check_root(tx).await?;
        let (kek, wrapped) = self.keyring.new_kek(tenant, 1)?;
        let row = TenantKey {
            tenant_id: tenant.to_owned(),
            version: 1,
            format: self.keyring.format(),
            wrapped_key: wrapped,
            state: KeyState::Active,
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
            .ok_or_else(|| ServiceError::internal("tenant key vanished"))?;
        let kek = self
            .keyring
            .open_kek(tenant, row.version, row.format, &row.wrapped_key)?;
        Ok((row.version, kek))
    }

    /// [`Core::kek`] inside a transaction that holds locks.
    pub(super) async fn kek_in(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
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

    /// Encrypts and stores (or removes) secret fields inside `tx`, updating `sim`'s view of
    /// which fields are set and its retry counters. The caller writes `sim` back. A SIM
    /// without a DEK gets its envelope (see [`Envelopes`]).
    pub(super) async fn apply_secrets(
        &self,
        tx: &mut Tx,
        sim: &mut Sim,
        changes: &SecretChanges,
    ) -> ServiceResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        if let Some(row) = keys::dek(&mut *tx, &sim.id).await? {
            let kek = self.kek_in(tx, &sim.tenant_id, row.kek_version).await?;
            let dek = open_dek(&kek, sim, &row)?;
            for (field, value) in changes {
                if let Some(v) = value {
                    let blob = seal(&dek, sim, *field, v)?;
                    keys::put_secret(tx, &sim.id, field.as_str(), vault::FORMAT, &blob, now)
                        .await?;
                }
            }
        } else {
            let mut envelopes = self.envelopes(tx, &sim.tenant_id).await?;
            envelopes.seal(sim, changes)?;
            self.insert_envelopes(tx, &sim.tenant_id, envelopes, now)
                .await?;
        }
        for (field, value) in changes {
            if value.is_none() {
                keys::delete_secret(tx, &sim.id, field.as_str()).await?;
                sim.secret_fields.remove(field);
                sim.counters.removed(*field);
            }
        }
        Ok(())
    }

    /// Envelopes for new DEKs wrapped under `tenant`'s active KEK (created on first use).
    pub(super) async fn envelopes(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
    ) -> ServiceResult<Envelopes> {
        let (version, kek) = self.active_kek(tx, tenant).await?;
        Ok(Envelopes {
            version,
            kek,
            deks: Vec::new(),
            sealed: Vec::new(),
        })
    }

    /// Inserts the wrapped DEKs and sealed secrets of `envelopes`, counting the wraps under
    /// their KEK version.
    pub(super) async fn insert_envelopes(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        envelopes: Envelopes,
        now: Timestamp,
    ) -> ServiceResult<()> {
        keys::insert_deks(tx, tenant, &envelopes.deks, now).await?;
        keys::insert_secrets(tx, &envelopes.sealed, vault::FORMAT, now).await?;
        let wraps = i64::try_from(envelopes.deks.len()).unwrap_or(i64::MAX);
        keys::count_wraps(tx, tenant, envelopes.version, wraps).await?;
        Ok(())
    }
}

impl Secrets {
    /// `PUT /v1/sims/{sim}/secrets`: merge the given fields into the SIM's secrets.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "put_secrets"))]
    pub async fn put_secrets(
        &self,
        principal: &Principal,
        key: &SimKey,
        mut changes: SecretChanges,
        op: Option<SecretValue>,
    ) -> ServiceResult<Sim> {
        let (mut tx, mut sim, decision) = self
            .core
            .lock_sim(principal, key, Action::WriteSecrets)
            .await?;
        if let Some(op) = op {
            // OPc from OP and the Ki given with it, else the SIM's stored Ki; OP itself is
            // never stored.
            let ki = match given_ki(&changes) {
                Some(ki) => ki.clone(),
                None => self
                    .core
                    .open_secret_in(&mut tx, &sim, SecretField::Ki)
                    .await?
                    .ok_or_else(|| {
                        ValidationErrors::single_pointer(
                            "/op",
                            "this SIM has no Ki: give ki with op",
                        )
                    })?,
            };
            changes.push((SecretField::Opc, Some(opc_value(&ki, &op))));
        }
        if changes
            .iter()
            .any(|(f, _)| crate::domain::pin::blocked_for_good(&sim.counters, *f))
        {
            // A PUK-exhausted card stays dead: new PINs or PUKs would undo the block.
            return Err(ServiceError::Pin(crate::domain::pin::Verdict::PukBlocked));
        }
        self.core.apply_secrets(&mut tx, &mut sim, &changes).await?;
        let fields: Vec<SecretField> = changes.iter().map(|(f, _)| *f).collect();
        let change = SimChange::SecretsUpdated {
            fields: fields.clone(),
        };
        self.core.emit(&mut tx, &sim, change).await?;
        let event = Event::allowed(Action::WriteSecrets, &sim, decision).with_fields(&fields);
        self.core.audit_in(&mut tx, principal, event).await?;
        sim.updated_at = self.core.clock.now().max(sim.updated_at);
        repo::update(&mut tx, &*self.core.row_key()?, &sim).await?;
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
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "reveal_secrets"))]
    pub async fn reveal_secrets(
        &self,
        principal: &Principal,
        key: &SimKey,
        fields: &[SecretField],
        reason: Option<&str>,
    ) -> ServiceResult<(Sim, Revealed)> {
        let (sim, stored) = self.core.sim_with_secrets(principal, key).await?;
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
                .core
                .authorize(principal, Action::ReadSecret, &resource, &context, target)
                .await?;
            policy_ids.extend(decision.policy_ids);
        }
        let revealed = self.core.open_stored(&sim, stored, fields).await?;
        self.record_read(principal, &sim, fields, reason, policy_ids)
            .await?;
        Ok((sim, revealed))
    }

    /// Reads a SIM the caller may read (`ReadSim`, a refusal recorded as for any read) with
    /// those of `fields` the policy lets this caller read, each decided on its own. The others
    /// are left out, neither refused nor recorded: this serves answers that show "what you may
    /// see" (the API profiles), where the caller did not name the fields. The fields shown
    /// (permitted and set) are one audited secret read, failing closed; when none is permitted
    /// nothing is decrypted, and when none is shown no secret read is recorded. A reason given
    /// must be a valid one.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "reveal_permitted"))]
    pub async fn reveal_permitted(
        &self,
        principal: &Principal,
        key: &SimKey,
        fields: &[SecretField],
        reason: Option<&str>,
    ) -> ServiceResult<(Sim, Revealed)> {
        // A reason decides what support staff may see: an empty or unprintable one is none.
        if let Some(text) = reason {
            crate::domain::validation::reason(text)
                .map_err(|rule| ValidationErrors::single_parameter("reason", rule))?;
        }
        let (sim, stored) = self.core.sim_with_secrets(principal, key).await?;
        let resource = super::sims::sim_resource(&sim);
        self.core
            .authorize(
                principal,
                Action::ReadSim,
                &resource,
                &Context::default(),
                Target::sim(&sim),
            )
            .await?;
        let mut permitted: Vec<SecretField> = Vec::new();
        let mut policy_ids = Vec::new();
        for field in fields {
            if permitted.contains(field) {
                continue;
            }
            let context = Context {
                reason_given: reason.is_some(),
                secret_field: Some(*field),
            };
            if let Ok(decision) =
                self.core
                    .decide(principal, Action::ReadSecret, &resource, &context)?
            {
                permitted.push(*field);
                policy_ids.extend(decision.policy_ids);
            }
        }
        if permitted.is_empty() {
            return Ok((sim, Vec::new()));
        }
        // Only the fields that hold a value are shown, and so recorded.
        let mut revealed = self.core.open_stored(&sim, stored, &permitted).await?;
        revealed.retain(|(_, value)| value.is_some());
        if revealed.is_empty() {
            return Ok((sim, revealed));
        }
        let shown: Vec<SecretField> = revealed.iter().map(|(f, _)| *f).collect();
        self.record_read(principal, &sim, &shown, reason, policy_ids)
            .await?;
        Ok((sim, revealed))
    }

    /// Records an allowed secret read of `fields`. Fail closed: no record, no secret.
    async fn record_read(
        &self,
        principal: &Principal,
        sim: &Sim,
        fields: &[SecretField],
        reason: Option<&str>,
        mut policy_ids: Vec<String>,
    ) -> ServiceResult<()> {
        policy_ids.sort();
        policy_ids.dedup();
        let event = Event {
            action: Action::ReadSecret,
            sim: Some(sim),
            fields,
            outcome: AuditOutcome::Allowed,
            reason,
            policy_ids,
            remaining_attempts: None,
        };
        self.core.audit_alone(principal, event).await.map_err(|e| {
            tracing::error!(error = %crate::telemetry::Causes(&e), "could not record a secret read: refused");
            ServiceError::Unavailable(format!("audit log: {e}"))
        })
    }
}

impl Core {
    /// Decrypts `fields` from what [`repo::get_with_secrets`] returned (`None` for unset).
    pub(super) async fn open_stored(
        &self,
        sim: &Sim,
        stored: Option<(WrappedDek, Vec<SealedSecret>)>,
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

/// New SIMs' data keys, each wrapped under the tenant's active KEK, and their secrets sealed
/// under them: the one envelope write, for a SIM created alone, a batch imported, and a SIM's
/// first secrets. [`Core::insert_envelopes`] stores them.
pub(super) struct Envelopes {
    version: i64,
    kek: Arc<Key>,
    deks: Vec<(String, WrappedDek)>,
    sealed: Vec<NewSecret>,
}

impl Envelopes {
    /// A new DEK for `sim`, and the values of `changes` sealed under it (marked set on `sim`).
    pub(super) fn seal(&mut self, sim: &mut Sim, changes: &SecretChanges) -> ServiceResult<()> {
        let dek = vault::new_key()?;
        let wrapped_dek = vault::wrap_dek(&self.kek, &sim.tenant_id, &sim.id, self.version, &dek)?;
        let sim_id = sim.id.to_string();
        for (field, value) in changes {
            if let Some(v) = value {
                self.sealed.push(NewSecret {
                    sim_id: sim_id.clone(),
                    field: field.as_str(),
                    ciphertext: seal(&dek, sim, *field, v)?,
                });
            }
        }
        let row = WrappedDek {
            kek_version: self.version,
            format: vault::FORMAT,
            wrapped_dek,
        };
        self.deks.push((sim_id, row));
        Ok(())
    }

    /// Keeps the envelopes of the SIMs in `ids` only (those that were inserted).
    pub(super) fn retain(&mut self, ids: &HashSet<String>) {
        self.deks.retain(|(id, _)| ids.contains(id));
        self.sealed.retain(|s| ids.contains(&s.sim_id));
    }
}

/// Seals one secret value of `sim` under its DEK, marking the field set.
fn seal(
    dek: &Key,
    sim: &mut Sim,
    field: SecretField,
    value: &SecretValue,
) -> ServiceResult<Vec<u8>> {
    let blob = vault::seal_field(dek, &sim.tenant_id, &sim.id, field, value.expose())?;
    sim.secret_fields.insert(field);
    sim.counters.provisioned(field);
    Ok(blob)
}

/// OP given instead of OPc (with the Ki, as the input's rules require): OPc derived from
/// both and added to the secrets to store; OP itself is dropped, never stored nor staged.
pub(super) fn opc_from_op(input: &mut SimInput) -> Result<(), ValidationErrors> {
    let Some(op) = input.op.take() else {
        return Ok(());
    };
    let Some(ki) = given_ki(&input.secrets) else {
        return Err(ValidationErrors::single_pointer("/secrets/op", OP_NEEDS_KI));
    };
    let opc = opc_value(ki, &op);
    input.secrets.push((SecretField::Opc, Some(opc)));
    Ok(())
}

/// Unwraps a SIM's DEK with the KEK version that wrapped it (checking the blob's format).
pub(super) fn open_dek(kek: &Key, sim: &Sim, row: &WrappedDek) -> ServiceResult<Key> {
    vault::check_format(row.format)?;
    Ok(vault::unwrap_dek(
        kek,
        &sim.tenant_id,
        &sim.id,
        row.kek_version,
        &row.wrapped_dek,
    )?)
}
