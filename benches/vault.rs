//! Sealing and opening one SIM's full secret set (Ki, OPc, PIN1/2, PUK1/2, activation code)
//! through the key hierarchy: a fresh DEK wrapped under a tenant KEK, and every field sealed;
//! then the reverse. `cargo bench --bench vault`.
#![allow(clippy::expect_used)] // a benchmark aborts on the first failure

use criterion::{Criterion, criterion_group, criterion_main};
use simvault::domain::SecretField;
use simvault::vault;

const SET: [(SecretField, &str); 7] = [
    (SecretField::Ki, "465b5ce8b199b49faa5f0a2ee238a6bc"),
    (SecretField::Opc, "cd63cb71954a9f4e48a5994e37a02baf"),
    (SecretField::Pin1, "1234"),
    (SecretField::Pin2, "5678"),
    (SecretField::Puk1, "12345678"),
    (SecretField::Puk2, "87654321"),
    (
        SecretField::ActivationCode,
        "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815",
    ),
];

fn seal_set(kek: &vault::Key, sim: &simvault::domain::SimId) -> (Vec<u8>, Vec<Vec<u8>>) {
    let dek = vault::new_key().expect("random");
    let wrapped = vault::wrap_dek(kek, &tenant_id("bench"), sim, 1, &dek).expect("wrap");
    let fields = SET
        .iter()
        .map(|(f, v)| vault::seal_field(&dek, &tenant_id("bench"), sim, *f, v).expect("seal"))
        .collect();
    (wrapped, fields)
}

fn open_set(
    kek: &vault::Key,
    sim: &simvault::domain::SimId,
    wrapped: &[u8],
    fields: &[Vec<u8>],
) -> usize {
    let dek = vault::unwrap_dek(kek, &tenant_id("bench"), sim, 1, wrapped).expect("unwrap");
    SET.iter()
        .zip(fields)
        .map(|((f, _), blob)| {
            vault::open_field(&dek, &tenant_id("bench"), sim, *f, blob)
                .expect("open")
                .len()
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let kek = vault::new_key().expect("random");
    let sim = simvault::domain::SimId::new();
    c.bench_function("seal full secret set (new DEK + 7 fields)", |b| {
        b.iter(|| seal_set(&kek, &sim))
    });
    let (wrapped, fields) = seal_set(&kek, &sim);
    c.bench_function("open full secret set (unwrap DEK + 7 fields)", |b| {
        b.iter(|| open_set(&kek, &sim, &wrapped, &fields))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

fn tenant_id(name: &str) -> simvault::domain::TenantId {
    simvault::domain::TenantId::parse(name).expect("a valid tenant")
}
