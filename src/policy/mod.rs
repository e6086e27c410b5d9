//! The authorization choke point: may this principal do this action on this resource in this
//! context. Every service function asks before it reads or changes anything.
//!
//! Default deny: an action is allowed only by a rule naming it, and a rule that does not
//! match allows nothing. Tenants are never crossed: a resource of another tenant is reported as
//! [`Denial::CrossTenant`], which callers answer exactly like a missing resource.
//!
//! The rules below encode the role table of the API contract. The policy issue moves them into
//! Cedar files under `policies/` behind this same [`Policy::authorize`] call.

use crate::domain::{AuthMethod, Principal, Role, SimState};

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
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::CreateSim,
        Action::ReadSim,
        Action::ListSims,
        Action::UpdateSim,
        Action::DeleteSim,
        Action::CreatePlan,
        Action::ReadPlan,
        Action::ReadMetrics,
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
}

const READERS: &[Role] = &[
    Role::Provisioner,
    Role::Support,
    Role::Operator,
    Role::Admin,
];
const CHANGERS: &[Role] = &[Role::Operator, Role::Admin];

/// The default rule set (API contract, "Default roles").
const DEFAULT_RULES: &[Rule] = &[
    // Provisioning systems create SIMs (and, with the vault, write their secrets).
    Rule {
        id: "sims-create-provisioner",
        action: Action::CreateSim,
        roles: &[Role::Provisioner],
        auth_method: None,
    },
    // Everyone who works with SIMs may look them up; auditors see only the audit log.
    Rule {
        id: "sims-read",
        action: Action::ReadSim,
        roles: READERS,
        auth_method: None,
    },
    Rule {
        id: "sims-list",
        action: Action::ListSims,
        roles: READERS,
        auth_method: None,
    },
    Rule {
        id: "plans-read",
        action: Action::ReadPlan,
        roles: READERS,
        auth_method: None,
    },
    // Operators run the inventory: descriptive fields, state, plans.
    Rule {
        id: "sims-update-operator",
        action: Action::UpdateSim,
        roles: CHANGERS,
        auth_method: None,
    },
    Rule {
        id: "plans-create-operator",
        action: Action::CreatePlan,
        roles: CHANGERS,
        auth_method: None,
    },
    // Deleting a SIM destroys its secrets for good: administrators only.
    Rule {
        id: "sims-delete-admin",
        action: Action::DeleteSim,
        roles: &[Role::Admin],
        auth_method: None,
    },
    // Scraping metrics reveals volumes, not data: a dedicated role, or an administrator.
    Rule {
        id: "metrics-read",
        action: Action::ReadMetrics,
        roles: &[Role::Metrics, Role::Admin],
        auth_method: None,
    },
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
        _context: &Context,
    ) -> Result<Decision, Denial> {
        if resource.tenant_id != principal.tenant.as_str() {
            return Err(Denial::CrossTenant);
        }
        let policy_ids: Vec<&'static str> = self
            .rules
            .iter()
            .filter(|r| r.action == action)
            .filter(|r| r.roles.iter().any(|role| principal.has_role(*role)))
            .filter(|r| r.auth_method.is_none_or(|m| m == principal.auth_method))
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
        assert_eq!(table.len(), Action::ALL.len());
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
