//! The authorization choke point: may this principal do this action on this resource in this
//! context. Every service function asks before it reads or changes anything.
//!
//! Default deny: an action is allowed only by a rule naming it, and a rule that does not
//! match allows nothing. Tenants are never crossed: a resource of another tenant is reported as
//! [`Denial::CrossTenant`], which callers answer exactly like a missing resource.
//!
//! The rules are Cedar policies (`policies/default.cedar`, validated against
//! `policies/simvault.cedarschema`), built in and replaceable by a deployment's own directory.
//! Cedar skips a policy whose evaluation errors, which could let a request through that a
//! failing `forbid` should stop: entities and requests are built against the schema, any
//! evaluation error is a denial, and the tenant check is also made here in Rust.

mod cedar;

pub use cedar::{Policy, PolicyHandle};

/// Recorded as the deciding policy when the Rust tenant check refuses (the Cedar
/// `tenant-isolation` forbid says the same).
pub const TENANT_ISOLATION: &str = "tenant-isolation";
/// Recorded as the deciding policy when evaluation failed (and so denied).
pub const EVALUATION_ERROR: &str = "evaluation-error";

use crate::domain::{SimState, TenantId};

/// Everything a caller can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateSim,
    ReadSim,
    ListSims,
    /// Export every matching SIM at once (a file that leaves the service).
    ExportSims,
    UpdateSim,
    DeleteSim,
    CreatePlan,
    ReadPlan,
    ReadMetrics,
    /// Set, replace or remove secret fields (on creation too).
    WriteSecrets,
    /// Reveal one secret field; decided per field (`Context::secret_field`).
    ReadSecret,
    /// Start a tenant key rotation.
    RotateKeys,
    /// See key versions and rotation progress.
    ReadKeys,
    /// See a background task's progress.
    ReadTask,
    /// Read and verify the audit log.
    ReadAudit,
    /// Set a new PIN by presenting the current one.
    ResetPin,
    /// Set a new PIN by presenting the PUK (a reason is required).
    UnblockPin,
    /// Move a SIM along its lifecycle.
    ChangeState,
    /// The eSIM installation view (activation code, QR code, links): a secret read.
    ReadEsim,
    /// Pull a SIM's state from the carrier's system.
    RefreshSim,
    /// Compute authentication vectors from the SIM's Ki and OPc (the HSS/UDM).
    AuthVectors,
    /// Queue a batch of SIMs (with secrets) for creation.
    ImportSims,
    /// Bind SIMs to named links (and plans) in bulk.
    ProvisionLinks,
    /// See links.
    ReadLinks,
    /// Create, list and delete webhooks and see their deliveries.
    ManageWebhooks,
    /// Create a SIM group.
    CreateGroup,
    /// See SIM groups.
    ReadGroup,
    /// Change a SIM group's fields.
    UpdateGroup,
    /// Delete an empty SIM group.
    DeleteGroup,
    /// Create a device.
    CreateDevice,
    /// See devices.
    ReadDevice,
    /// Change a device's fields.
    UpdateDevice,
    /// Delete a device no SIM is bound to.
    DeleteDevice,
    /// Queue one lifecycle state change over many SIMs.
    BulkChangeState,
    /// Queue one change of descriptive fields over many SIMs.
    BulkUpdateSims,
    /// List the tenant's background tasks.
    ListTasks,
    /// Cancel a background task's pending items.
    CancelTask,
}

impl Action {
    pub const ALL: [Action; 37] = [
        Action::CreateSim,
        Action::ReadSim,
        Action::ListSims,
        Action::ExportSims,
        Action::UpdateSim,
        Action::DeleteSim,
        Action::CreatePlan,
        Action::ReadPlan,
        Action::ReadMetrics,
        Action::WriteSecrets,
        Action::ReadSecret,
        Action::RotateKeys,
        Action::ReadKeys,
        Action::ReadTask,
        Action::ReadAudit,
        Action::ResetPin,
        Action::UnblockPin,
        Action::ChangeState,
        Action::ReadEsim,
        Action::RefreshSim,
        Action::AuthVectors,
        Action::ImportSims,
        Action::ProvisionLinks,
        Action::ReadLinks,
        Action::ManageWebhooks,
        Action::CreateGroup,
        Action::ReadGroup,
        Action::UpdateGroup,
        Action::DeleteGroup,
        Action::CreateDevice,
        Action::ReadDevice,
        Action::UpdateDevice,
        Action::DeleteDevice,
        Action::BulkChangeState,
        Action::BulkUpdateSims,
        Action::ListTasks,
        Action::CancelTask,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateSim => "sim.create",
            Action::ReadSim => "sim.read",
            Action::ListSims => "sim.list",
            Action::ExportSims => "sim.export",
            Action::UpdateSim => "sim.update",
            Action::DeleteSim => "sim.delete",
            Action::CreatePlan => "plan.create",
            Action::ReadPlan => "plan.read",
            Action::ReadMetrics => "metrics.read",
            Action::WriteSecrets => "secrets.write",
            Action::ReadSecret => "secrets.read",
            Action::RotateKeys => "keys.rotate",
            Action::ReadKeys => "keys.read",
            Action::ReadTask => "task.read",
            Action::ReadAudit => "audit.read",
            Action::ResetPin => "pin.reset",
            Action::UnblockPin => "pin.unblock",
            Action::ChangeState => "sim.state",
            Action::ReadEsim => "esim.read",
            Action::RefreshSim => "sim.refresh",
            Action::AuthVectors => "auth.vectors",
            Action::ImportSims => "sim.import",
            Action::ProvisionLinks => "link.provision",
            Action::ReadLinks => "link.read",
            Action::ManageWebhooks => "webhook.manage",
            Action::CreateGroup => "group.create",
            Action::ReadGroup => "group.read",
            Action::UpdateGroup => "group.update",
            Action::DeleteGroup => "group.delete",
            Action::CreateDevice => "device.create",
            Action::ReadDevice => "device.read",
            Action::UpdateDevice => "device.update",
            Action::DeleteDevice => "device.delete",
            Action::BulkChangeState => "sim.bulk_state",
            Action::BulkUpdateSims => "sim.bulk_update",
            Action::ListTasks => "task.list",
            Action::CancelTask => "task.cancel",
        }
    }
}

/// What the action is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The tenant owning the resource (for a collection: the tenant being listed or created in).
    pub tenant_id: &'a TenantId,
    pub sim_state: Option<SimState>,
}

impl<'a> Resource<'a> {
    pub(crate) fn kind(&self) -> &'static str {
        if self.sim_state.is_some() {
            "sim"
        } else {
            "collection"
        }
    }

    pub fn of_tenant(tenant_id: &'a TenantId) -> Self {
        Self {
            tenant_id,
            sim_state: None,
        }
    }
}

/// Facts about the request that rules may depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Whether the caller gave a reason (ticket) for the request.
    pub reason_given: bool,
    /// The secret field a `ReadSecret` decision is about.
    pub secret_field: Option<crate::domain::SecretField>,
}

/// An allow, with the `@id`s of the policies that allowed it (recorded in the audit trail).
/// The default (no ids) is for work done on behalf of an earlier decision (bulk task items).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub policy_ids: Vec<String>,
}

/// A denial with the policies that determined it (for the audit record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub denial: Denial,
    pub policy_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The resource belongs to another tenant: answer as if it did not exist.
    #[error("resource is outside the caller's tenant")]
    CrossTenant,
    /// No rule allows this.
    #[error("not allowed by policy")]
    Forbidden,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AuthMethod, Principal, Role, SecretField, TenantId};

    /// One policy set for all tests, so that its decision cache is exercised too.
    fn policy() -> &'static Policy {
        static POLICY: std::sync::LazyLock<Policy> =
            std::sync::LazyLock::new(|| Policy::builtin().unwrap());
        &POLICY
    }

    fn principal(roles: &[Role], method: AuthMethod) -> Principal {
        Principal {
            tenant: TenantId::parse("acme").unwrap(),
            roles: roles.iter().copied().collect(),
            subject: "someone".into(),
            auth_method: method,
            credential_id: None,
            origin: Default::default(),
        }
    }

    fn allowed(roles: &[Role], action: Action) -> bool {
        Policy::builtin()
            .unwrap()
            .authorize(
                &principal(roles, AuthMethod::Jwt),
                action,
                &Resource::of_tenant(&TenantId::parse("acme").unwrap()),
                &Context::default(),
            )
            .is_ok()
    }

    #[test]
    fn role_table_matches_the_contract() {
        use Action::*;
        use Role::*;
        let table: &[(Action, &[Role])] = &[
            (CreateSim, &[Provisioner]),
            (ReadSim, &[Provisioner, Support, Operator, Admin]),
            (ListSims, &[Provisioner, Support, Operator, Admin]),
            (ExportSims, &[Operator, Admin]),
            (ReadPlan, &[Provisioner, Support, Operator, Admin]),
            (UpdateSim, &[Operator, Admin]),
            (CreatePlan, &[Operator, Admin]),
            (DeleteSim, &[Admin]),
            (ReadMetrics, &[Metrics, Admin]),
            (WriteSecrets, &[Provisioner]),
            (RotateKeys, &[Admin]),
            (ReadKeys, &[Admin]),
            (ReadTask, &[Provisioner, Support, Operator, Admin]),
            (ReadAudit, &[Auditor]),
            (ResetPin, &[Support]),
            (ChangeState, &[Operator, Admin]),
            (RefreshSim, &[Operator, Admin]),
            (ReadEsim, &[Provisioner, Support, Operator]),
            (ImportSims, &[Provisioner]),
            (ProvisionLinks, &[Operator, Admin]),
            (ReadLinks, &[Provisioner, Support, Operator, Admin]),
            (ManageWebhooks, &[Admin]),
            (CreateGroup, &[Operator, Admin]),
            (ReadGroup, &[Provisioner, Support, Operator, Admin]),
            (UpdateGroup, &[Operator, Admin]),
            (DeleteGroup, &[Operator, Admin]),
            (CreateDevice, &[Operator, Admin]),
            (ReadDevice, &[Provisioner, Support, Operator, Admin]),
            (UpdateDevice, &[Operator, Admin]),
            (DeleteDevice, &[Operator, Admin]),
            (BulkChangeState, &[Operator, Admin]),
            (BulkUpdateSims, &[Operator, Admin]),
            (ListTasks, &[Provisioner, Support, Operator, Admin]),
            (CancelTask, &[Operator, Admin]),
        ];
        for (action, who) in table {
            for role in Role::ALL {
                assert_eq!(
                    allowed(&[role], *action),
                    who.contains(&role),
                    "{role} {}",
                    action.as_str()
                );
            }
        }
        assert_eq!(
            table.len() + 3,
            Action::ALL.len(),
            "ReadSecret, UnblockPin and AuthVectors are tested with their context below"
        );
    }

    fn may_read(roles: &[Role], method: AuthMethod, field: SecretField, reason: bool) -> bool {
        Policy::builtin()
            .unwrap()
            .authorize(
                &principal(roles, method),
                Action::ReadSecret,
                &Resource::of_tenant(&TenantId::parse("acme").unwrap()),
                &Context {
                    reason_given: reason,
                    secret_field: Some(field),
                },
            )
            .is_ok()
    }

    #[test]
    fn secret_reads_by_role_method_field_and_reason() {
        use AuthMethod::*;
        use SecretField::*;
        // Twice: the second pass answers from the decision cache and must agree.
        // A console session reads no secret a bearer token could not: Ki, OPc and PINs stay
        // behind mutual TLS.
        for role in Role::ALL.into_iter().chain(Role::ALL) {
            for method in [Mtls, Jwt, Console] {
                for reason in [false, true] {
                    for field in SecretField::ALL {
                        let expected = match (role, field) {
                            (Role::Provisioner, Ki | Opc | Pin1 | Pin2 | Puk1 | Puk2) => {
                                method == Mtls
                            }
                            (Role::Provisioner, ActivationCode) => true,
                            (Role::Support, Puk1 | Puk2) => reason,
                            _ => false,
                        };
                        assert_eq!(
                            may_read(&[role], method, field, reason),
                            expected,
                            "{role} {method:?} {} reason={reason}",
                            field.as_str()
                        );
                    }
                }
            }
        }
        // A decision about no field in particular allows nothing.
        assert!(
            Policy::builtin()
                .unwrap()
                .authorize(
                    &principal(&Role::ALL, Mtls),
                    Action::ReadSecret,
                    &Resource::of_tenant(&TenantId::parse("acme").unwrap()),
                    &Context {
                        reason_given: true,
                        secret_field: None
                    },
                )
                .is_err()
        );
    }

    #[test]
    fn unblocking_needs_support_and_a_reason() {
        for role in Role::ALL {
            for method in [AuthMethod::Mtls, AuthMethod::Jwt] {
                for reason in [false, true] {
                    let allowed = Policy::builtin()
                        .unwrap()
                        .authorize(
                            &principal(&[role], method),
                            Action::UnblockPin,
                            &Resource::of_tenant(&TenantId::parse("acme").unwrap()),
                            &Context {
                                reason_given: reason,
                                secret_field: None,
                            },
                        )
                        .is_ok();
                    assert_eq!(
                        allowed,
                        role == Role::Support && reason,
                        "{role} {method:?} {reason}"
                    );
                }
            }
        }
    }

    #[test]
    fn authentication_vectors_only_to_the_auc_over_mtls() {
        for role in Role::ALL {
            for method in [AuthMethod::Mtls, AuthMethod::Jwt] {
                let allowed = Policy::builtin()
                    .unwrap()
                    .authorize(
                        &principal(&[role], method),
                        Action::AuthVectors,
                        &Resource::of_tenant(&TenantId::parse("acme").unwrap()),
                        &Context::default(),
                    )
                    .is_ok();
                assert_eq!(
                    allowed,
                    role == Role::Auc && method == AuthMethod::Mtls,
                    "{role} {method:?}"
                );
            }
        }
    }

    #[test]
    fn no_roles_no_access() {
        for action in Action::ALL {
            assert!(!allowed(&[], action));
        }
    }

    #[test]
    fn another_tenant_is_never_allowed_whatever_the_roles() {
        let admin = principal(&Role::ALL, AuthMethod::Mtls);
        for action in Action::ALL {
            let d = policy().authorize(
                &admin,
                action,
                &Resource::of_tenant(&TenantId::parse("other").unwrap()),
                &Context::default(),
            );
            assert_eq!(d, Err(Denial::CrossTenant));
        }
    }

    #[test]
    fn decisions_name_the_rules_that_allowed_them() {
        let d = Policy::builtin()
            .unwrap()
            .authorize(
                &principal(&[Role::Admin], AuthMethod::Jwt),
                Action::DeleteSim,
                &Resource::of_tenant(&TenantId::parse("acme").unwrap()),
                &Context::default(),
            )
            .unwrap();
        assert_eq!(d.policy_ids, vec!["sims-delete-admin".to_owned()]);
    }
}
