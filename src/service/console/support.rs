//! What a person may do to one SIM from its console page: the questions the SIM page asks
//! the policy to decide which support and operator forms to show. A question only: nothing
//! is recorded, and the use case asked for still decides (and records) on its own.

use super::Console;
use crate::domain::{Principal, SecretField, Sim};
use crate::policy::{Action, Context};

/// The SIM page's actions `principal` may take on a SIM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimActions {
    pub reset_pin: bool,
    /// With a reason (the form requires one).
    pub unblock_pin: bool,
    /// The PUK1, with a reason (the form requires one).
    pub reveal_puk: bool,
    pub esim: bool,
    pub change_state: bool,
}

impl Console {
    /// The actions on `sim` the policy would allow `principal` (the forms requiring a reason
    /// asked with one).
    pub fn sim_actions(&self, principal: &Principal, sim: &Sim) -> SimActions {
        let resource = crate::service::sims::sim_resource(sim);
        let may = |action, context: Context| {
            matches!(
                self.core.decide(principal, action, &resource, &context),
                Ok(Ok(_))
            )
        };
        let with_reason = Context {
            reason_given: true,
            secret_field: None,
        };
        SimActions {
            reset_pin: may(Action::ResetPin, Context::default()),
            unblock_pin: may(Action::UnblockPin, with_reason.clone()),
            reveal_puk: may(
                Action::ReadSecret,
                Context {
                    reason_given: true,
                    secret_field: Some(SecretField::Puk1),
                },
            ),
            esim: may(Action::ReadEsim, Context::default()),
            change_state: may(Action::ChangeState, Context::default()),
        }
    }
}
