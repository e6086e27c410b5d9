//! The outside systems simvault talks to: the carrier's platform ([`upstream`]) and the
//! receivers of webhooks ([`webhook`]). The use cases call them through the types here and
//! know nothing of the HTTP client underneath.

pub mod upstream;
pub mod webhook;
