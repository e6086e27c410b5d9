//! Authentication vector generation per core: a fresh RAND from the CSPRNG, Milenage f1–f5,
//! AUTN, and the GSM SRES/Kc — what one vector of `POST /v1/sims/{sim}/auth-vectors` costs.
//! Compare with Debian libosmocore's `osmo_auth_gen_vec` (about 350,000 vectors/s on one core
//! of the reference machine).
//!
//!   cargo bench --bench milenage

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::RngCore as _;
use simvault::domain::milenage::Milenage;

fn bench(c: &mut Criterion) {
    let k = [0x46u8; 16];
    let opc = [0xcdu8; 16];
    let m = Milenage::new(&k, &opc);
    let sqn = [0, 0, 0, 0, 0x10, 0x20];
    let amf = [0x80, 0];
    let mut rng = rand::rng();
    let mut g = c.benchmark_group("milenage");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vector (rand, f1-f5, autn, sres, kc)", |b| {
        b.iter(|| {
            let mut rand = [0u8; 16];
            rng.fill_bytes(&mut rand);
            let out = m.compute(black_box(&rand), &sqn, &amf);
            black_box((out.autn(&sqn, &amf), out.sres(), out.kc()));
        });
    });
    g.bench_function("f1-f5 only", |b| {
        let rand = [0x23u8; 16];
        b.iter(|| black_box(m.compute(black_box(&rand), &sqn, &amf)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
