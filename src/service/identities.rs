//! The lifecycle of client-certificate identities: registration, revocation and listing
//! (operator commands run by whoever holds the data directory and the root key), and the MAC
//! that authenticates each stored identity (identity → tenant, name, roles, created_at,
//! revoked_at) under the row-integrity key.
//!
//! Must never: register, revoke or list a row without checking or giving its MAC; re-MAC a
//! row whose stored MAC fails (that would launder a tampered row); change a row without its
//! platform record in the same transaction (fail closed).

use std::collections::BTreeSet;

use super::audit::append_platform;
use super::integrity::integrity_failure;
use super::{ServiceError, ServiceResult, conflict};
use crate::clock::Clock;
use crate::domain::audit::AuditOutcome;
use crate::domain::identity::{ClientIdentity, UnverifiedIdentity};
use crate::domain::{Role, TenantId};
use crate::store::identities;
use crate::store::{Db, Tx, tenants};
use crate::vault::integrity::{RowMac, opt_int};
use crate::vault::{IntegrityKey, Purpose, VaultError};

/// The MAC of a stored identity over everything that decides what it may do.
pub fn mac(key: &IntegrityKey, row: &UnverifiedIdentity) -> RowMac {
    let (created, revoked) = times(row);
    key.mac(Purpose::ClientIdentity, &parts(row, &created, &revoked))
}

/// Checks a stored identity's MAC (constant time; a missing MAC fails).
pub fn verify(key: &IntegrityKey, row: &UnverifiedIdentity) -> Result<(), VaultError> {
    let (created, revoked) = times(row);
    key.verify(
        Purpose::ClientIdentity,
        &parts(row, &created, &revoked),
        row.mac.as_deref(),
    )
}

fn times(row: &UnverifiedIdentity) -> ([u8; 8], Vec<u8>) {
    (row.created_at.to_be_bytes(), opt_int(row.revoked_at))
}

fn parts<'a>(row: &'a UnverifiedIdentity, created: &'a [u8], revoked: &'a [u8]) -> [&'a [u8]; 6] {
    [
        row.identity.as_bytes(),
        row.tenant_id.as_bytes(),
        row.name.as_bytes(),
        row.roles.as_bytes(),
        created,
        revoked,
    ]
}

/// An identity to register.
#[derive(Debug, Clone, Copy)]
pub struct NewIdentity<'a> {
    pub tenant: &'a TenantId,
    pub identity: &'a str,
    pub name: &'a str,
    pub roles: &'a BTreeSet<Role>,
}

/// Registers an identity with its MAC. With an `actor`, `identity.register` is recorded on
/// the platform chain in the same transaction; without one (fixtures and seeding, which
/// hold the keys anyway) nothing is recorded.
pub async fn register(
    db: &Db,
    key: &IntegrityKey,
    clock: &dyn Clock,
    new: NewIdentity<'_>,
    actor: Option<&str>,
) -> ServiceResult<()> {
    if !tenants::exists(db, new.tenant).await? {
        return Err(ServiceError::NotFound);
    }
    let now = clock.now();
    let row = ClientIdentity {
        identity: new.identity.to_owned(),
        tenant_id: new.tenant.clone(),
        name: new.name.to_owned(),
        roles: Role::join(new.roles),
    };
    let stored = UnverifiedIdentity {
        identity: row.identity.clone(),
        tenant_id: row.tenant_id.to_string(),
        name: row.name.clone(),
        roles: row.roles.clone(),
        created_at: now,
        revoked_at: None,
        mac: None,
    };
    let mut tx = db.begin().await?;
    identities::register(&mut tx, &row, now)
        .await
        .map_err(conflict(
            "the identity is already registered (a revoked identity keeps its name)",
        ))?;
    identities::set_mac(&mut tx, &row.identity, &mac(key, &stored)).await?;
    if let Some(actor) = actor {
        append_platform(
            &mut tx,
            actor,
            "identity.register",
            AuditOutcome::Completed,
            &format!(
                "identity {} of tenant {} (name {}, roles {})",
                row.identity, row.tenant_id, row.name, row.roles
            ),
            now,
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

/// Why a revocation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no identity named {name} in tenant {tenant}")]
    Unknown { tenant: String, name: String },
    #[error("the identity {0} is already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Revokes `name` of `tenant` (its certificate is refused from the next request on), gives
/// the row its new MAC and records `identity.revoke` by `actor`, in one transaction.
/// Returns the revoked row.
pub async fn revoke(
    db: &Db,
    key: &IntegrityKey,
    clock: &dyn Clock,
    tenant: &TenantId,
    name: &str,
    actor: &str,
) -> Result<UnverifiedIdentity, RevokeError> {
    let identity = crate::pki::client_identity(tenant, name);
    let unknown = || RevokeError::Unknown {
        tenant: tenant.to_string(),
        name: name.to_owned(),
    };
    let now = clock.now();
    let mut tx = db.begin().await.map_err(ServiceError::from)?;
    let Some(mut row) = identities::find(&mut tx, &identity)
        .await
        .map_err(ServiceError::from)?
    else {
        return Err(unknown());
    };
    if verify(key, &row).is_err() {
        drop(tx);
        return Err(
            integrity_failure(db, Purpose::ClientIdentity, &identity, now)
                .await
                .into(),
        );
    }
    if row.tenant_id != tenant.as_str() {
        return Err(unknown());
    }
    if row.revoked_at.is_some() {
        return Err(RevokeError::AlreadyRevoked(identity));
    }
    row.revoked_at = Some(now);
    let sealed = mac(key, &row);
    row.mac = Some(sealed.to_vec());
    if !identities::revoke(&mut tx, &identity, now, &sealed)
        .await
        .map_err(ServiceError::from)?
    {
        return Err(RevokeError::AlreadyRevoked(identity));
    }
    append_platform(
        &mut tx,
        actor,
        "identity.revoke",
        AuditOutcome::Completed,
        &format!(
            "identity {identity} of tenant {} (name {name})",
            row.tenant_id
        ),
        now,
    )
    .await?;
    tx.commit().await.map_err(ServiceError::from)?;
    Ok(row)
}

/// Every registered identity (of `tenant`, if given), each MAC checked: a row that fails is
/// reported and the listing refused (it would show a tampered tenant or roles as real).
pub async fn list(
    db: &Db,
    key: &IntegrityKey,
    clock: &dyn Clock,
    tenant: Option<&TenantId>,
) -> ServiceResult<Vec<UnverifiedIdentity>> {
    let rows = identities::list(db, tenant).await?;
    for row in &rows {
        if verify(key, row).is_err() {
            return Err(
                integrity_failure(db, Purpose::ClientIdentity, &row.identity, clock.now()).await,
            );
        }
    }
    Ok(rows)
}

/// Gives every identity row its MAC (adoption of a database from before row integrity,
/// inside the adoption's transaction); returns how many.
pub async fn adopt(tx: &mut Tx, key: &IntegrityKey) -> ServiceResult<u64> {
    let rows = identities::list(&mut *tx, None).await?;
    for row in &rows {
        identities::set_mac(tx, &row.identity, &mac(key, row)).await?;
    }
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::vault::new_key;

    fn key() -> IntegrityKey {
        IntegrityKey::derive(&new_key().unwrap()).unwrap()
    }

    fn stored() -> UnverifiedIdentity {
        UnverifiedIdentity {
            identity: "urn:simvault:t:m".into(),
            tenant_id: "t".into(),
            name: "m".into(),
            roles: "metrics".into(),
            created_at: 1,
            revoked_at: None,
            mac: None,
        }
    }

    #[test]
    fn the_mac_covers_every_deciding_column() {
        let key = key();
        let mut row = stored();
        row.mac = Some(mac(&key, &row).to_vec());
        assert!(verify(&key, &row).is_ok());
        let changes: [fn(&mut UnverifiedIdentity); 6] = [
            |r| r.identity = "urn:simvault:t:n".into(),
            |r| r.tenant_id = "u".into(),
            |r| r.name = "n".into(),
            |r| r.roles = "provisioner".into(),
            |r| r.created_at = 2,
            |r| r.revoked_at = Some(1),
        ];
        for change in changes {
            let mut tampered = row.clone();
            change(&mut tampered);
            assert!(verify(&key, &tampered).is_err(), "{tampered:?}");
        }
        let mut revoked = row.clone();
        revoked.revoked_at = Some(5);
        revoked.mac = Some(mac(&key, &revoked).to_vec());
        // Un-revoking with the revoked row's MAC fails.
        let mut unrevoked = revoked.clone();
        unrevoked.revoked_at = None;
        assert!(verify(&key, &unrevoked).is_err());
        row.mac = None;
        assert!(verify(&key, &row).is_err());
    }

    #[tokio::test]
    async fn adoption_gives_every_row_its_mac_and_revocation_keeps_it_valid() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        db.migrate().await.unwrap();
        let tenant = TenantId::parse("t").unwrap();
        super::super::admin::create_tenant(&db, &SystemClock, &tenant)
            .await
            .unwrap();
        // A row from before row integrity: no MAC.
        let mut tx = db.begin().await.unwrap();
        identities::register(
            &mut tx,
            &ClientIdentity {
                identity: "urn:simvault:t:m".into(),
                tenant_id: crate::domain::tenant::tenant("t"),
                name: "m".into(),
                roles: "metrics".into(),
            },
            7,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let key = key();
        let before = identities::find(&db, "urn:simvault:t:m").await.unwrap();
        assert!(verify(&key, &before.unwrap()).is_err());
        let mut tx = db.begin().await.unwrap();
        assert_eq!(adopt(&mut tx, &key).await.unwrap(), 1);
        tx.commit().await.unwrap();
        let after = identities::find(&db, "urn:simvault:t:m").await.unwrap();
        assert!(verify(&key, &after.unwrap()).is_ok());
        assert_eq!(list(&db, &key, &SystemClock, None).await.unwrap().len(), 1);

        let revoked = revoke(&db, &key, &SystemClock, &tenant, "m", "cli:test")
            .await
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        let stored = identities::find(&db, "urn:simvault:t:m").await.unwrap();
        assert_eq!(stored.as_ref(), Some(&revoked));
        assert!(verify(&key, &stored.unwrap()).is_ok());
        assert!(matches!(
            revoke(&db, &key, &SystemClock, &tenant, "m", "cli:test").await,
            Err(RevokeError::AlreadyRevoked(_))
        ));
        // Another key (another database's) verifies none of it.
        assert!(list(&db, &self::key(), &SystemClock, None).await.is_err());
        db.close().await;
    }
}
