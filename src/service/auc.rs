//! The authentication centre: Milenage authentication vectors computed inside the vault, so
//! that Ki and OPc never leave it. The SIM row is locked while its SQN advances, so no two
//! vectors of a SIM ever share a SQN, whatever the concurrency or number of replicas.

use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::audit::Event;
use super::{ServiceError, ServiceResult};
use crate::domain::audit::AuditOutcome;
use crate::domain::milenage::{self, Block, Milenage};
use crate::domain::{Principal, SecretField, SimState, kdf, sqn};
use crate::policy::Action;
use crate::store::sims::{self as repo, SimKey};

super::capability! {
    /// The authentication centre: vectors from Ki and OPc, and resynchronisation.
    pub struct Auc {
        core: super::Core,
    }
}

/// A re-synchronisation request: the RAND of the failed challenge and the card's AUTS.
#[derive(Debug, Clone, Copy)]
pub struct Resync {
    pub rand: Block,
    pub auts: [u8; 14],
}

/// Which 4G/5G keys to derive for each vector.
#[derive(Debug, Clone, Default)]
pub struct Derive {
    /// 5G: XRES* and KAUSF for this serving network name.
    pub serving_network_name: Option<String>,
    /// 4G: KASME for this PLMN identity.
    pub plmn_id: Option<[u8; 3]>,
}

/// One authentication vector (what the network needs; never K or OPc).
#[derive(Clone)]
pub struct AuthVector {
    pub rand: Block,
    pub autn: [u8; 16],
    pub xres: [u8; 8],
    pub ck: Zeroizing<Block>,
    pub ik: Zeroizing<Block>,
    pub kc: Zeroizing<[u8; 8]>,
    pub sres: [u8; 4],
    pub xres_star: Option<[u8; 16]>,
    pub kausf: Option<Zeroizing<[u8; 32]>>,
    pub kasme: Option<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for AuthVector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthVector([redacted])")
    }
}

/// A 16-byte key from its stored hex form.
fn key_block(v: &crate::domain::SecretValue) -> ServiceResult<Zeroizing<Block>> {
    milenage::key_block(v)
        .ok_or_else(|| ServiceError::internal("a stored key is not 32 hex digits"))
}

impl Auc {
    /// `POST /v1/sims/{sim}/auth-vectors`: `count` fresh vectors, after an optional resync.
    /// RAND always comes from the CSPRNG: a caller never chooses it (f2–f4 do not depend on
    /// SQN, so a chosen RAND would hand out the CK/IK of a captured challenge).
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "auth_vectors"))]
    pub async fn auth_vectors(
        &self,
        principal: &Principal,
        key: &SimKey,
        count: usize,
        resync: Option<Resync>,
        derive: &Derive,
    ) -> ServiceResult<Vec<AuthVector>> {
        let (mut tx, mut sim, decision) = self
            .core
            .lock_sim(principal, key, Action::AuthVectors)
            .await?;
        if matches!(sim.state, SimState::Blocked | SimState::Retired) {
            return Err(ServiceError::Conflict(format!(
                "the SIM is {}: it gets no authentication vectors",
                sim.state
            )));
        }
        let missing = || ServiceError::Conflict("the SIM has no Ki and OPc".into());
        let ki = self
            .core
            .open_secret_in(&mut tx, &sim, SecretField::Ki)
            .await?
            .ok_or_else(missing)?;
        let opc = self
            .core
            .open_secret_in(&mut tx, &sim, SecretField::Opc)
            .await?
            .ok_or_else(missing)?;
        let milenage = Milenage::new(&*key_block(&ki)?, &*key_block(&opc)?);
        drop((ki, opc));
        let mut outcome = AuditOutcome::Allowed;
        if let Some(r) = resync {
            // AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, MAC-S = f1*(SQN_MS, AMF = 0000, RAND).
            let ak_star = milenage.compute(&r.rand, &[0; 6], &[0, 0]).ak_star;
            let mut sqn_ms = [0u8; 6];
            for ((s, a), k) in sqn_ms.iter_mut().zip(&r.auts[..6]).zip(&ak_star) {
                *s = a ^ k;
            }
            let mac_s = milenage.compute(&r.rand, &sqn_ms, &[0, 0]).mac_s;
            if !bool::from(mac_s.ct_eq(&r.auts[6..])) {
                let event = Event {
                    action: Action::AuthVectors,
                    sim: Some(&sim),
                    fields: &[],
                    outcome: AuditOutcome::ResyncFailed,
                    reason: Some("AUTS did not verify (MAC-S)"),
                    policy_ids: decision.policy_ids,
                    remaining_attempts: None,
                };
                self.core.audit_in(&mut tx, principal, event).await?;
                tx.commit().await?;
                return Err(ServiceError::ResyncFailed);
            }
            // Move SQN_HE past the card's: the next vectors are fresh to it.
            sim.auth.sqn = sim.auth.sqn.max(sqn::from_bytes(&sqn_ms));
            outcome = AuditOutcome::Resynchronised;
        }
        let mut vectors = Vec::with_capacity(count);
        for _ in 0..count {
            let next = sqn::next(sim.auth.sqn, sim.auth.ind_bitlen).ok_or_else(|| {
                ServiceError::Conflict("the SIM's sequence numbers are exhausted".into())
            })?;
            sim.auth.sqn = next;
            let sqn_bytes = sqn::to_bytes(next);
            let mut rand = [0u8; 16];
            // ThreadRng (ChaCha, reseeded from the OS) is not Send: not held across awaits.
            rand::rng().fill_bytes(&mut rand);
            let out = milenage.compute(&rand, &sqn_bytes, &sim.auth.amf);
            let autn = out.autn(&sqn_bytes, &sim.auth.amf);
            let mut sqn_xor_ak = [0u8; 6];
            sqn_xor_ak.copy_from_slice(&autn[..6]);
            let snn = derive.serving_network_name.as_deref();
            vectors.push(AuthVector {
                rand,
                autn,
                xres_star: snn.map(|n| kdf::xres_star(&out.ck, &out.ik, n, &rand, &out.res)),
                kausf: snn.map(|n| kdf::kausf(&out.ck, &out.ik, n, &sqn_xor_ak)),
                kasme: derive
                    .plmn_id
                    .map(|p| kdf::kasme(&out.ck, &out.ik, &p, &sqn_xor_ak)),
                xres: out.res,
                kc: out.kc(),
                sres: out.sres(),
                ck: out.ck.clone(),
                ik: out.ik.clone(),
            });
        }
        sim.updated_at = self.core.clock.now().max(sim.updated_at);
        repo::update(&mut tx, &*self.core.row_key()?, &sim).await?;
        let reason = format!("{count} vector(s); SQN now {:012x}", sim.auth.sqn);
        let event = Event {
            action: Action::AuthVectors,
            sim: Some(&sim),
            fields: &[],
            outcome,
            reason: Some(&reason),
            policy_ids: decision.policy_ids,
            remaining_attempts: None,
        };
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        Ok(vectors)
    }
}
