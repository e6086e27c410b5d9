//! Who is calling: the identity a request was authenticated as.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::TenantId;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A TLS client certificate chaining to the client CA, with a registered identity.
    Mtls,
    /// A bearer JWT from the configured identity provider.
    Jwt,
    /// Someone with the host's keys and database, through the CLI; or the service itself
    /// (background workers). Never reached over the network and never given to the policy.
    Local,
    /// A person signed in to the web console (a server-side session started from a console
    /// link or the identity provider). Never a bearer token or a client certificate.
    Console,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::Mtls,
        AuthMethod::Jwt,
        AuthMethod::Local,
        AuthMethod::Console,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Mtls => "mtls",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Local => "local",
            AuthMethod::Console => "console",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown authentication method {s:?}"))
    }
}

/// Roles of the default policy set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Provisioner,
    Support,
    Operator,
    Auditor,
    Admin,
    /// Authentication centre: may ask for Milenage vectors.
    Auc,
    /// May scrape `/metrics`.
    Metrics,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Provisioner,
        Role::Support,
        Role::Operator,
        Role::Auditor,
        Role::Admin,
        Role::Auc,
        Role::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provisioner => "provisioner",
            Role::Support => "support",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Auc => "auc",
            Role::Metrics => "metrics",
        }
    }

    /// Parses a comma-separated role list; unknown names are an error naming them.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Role>, String> {
        let mut roles = BTreeSet::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            roles.insert(
                name.parse::<Role>()
                    .map_err(|()| format!("unknown role {name:?}"))?,
            );
        }
        if roles.is_empty() {
            return Err("at least one role is required".into());
        }
        Ok(roles)
    }

    pub fn join(roles: &BTreeSet<Role>) -> String {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller. It serialises (in the layout tasks store it with) for work done on its behalf later:
/// a queued task's records are its caller's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "Recorded", try_from = "Recorded")]
pub struct Principal {
    pub tenant: TenantId,
    pub roles: BTreeSet<Role>,
    /// Certificate identity (SAN URI or CN) or the token's `sub`.
    pub subject: String,
    pub auth_method: AuthMethod,
    /// Certificate SHA-256 fingerprint or the token's `jti`, for the audit trail.
    pub credential_id: Option<String>,
    /// Where this call came from, for the audit trail.
    pub origin: Origin,
}

/// The request a principal is acting through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl Principal {
    /// The actor recorded for work done on the host: a CLI command (`cli:` and the OS user)
    /// or a background worker (`system:` and its name). It holds no roles.
    pub fn local(tenant: TenantId, subject: impl Into<String>) -> Self {
        Self {
            tenant,
            roles: BTreeSet::new(),
            subject: subject.into(),
            auth_method: AuthMethod::Local,
            credential_id: None,
            origin: Origin::default(),
        }
    }

    /// The actor for a CLI command run by the current OS user.
    pub fn cli(tenant: TenantId) -> Self {
        Self::local(tenant, cli_subject())
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A principal as stored with a task. The field names are those tasks have been stored with
/// since the first release (which left the tenant to the task's row: see [`Recorded::tenant`]).
/// Anything this release does not know (an authentication method, a role) is an error, never
/// a silent fallback to something else.
#[derive(serde::Serialize, serde::Deserialize)]
struct Recorded {
    /// Absent in tasks queued by the first release; whoever reads such a record supplies the
    /// task's tenant before parsing it.
    tenant: String,
    subject: String,
    roles: Vec<String>,
    auth_method: String,
    credential: Option<String>,
    client_addr: Option<String>,
    request_id: Option<String>,
}

impl From<Principal> for Recorded {
    fn from(p: Principal) -> Self {
        Recorded {
            tenant: p.tenant.as_str().to_owned(),
            roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            subject: p.subject,
            auth_method: p.auth_method.as_str().to_owned(),
            credential: p.credential_id,
            client_addr: p.origin.client_addr,
            request_id: p.origin.request_id,
        }
    }
}

impl TryFrom<Recorded> for Principal {
    type Error = String;
    fn try_from(r: Recorded) -> Result<Self, String> {
        let roles = r
            .roles
            .iter()
            .map(|name| {
                name.parse::<Role>()
                    .map_err(|()| format!("unknown role {name:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Principal {
            tenant: TenantId::parse(&r.tenant).map_err(|e| format!("tenant: {e}"))?,
            roles,
            subject: r.subject,
            auth_method: r.auth_method.parse()?,
            credential_id: r.credential,
            origin: Origin {
                request_id: r.request_id,
                client_addr: r.client_addr,
            },
        })
    }
}

/// How a CLI command's actor is recorded: `cli:` and the OS user running it.
pub fn cli_subject() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_reads_back_from_its_name() {
        for m in AuthMethod::ALL {
            assert_eq!(m.as_str().parse::<AuthMethod>(), Ok(m));
        }
        assert_eq!("console".parse::<AuthMethod>(), Ok(AuthMethod::Console));
    }

    #[test]
    fn role_lists() {
        let r = Role::parse_list("support, provisioner").unwrap();
        assert_eq!(Role::join(&r), "provisioner,support");
        assert!(Role::parse_list("root").is_err());
        assert!(Role::parse_list("").is_err());
    }

    #[test]
    fn a_principal_round_trips_and_the_unknown_is_refused() {
        let p = Principal {
            tenant: TenantId::parse("acme").unwrap(),
            roles: [Role::Support, Role::Auditor].into_iter().collect(),
            subject: "alice".into(),
            auth_method: AuthMethod::Jwt,
            credential_id: Some("jti-1".into()),
            origin: Origin {
                request_id: Some("r-1".into()),
                client_addr: Some("192.0.2.1:4000".into()),
            },
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "tenant": "acme", "subject": "alice", "roles": ["support", "auditor"],
                "auth_method": "jwt", "credential": "jti-1",
                "client_addr": "192.0.2.1:4000", "request_id": "r-1"
            })
        );
        assert_eq!(serde_json::from_value::<Principal>(v.clone()).unwrap(), p);
        for (field, value) in [
            ("auth_method", "kerberos"),
            ("roles", "root"),
            ("tenant", "Not A Tenant!"),
        ] {
            let mut bad = v.clone();
            bad[field] = if field == "roles" {
                serde_json::json!([value])
            } else {
                serde_json::json!(value)
            };
            let e = serde_json::from_value::<Principal>(bad).unwrap_err();
            assert!(e.to_string().contains(value) || field == "tenant", "{e}");
        }
        let mut missing = v;
        missing.as_object_mut().unwrap().remove("tenant");
        assert!(serde_json::from_value::<Principal>(missing).is_err());
    }
}
