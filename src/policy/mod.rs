//! The authorization choke point: may this principal do this action on this resource in this
//! context. Every service function asks before it reads or changes anything.
//!
//! Default deny: an action is allowed only by a rule naming it, and a rule that does not
//! match allows nothing. Tenants are never crossed: a resource of another tenant is reported as
//! [`Denial::CrossTenant`], which callers answer exactly like a missing resource.
//!
//! The rules below encode the role table of the API contract. The policy issue moves them into
//! Cedar files under `policies/` behind this same [`Policy::authorize`] call.

use crate::domain::{AuthMethod, Principal, Role, SecretField, SimState};

/// Everything a caller can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateSim,
    ReadSim,
    ListSims,
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
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::CreateSim,
        Action::ReadSim,
        Action::ListSims,
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
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateSim => "sim.create",
            Action::ReadSim => "sim.read",
            Action::ListSims => "sim.list",
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
        }
    }
}

/// What the action is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The tenant owning the resource (for a collection: the tenant being listed or created in).
    pub tenant_id: &'a str,
    pub sim_state: Option<SimState>,
}

impl<'a> Resource<'a> {
    pub fn of_tenant(tenant_id: &'a str) -> Self {
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
    pub secret_field: Option<SecretField>,
}

/// An allow, with the ids of the rules that allowed it (recorded in the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub policy_ids: Vec<&'static str>,
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

struct Rule {
    id: &'static str,
    action: Action,
    roles: &'static [Role],
    /// When set, the rule only matches principals authenticated this way.
    auth_method: Option<AuthMethod>,
    /// When set, the rule only matches requests about one of these secret fields.
    fields: Option<&'static [SecretField]>,
    /// The rule only matches requests that give a reason.
    requires_reason: bool,
}

impl Rule {
    const fn new(id: &'static str, action: Action, roles: &'static [Role]) -> Self {
        Self {
            id,
            action,
            roles,
            auth_method: None,
            fields: None,
            requires_reason: false,
        }
    }

    const fn over(mut self, method: AuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    const fn fields(mut self, fields: &'static [SecretField]) -> Self {
        self.fields = Some(fields);
        self
    }

    const fn with_reason(mut self) -> Self {
        self.requires_reason = true;
        self
    }

    fn matches(&self, principal: &Principal, action: Action, context: &Context) -> bool {
        self.action == action
            && self.roles.iter().any(|role| principal.has_role(*role))
            && self.auth_method.is_none_or(|m| m == principal.auth_method)
            && self
                .fields
                .is_none_or(|fields| context.secret_field.is_some_and(|f| fields.contains(&f)))
            && (!self.requires_reason || context.reason_given)
    }
}

const READERS: &[Role] = &[
    Role::Provisioner,
    Role::Support,
    Role::Operator,
    Role::Admin,
];
const CHANGERS: &[Role] = &[Role::Operator, Role::Admin];

const CARD_KEYS: &[SecretField] = &[
    SecretField::Ki,
    SecretField::Opc,
    SecretField::Pin1,
    SecretField::Pin2,
];
const PUKS: &[SecretField] = &[SecretField::Puk1, SecretField::Puk2];

/// The default rule set (API contract, "Default roles").
const DEFAULT_RULES: &[Rule] = &[
    // Provisioning systems create SIMs and write their secrets.
    Rule::new(
        "sims-create-provisioner",
        Action::CreateSim,
        &[Role::Provisioner],
    ),
    Rule::new(
        "secrets-write-provisioner",
        Action::WriteSecrets,
        &[Role::Provisioner],
    ),
    // Everyone who works with SIMs may look them up; auditors see only the audit log.
    Rule::new("sims-read", Action::ReadSim, READERS),
    Rule::new("sims-list", Action::ListSims, READERS),
    Rule::new("plans-read", Action::ReadPlan, READERS),
    Rule::new("tasks-read", Action::ReadTask, READERS),
    // Operators run the inventory: descriptive fields, state, plans.
    Rule::new("sims-update-operator", Action::UpdateSim, CHANGERS),
    Rule::new("plans-create-operator", Action::CreatePlan, CHANGERS),
    // Deleting a SIM destroys its secrets for good: administrators only.
    Rule::new("sims-delete-admin", Action::DeleteSim, &[Role::Admin]),
    // Key rotation is an administrator's job.
    Rule::new("keys-rotate-admin", Action::RotateKeys, &[Role::Admin]),
    Rule::new("keys-read-admin", Action::ReadKeys, &[Role::Admin]),
    // Scraping metrics reveals volumes, not data: a dedicated role, or an administrator.
    Rule::new(
        "metrics-read",
        Action::ReadMetrics,
        &[Role::Metrics, Role::Admin],
    ),
    // Ki, OPc and the PINs go only to provisioning systems, and only over mutual TLS.
    Rule::new(
        "secrets-read-card-keys-provisioner-mtls",
        Action::ReadSecret,
        &[Role::Provisioner],
    )
    .fields(CARD_KEYS)
    .over(AuthMethod::Mtls),
    // PUKs: provisioning systems over mutual TLS, or support staff who say why (a ticket).
    Rule::new(
        "secrets-read-puk-provisioner-mtls",
        Action::ReadSecret,
        &[Role::Provisioner],
    )
    .fields(PUKS)
    .over(AuthMethod::Mtls),
    Rule::new(
        "secrets-read-puk-support-with-reason",
        Action::ReadSecret,
        &[Role::Support],
    )
    .fields(PUKS)
    .with_reason(),
    // The activation code downloads an eSIM profile: provisioning systems.
    Rule::new(
        "secrets-read-activation-code-provisioner",
        Action::ReadSecret,
        &[Role::Provisioner],
    )
    .fields(&[SecretField::ActivationCode]),
];

/// The loaded policy set.
#[derive(Clone)]
pub struct Policy {
    rules: &'static [Rule],
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rules: DEFAULT_RULES,
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Policy({} rules)", self.rules.len())
    }
}

impl Policy {
    /// Decides one request. Tenant isolation is checked first and cannot be overridden by any
    /// rule; then some rule must name the action, one of the principal's roles, and (if it
    /// requires one) the principal's authentication method.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
    ) -> Result<Decision, Denial> {
        if resource.tenant_id != principal.tenant.as_str() {
            return Err(Denial::CrossTenant);
        }
        let policy_ids: Vec<&'static str> = self
            .rules
            .iter()
            .filter(|r| r.matches(principal, action, context))
            .map(|r| r.id)
            .collect();
        if policy_ids.is_empty() {
            Err(Denial::Forbidden)
        } else {
            Ok(Decision { policy_ids })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn principal(roles: &[Role], method: AuthMethod) -> Principal {
        Principal {
            tenant: TenantId::parse("acme").unwrap(),
            roles: roles.iter().copied().collect(),
            subject: "someone".into(),
            auth_method: method,
            credential_id: None,
        }
    }

    fn allowed(roles: &[Role], action: Action) -> bool {
        Policy::default()
            .authorize(
                &principal(roles, AuthMethod::Jwt),
                action,
                &Resource::of_tenant("acme"),
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
            (ReadPlan, &[Provisioner, Support, Operator, Admin]),
            (UpdateSim, &[Operator, Admin]),
            (CreatePlan, &[Operator, Admin]),
            (DeleteSim, &[Admin]),
            (ReadMetrics, &[Metrics, Admin]),
            (WriteSecrets, &[Provisioner]),
            (RotateKeys, &[Admin]),
            (ReadKeys, &[Admin]),
            (ReadTask, &[Provisioner, Support, Operator, Admin]),
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
            table.len() + 1,
            Action::ALL.len(),
            "ReadSecret is tested per field below"
        );
    }

    fn may_read(roles: &[Role], method: AuthMethod, field: SecretField, reason: bool) -> bool {
        Policy::default()
            .authorize(
                &principal(roles, method),
                Action::ReadSecret,
                &Resource::of_tenant("acme"),
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
        for role in Role::ALL {
            for method in [Mtls, Jwt] {
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
            Policy::default()
                .authorize(
                    &principal(&Role::ALL, Mtls),
                    Action::ReadSecret,
                    &Resource::of_tenant("acme"),
                    &Context {
                        reason_given: true,
                        secret_field: None
                    },
                )
                .is_err()
        );
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
            let d = Policy::default().authorize(
                &admin,
                action,
                &Resource::of_tenant("other"),
                &Context::default(),
            );
            assert_eq!(d, Err(Denial::CrossTenant));
        }
    }

    #[test]
    fn decisions_name_the_rules_that_allowed_them() {
        let d = Policy::default()
            .authorize(
                &principal(&[Role::Admin], AuthMethod::Jwt),
                Action::DeleteSim,
                &Resource::of_tenant("acme"),
                &Context::default(),
            )
            .unwrap();
        assert_eq!(d.policy_ids, vec!["sims-delete-admin"]);
    }
}
