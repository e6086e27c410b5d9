//! The eSIM installation view: a secret read (the activation code lets anyone download the
//! profile), decided by policy and recorded before the code leaves the service.

use super::audit::Event;
use super::{Secrets, ServiceResult, Target};
use crate::domain::{Principal, SecretField, SecretValue, Sim, SimType};
use crate::policy::{Action, Context};
use crate::store::sims::SimKey;

impl Secrets {
    /// `GET /v1/sims/{sim}/esim`: the SIM and its activation code (`None` for a physical SIM
    /// or an eSIM without one).
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "esim_view"))]
    pub async fn esim_view(
        &self,
        principal: &Principal,
        key: &SimKey,
    ) -> ServiceResult<(Sim, Option<SecretValue>)> {
        let (sim, stored) = self.core.sim_with_secrets(principal, key).await?;
        let fields = [SecretField::ActivationCode];
        let resource = super::sims::sim_resource(&sim);
        let target = Target {
            sim: Some(&sim),
            fields: &fields,
            reason: None,
        };
        let decision = self
            .core
            .authorize(
                principal,
                Action::ReadEsim,
                &resource,
                &Context::default(),
                target,
            )
            .await?;
        let code = if sim.sim_type == SimType::Esim {
            self.core
                .open_stored(&sim, stored, &fields)
                .await?
                .pop()
                .and_then(|(_, v)| v)
        } else {
            None
        };
        // Fail closed: no record, no code.
        let event = Event::allowed(Action::ReadEsim, &sim, decision).with_fields(&fields);
        self.core.audit_alone(principal, event).await?;
        Ok((sim, code))
    }
}
