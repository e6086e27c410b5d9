//! Cedar evaluation behind [`Policy::authorize`]: loading and validating policy files, and
//! deciding one request.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context as _, bail};
use cedar_policy::{
    Authorizer, Context as CedarContext, Decision as CedarDecision, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
use miette::Diagnostic;

use super::{
    Action, Context, Decision, Denial, EVALUATION_ERROR, Refusal, Resource, TENANT_ISOLATION,
};
use crate::domain::Principal;

/// A decision: `Ok` with the permitting policy ids, `Err` with the forbidding ones.
type Verdict = Result<Vec<String>, Vec<String>>;

/// The built-in policy set: the files under `policies/` in the source tree.
const BUILTIN_SCHEMA: &str = include_str!("../../policies/simvault.cedarschema");
const BUILTIN_POLICIES: &str = include_str!("../../policies/default.cedar");
pub(crate) const SCHEMA_FILE: &str = "simvault.cedarschema";

/// A loaded, validated policy set.
pub struct Policy {
    set: PolicySet,
    schema: Schema,
    /// Cedar's policy id → the policy's `@id`.
    ids: HashMap<PolicyId, String>,
    principal_type: EntityTypeName,
    resource_type: EntityTypeName,
    /// Decisions already made, keyed by every input the entities and request are built from:
    /// a Cedar decision is a pure function of the policy set, the entities and the request, so
    /// a hit is exactly the decision evaluation would make. Lives and dies with this policy set.
    /// Decisions by their inputs: `Ok` allowing policy ids, `Err` the forbidding ones.
    decisions: Mutex<HashMap<String, Verdict>>,
}

/// Bound on remembered decisions (cleared when reached).
const DECISION_CACHE_LIMIT: usize = 100_000;

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Policy({} policies)", self.ids.len())
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.lines().count().max(1))
}

/// "file:line: message" for a Cedar diagnostic.
fn locate(file: &str, text: &str, err: &(dyn Diagnostic + Send + Sync + 'static)) -> String {
    let line = err
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| line_of(text, l.offset() + 1));
    let mut msg = err.to_string();
    if let Some(help) = err.help() {
        msg.push_str(&format!(" ({help})"));
    }
    match line {
        Some(line) => format!("{file}:{line}: {msg}"),
        None => format!("{file}: {msg}"),
    }
}

impl Policy {
    /// The policy set built into the binary (`policies/` of the source tree).
    pub fn builtin() -> anyhow::Result<Policy> {
        Self::from_sources(
            BUILTIN_SCHEMA,
            &[("default.cedar".into(), BUILTIN_POLICIES.into())],
        )
    }

    /// Loads `DIR/simvault.cedarschema` and every `DIR/*.cedar`.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Policy> {
        let schema_path = dir.join(SCHEMA_FILE);
        let schema = std::fs::read_to_string(&schema_path)
            .with_context(|| format!("reading the policy schema {}", schema_path.display()))?;
        let mut files = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the policy directory {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "cedar") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                files.push((path.display().to_string(), text));
            }
        }
        if files.is_empty() {
            bail!("no *.cedar policy files in {}", dir.display());
        }
        let schema_name = schema_path.display().to_string();
        Self::from_named_sources(&schema_name, &schema, &files)
    }

    /// Parses and validates a schema and policy files (name, text).
    pub fn from_sources(schema: &str, files: &[(String, String)]) -> anyhow::Result<Policy> {
        Self::from_named_sources(SCHEMA_FILE, schema, files)
    }

    fn from_named_sources(
        schema_name: &str,
        schema_text: &str,
        files: &[(String, String)],
    ) -> anyhow::Result<Policy> {
        let (schema, _warnings) = Schema::from_cedarschema_str(schema_text)
            .map_err(|e| anyhow::anyhow!("{}", locate(schema_name, schema_text, &e)))?;
        let mut set = PolicySet::new();
        let mut ids = HashMap::new();
        let mut seen = HashSet::new();
        // Where each policy came from, for validation messages: cedar id → (file, line).
        let mut origin: HashMap<PolicyId, (String, usize)> = HashMap::new();
        for (name, text) in files {
            let parsed = PolicySet::from_str(text)
                .map_err(|e| anyhow::anyhow!("{}", locate(name, text, &e)))?;
            for (n, policy) in parsed.policies().enumerate() {
                let Some(id) = policy.annotation("id").map(str::to_owned) else {
                    bail!(
                        "{name}: every policy needs an @id(\"…\") annotation (policy {} of the file)",
                        n + 1
                    );
                };
                if !seen.insert(id.clone()) {
                    bail!("{name}: the policy id {id:?} is used twice");
                }
                let line = text
                    .find(&format!("@id(\"{id}\")"))
                    .map_or(1, |offset| line_of(text, offset + 1));
                let cedar_id = PolicyId::new(format!("{name}#{n}"));
                set.add(policy.new_id(cedar_id.clone()))
                    .map_err(|e| anyhow::anyhow!("{name}:{line}: {e}"))?;
                origin.insert(cedar_id.clone(), (name.clone(), line));
                ids.insert(cedar_id, id);
            }
        }
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        if let Some(err) = result.validation_errors().next() {
            let (file, line) = origin.get(err.policy_id()).cloned().unwrap_or_default();
            let id = ids.get(err.policy_id()).cloned().unwrap_or_default();
            bail!("{file}:{line}: policy {id:?} does not fit the schema: {err}");
        }
        Ok(Policy {
            set,
            schema,
            ids,
            principal_type: EntityTypeName::from_str("Simvault::Principal")?,
            resource_type: EntityTypeName::from_str("Simvault::Resource")?,
            decisions: Mutex::new(HashMap::new()),
        })
    }

    /// Decides one request. The tenant check comes first, in code; then Cedar must permit with
    /// no evaluation error at all.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
    ) -> Result<Decision, Denial> {
        self.decide(principal, action, resource, context)
            .map_err(|r| r.denial)
    }

    /// Like [`Policy::authorize`], naming on refusal the policies that determined it (a
    /// `forbid`, or none when nothing allowed the request), for the audit record.
    pub fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
    ) -> Result<Decision, Refusal> {
        if resource.tenant_id != &principal.tenant {
            return Err(Refusal {
                denial: Denial::CrossTenant,
                policy_ids: vec![TENANT_ISOLATION.to_owned()],
            });
        }
        let key = decision_key(principal, action, resource, context);
        let cached = self
            .decisions
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned());
        let outcome = match cached {
            Some(hit) => Ok(hit),
            None => self
                .evaluate(principal, action, resource, context)
                .inspect(|decided| {
                    if let Ok(mut cache) = self.decisions.lock() {
                        if cache.len() >= DECISION_CACHE_LIMIT {
                            cache.clear();
                        }
                        cache.insert(key, decided.clone());
                    }
                }),
        };
        match outcome {
            Ok(Ok(policy_ids)) => Ok(Decision { policy_ids }),
            Ok(Err(policy_ids)) => Err(Refusal {
                denial: Denial::Forbidden,
                policy_ids,
            }),
            Err(e) => {
                tracing::warn!(action = action.as_str(), error = %e, "policy evaluation failed: denied");
                Err(Refusal {
                    denial: Denial::Forbidden,
                    policy_ids: vec![EVALUATION_ERROR.to_owned()],
                })
            }
        }
    }

    fn evaluate(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
    ) -> anyhow::Result<Verdict> {
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let principal_uid = EntityUid::from_type_name_and_id(
            self.principal_type.clone(),
            EntityId::new(&principal.subject),
        );
        let resource_uid =
            EntityUid::from_type_name_and_id(self.resource_type.clone(), EntityId::new("resource"));
        let action_uid =
            EntityUid::from_str(&format!("Simvault::Action::\"{}\"", action.as_str()))?;
        let principal_entity = Entity::new(
            principal_uid.clone(),
            HashMap::from([
                ("tenant".to_owned(), string(principal.tenant.as_str())),
                (
                    "roles".to_owned(),
                    RestrictedExpression::new_set(
                        principal.roles.iter().map(|r| string(r.as_str())),
                    ),
                ),
                ("subject".to_owned(), string(&principal.subject)),
                (
                    "auth_method".to_owned(),
                    string(principal.auth_method.as_str()),
                ),
            ]),
            HashSet::new(),
        )?;
        let resource_entity = Entity::new(
            resource_uid.clone(),
            HashMap::from([
                ("tenant".to_owned(), string(resource.tenant_id.as_str())),
                ("kind".to_owned(), string(resource.kind())),
                (
                    "sim_state".to_owned(),
                    string(resource.sim_state.map_or("", |s| s.as_str())),
                ),
            ]),
            HashSet::new(),
        )?;
        let entities =
            Entities::from_entities([principal_entity, resource_entity], Some(&self.schema))?;
        let ctx = CedarContext::from_pairs([
            (
                "reason_given".to_owned(),
                RestrictedExpression::new_bool(context.reason_given),
            ),
            (
                "secret_field".to_owned(),
                string(context.secret_field.map_or("", |f| f.as_str())),
            ),
            (
                "auth_method".to_owned(),
                string(principal.auth_method.as_str()),
            ),
        ])?;
        let request = Request::new(
            principal_uid,
            action_uid,
            resource_uid,
            ctx,
            Some(&self.schema),
        )?;
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        if let Some(err) = response.diagnostics().errors().next() {
            bail!("{err}");
        }
        // The determining policies: the permits that allowed, or the forbids that refused.
        let mut ids: Vec<String> = response
            .diagnostics()
            .reason()
            .filter_map(|id| self.ids.get(id).cloned())
            .collect();
        ids.sort();
        Ok(if response.decision() == CedarDecision::Allow {
            Ok(ids)
        } else {
            Err(ids)
        })
    }
}

/// Every input of a decision, each length-prefixed so that no two inputs share a key.
fn decision_key(
    principal: &Principal,
    action: Action,
    resource: &Resource<'_>,
    context: &Context,
) -> String {
    let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    let parts = [
        principal.tenant.as_str(),
        &principal.subject,
        &roles.join(","),
        principal.auth_method.as_str(),
        action.as_str(),
        resource.tenant_id.as_str(),
        resource.kind(),
        resource.sim_state.map_or("", |s| s.as_str()),
        if context.reason_given { "reason" } else { "" },
        context.secret_field.map_or("", |f| f.as_str()),
    ];
    parts
        .iter()
        .map(|p| format!("{}:{p}", p.len()))
        .collect::<Vec<_>>()
        .join("|")
}

/// The current policy set, replaceable while the service runs (SIGHUP).
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<RwLock<Arc<Policy>>>);

impl PolicyHandle {
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(policy))))
    }

    pub fn current(&self) -> Option<Arc<Policy>> {
        self.0.read().ok().map(|p| p.clone())
    }

    pub fn replace(&self, policy: Policy) {
        if let Ok(mut p) = self.0.write() {
            *p = Arc::new(policy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_set_is_the_policies_directory_and_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let from_dir = Policy::load_dir(&dir).unwrap();
        let builtin = Policy::builtin().unwrap();
        assert_eq!(from_dir.ids.len(), builtin.ids.len());
        assert!(builtin.ids.values().any(|id| id == "tenant-isolation"));
    }

    fn load(policies: &str) -> anyhow::Result<Policy> {
        Policy::from_sources(BUILTIN_SCHEMA, &[("test.cedar".into(), policies.into())])
    }

    #[test]
    fn bad_policies_are_refused_naming_file_and_line() {
        let err = load("@id(\"a\")\npermit (principal, action, resource);\n\n@id(\"b\")\npermit (principal, action, resource) when { principal.nope == 1 };")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.cedar:4:"), "{err}");
        assert!(err.contains("\"b\""), "{err}");
        let err = load("permit (principal, action, resource);")
            .unwrap_err()
            .to_string();
        assert!(err.contains("@id"), "{err}");
        let err = load("@id(\"a\")\n\npermit (principal, action resource);")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.cedar:3:"), "{err}");
        let err = load("@id(\"a\") permit (principal, action, resource);\n@id(\"a\") forbid (principal, action, resource);")
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
        assert!(Policy::from_sources("namespace X { entity", &[]).is_err());
    }
}
