//! SIM groups and devices: creating, reading, changing and deleting them (each change audited
//! with it), and the one check of what a SIM names — its group and device must be its
//! tenant's, whichever door the SIM comes through (create, PATCH, bulk and file import).

use std::collections::HashMap;

use super::audit::Event;
use super::conditions::Cause;
use super::{Page, ServiceError, ServiceResult, conflict};
use crate::domain::audit::AuditOutcome;
use crate::domain::group::{DeviceChanges, GroupChanges};
use crate::domain::usage::DataAmount;
use crate::domain::{
    Device, DeviceId, Group, GroupId, Imei, Principal, TenantId, ValidationErrors,
};
use crate::policy::{Action, Decision};
use crate::store::groups as repo;
use crate::store::{StoreError, Tx};

super::capability! {
    /// SIM groups and devices.
    pub struct Groups {
        core: super::Core,
    }
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
    pub data_limit: Option<DataAmount>,
    pub imei_lock: bool,
}

/// A device to create.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub name: String,
    pub imei: Option<Imei>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

const GROUP_NAME_TAKEN: &str = "a group with this name already exists";
const DEVICE_NAME_TAKEN: &str = "a device with this name already exists";

impl Groups {
    /// Records `action` on the resource `what` ("group <id>", "device <id>"): the record names
    /// the id, never the tenant's own text.
    async fn record(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        action: Action,
        what: &str,
        decision: Decision,
    ) -> ServiceResult<()> {
        let event = Event::tenant_wide(
            action,
            AuditOutcome::Allowed,
            Some(what),
            decision.policy_ids,
        );
        self.core.audit_in(tx, principal, event).await
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "create_group"))]
    pub async fn create_group(&self, principal: &Principal, new: NewGroup) -> ServiceResult<Group> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::CreateGroup)
            .await?;
        let now = self.core.clock.now();
        let group = Group {
            id: GroupId::new(),
            tenant_id: principal.tenant.clone(),
            name: new.name,
            description: new.description,
            data_limit: new.data_limit,
            imei_lock: new.imei_lock,
            sim_count: 0,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.core.db.begin().await?;
        repo::insert_group(&mut tx, &group)
            .await
            .map_err(conflict(GROUP_NAME_TAKEN))?;
        let what = format!("group {}", group.id);
        self.record(&mut tx, principal, Action::CreateGroup, &what, decision)
            .await?;
        tx.commit().await?;
        Ok(group)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "get_group"))]
    pub async fn get_group(&self, principal: &Principal, id: GroupId) -> ServiceResult<Group> {
        self.core
            .authorize_in_tenant(principal, Action::ReadGroup)
            .await?;
        repo::get_group(&self.core.db, &principal.tenant, &id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// The tenant's groups that these stored SIM `group_id`s name (for embedding in SIMs),
    /// by that text. Each must be the id of one of the tenant's groups: one that does not
    /// parse, or names no group of the tenant, is a corrupt SIM row (the foreign key and the
    /// checks before every write keep it from happening), never a SIM shown in no group.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "groups_of"))]
    pub async fn groups_of(
        &self,
        principal: &Principal,
        ids: &[&str],
    ) -> ServiceResult<HashMap<String, Group>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadGroup)
            .await?;
        let corrupt = || ServiceError::from(StoreError::Corrupt("sims.group_id".into()));
        let mut out = HashMap::new();
        for raw in ids {
            if out.contains_key(*raw) {
                continue;
            }
            let id = GroupId::parse(raw).map_err(|_| corrupt())?;
            let group = repo::get_group(&self.core.db, &principal.tenant, &id)
                .await?
                .ok_or_else(corrupt)?;
            out.insert((*raw).to_owned(), group);
        }
        Ok(out)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_groups"))]
    pub async fn list_groups(
        &self,
        principal: &Principal,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Group>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadGroup)
            .await?;
        let offset = u64::from(page.saturating_sub(1)) * u64::from(page_size);
        let (items, total) =
            repo::list_groups(&self.core.db, &principal.tenant, page_size, offset).await?;
        Ok(Page {
            items,
            total,
            page,
            page_size,
        })
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "update_group"))]
    pub async fn update_group(
        &self,
        principal: &Principal,
        id: GroupId,
        changes: GroupChanges,
    ) -> ServiceResult<Group> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::UpdateGroup)
            .await?;
        let mut tx = self.core.db.begin().await?;
        if !repo::hold(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::NotFound);
        }
        let mut group = repo::get_group(&mut tx, &principal.tenant, &id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        // The record names the fields changed, never their values.
        let fields = changes.fields().join(", ");
        let rules = (group.data_limit, group.imei_lock);
        changes.apply(&mut group);
        group.updated_at = self.core.clock.now().max(group.updated_at);
        repo::update_group(&mut tx, &group)
            .await
            .map_err(conflict(GROUP_NAME_TAKEN))?;
        let what = format!("group {}: {fields}", group.id);
        if rules != (group.data_limit, group.imei_lock) {
            let cause = Cause {
                principal,
                action: Action::UpdateGroup,
                policy_ids: &decision.policy_ids,
            };
            self.core
                .judge_members(&mut tx, cause, &principal.tenant, &group.id)
                .await?;
        }
        // Recorded after its members are written: see `Core::record_all_entered`.
        self.record(&mut tx, principal, Action::UpdateGroup, &what, decision)
            .await?;
        tx.commit().await?;
        Ok(group)
    }

    /// Deletes a group no live SIM is in; one with SIMs is a conflict.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "delete_group"))]
    pub async fn delete_group(&self, principal: &Principal, id: GroupId) -> ServiceResult<()> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::DeleteGroup)
            .await?;
        let mut tx = self.core.db.begin().await?;
        // Locked first: a SIM joining now (holding the group FOR KEY SHARE) commits before the
        // count below, or waits and then finds no group.
        if !repo::lock(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::NotFound);
        }
        if !repo::delete_group(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::Conflict(
                "the group still has SIMs: move them to another group or none first".into(),
            ));
        }
        let what = format!("group {id}");
        self.record(&mut tx, principal, Action::DeleteGroup, &what, decision)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "create_device"))]
    pub async fn create_device(
        &self,
        principal: &Principal,
        new: NewDevice,
    ) -> ServiceResult<Device> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::CreateDevice)
            .await?;
        let now = self.core.clock.now();
        let device = Device {
            id: DeviceId::new(),
            tenant_id: principal.tenant.clone(),
            name: new.name,
            imei: new.imei,
            metadata: new.metadata,
            sim_ids: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.core.db.begin().await?;
        repo::insert_device(&mut tx, &device)
            .await
            .map_err(conflict(DEVICE_NAME_TAKEN))?;
        let what = format!("device {}", device.id);
        self.record(&mut tx, principal, Action::CreateDevice, &what, decision)
            .await?;
        tx.commit().await?;
        Ok(device)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "get_device"))]
    pub async fn get_device(&self, principal: &Principal, id: DeviceId) -> ServiceResult<Device> {
        self.core
            .authorize_in_tenant(principal, Action::ReadDevice)
            .await?;
        repo::get_device(&self.core.db, &principal.tenant, &id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_devices"))]
    pub async fn list_devices(
        &self,
        principal: &Principal,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Device>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadDevice)
            .await?;
        let offset = u64::from(page.saturating_sub(1)) * u64::from(page_size);
        let (items, total) =
            repo::list_devices(&self.core.db, &principal.tenant, page_size, offset).await?;
        Ok(Page {
            items,
            total,
            page,
            page_size,
        })
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "update_device"))]
    pub async fn update_device(
        &self,
        principal: &Principal,
        id: DeviceId,
        changes: DeviceChanges,
    ) -> ServiceResult<Device> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::UpdateDevice)
            .await?;
        let mut tx = self.core.db.begin().await?;
        if !repo::hold(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::NotFound);
        }
        let mut device = repo::get_device(&mut tx, &principal.tenant, &id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        // The record names the fields changed, never their values.
        let fields = changes.fields().join(", ");
        let imei = device.imei.clone();
        changes.apply(&mut device);
        device.updated_at = self.core.clock.now().max(device.updated_at);
        repo::update_device(&mut tx, &device)
            .await
            .map_err(conflict(DEVICE_NAME_TAKEN))?;
        let what = format!("device {}: {fields}", device.id);
        if imei != device.imei {
            let cause = Cause {
                principal,
                action: Action::UpdateDevice,
                policy_ids: &decision.policy_ids,
            };
            self.core
                .judge_members(&mut tx, cause, &principal.tenant, &device.id)
                .await?;
        }
        // Recorded after its SIMs are written: see `Core::record_all_entered`.
        self.record(&mut tx, principal, Action::UpdateDevice, &what, decision)
            .await?;
        tx.commit().await?;
        Ok(device)
    }

    /// Deletes a device no live SIM is bound to; one with SIMs is a conflict.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "delete_device"))]
    pub async fn delete_device(&self, principal: &Principal, id: DeviceId) -> ServiceResult<()> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::DeleteDevice)
            .await?;
        let mut tx = self.core.db.begin().await?;
        if !repo::lock(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::NotFound);
        }
        if !repo::delete_device(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::Conflict(
                "SIMs are still bound to the device: unbind them first".into(),
            ));
        }
        let what = format!("device {id}");
        self.record(&mut tx, principal, Action::DeleteDevice, &what, decision)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The group and device SIMs name, checked against the tenant's inside the transaction that
/// writes the SIM, each held (PostgreSQL `FOR KEY SHARE`) until it commits so that a concurrent
/// delete cannot leave the SIM naming nothing. Another tenant's group or device is reported
/// exactly as one that does not exist. Answers are remembered for the transaction (a batch
/// names the same group many times).
#[derive(Debug, Default)]
pub(crate) struct References {
    groups: Known<GroupId>,
    devices: Known<DeviceId>,
}

/// What the references to one kind of member (groups, or devices) were found to name in this
/// transaction: by id whether it is the tenant's, by name (labels of old imports) its id.
#[derive(Debug)]
struct Known<I> {
    ids: HashMap<String, bool>,
    names: HashMap<String, Option<I>>,
}

impl<I> Default for Known<I> {
    fn default() -> Self {
        Known {
            ids: HashMap::new(),
            names: HashMap::new(),
        }
    }
}

impl<I: repo::Member + Copy> Known<I> {
    /// Whether `raw` is the id of one of the tenant's, holding it until `tx` ends.
    async fn exists(&mut self, tx: &mut Tx, tenant: &TenantId, raw: &str) -> ServiceResult<bool> {
        if let Some(known) = self.ids.get(raw) {
            return Ok(*known);
        }
        let known = match raw.parse::<I>() {
            Ok(id) => repo::share(tx, tenant, &id).await?,
            Err(_) => false,
        };
        self.ids.insert(raw.to_owned(), known);
        Ok(known)
    }

    /// `raw` made canonical if it is an id, else the id of the tenant's member of that name,
    /// if there is one (left as it is otherwise, for [`Known::exists`] to refuse).
    async fn resolve(
        &mut self,
        tx: &mut Tx,
        tenant: &TenantId,
        raw: &mut String,
    ) -> ServiceResult<()> {
        if let Ok(id) = raw.parse::<I>() {
            *raw = id.to_string();
            return Ok(());
        }
        let named = match self.names.get(raw.as_str()) {
            Some(named) => *named,
            None => {
                let named = repo::share_named::<I>(tx, tenant, raw).await?;
                self.names.insert(raw.clone(), named);
                named
            }
        };
        if let Some(id) = named {
            *raw = id.to_string();
        }
        Ok(())
    }
}

pub(crate) const NO_GROUP: &str = "no group with this id";
pub(crate) const NO_DEVICE: &str = "no device with this id";

impl References {
    /// The problems of a SIM naming `group_id` and `device_id` (each optional), with pointers
    /// `/group_id` and `/device_id`; empty when both are the tenant's.
    pub(crate) async fn problems(
        &mut self,
        tx: &mut Tx,
        tenant: &TenantId,
        group_id: Option<&str>,
        device_id: Option<&str>,
    ) -> ServiceResult<ValidationErrors> {
        let mut errs = ValidationErrors::new();
        if let Some(g) = group_id
            && !self.groups.exists(tx, tenant, g).await?
        {
            errs.pointer("/group_id", NO_GROUP);
        }
        if let Some(d) = device_id
            && !self.devices.exists(tx, tenant, d).await?
        {
            errs.pointer("/device_id", NO_DEVICE);
        }
        Ok(errs)
    }

    /// What an import item staged before groups and devices were resources names: its
    /// free-text label (not a UUID) names the group or device migration 0013 made of that name
    /// in the tenant; an id is made canonical. Changes `group_id` and `device_id` in place; a
    /// label of no group or device is left for [`References::problems`] to report.
    pub(crate) async fn resolve_labels(
        &mut self,
        tx: &mut Tx,
        tenant: &TenantId,
        group_id: &mut Option<String>,
        device_id: &mut Option<String>,
    ) -> ServiceResult<()> {
        if let Some(g) = group_id.as_mut() {
            self.groups.resolve(tx, tenant, g).await?;
        }
        if let Some(d) = device_id.as_mut() {
            self.devices.resolve(tx, tenant, d).await?;
        }
        Ok(())
    }

    /// [`References::problems`] of one SIM as a validation error.
    pub(crate) async fn check(
        tx: &mut Tx,
        tenant: &TenantId,
        group_id: Option<&str>,
        device_id: Option<&str>,
    ) -> ServiceResult<()> {
        let errs = References::default()
            .problems(tx, tenant, group_id, device_id)
            .await?;
        errs.finish(()).map_err(ServiceError::from)
    }
}
