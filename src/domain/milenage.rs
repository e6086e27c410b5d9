//! Milenage (3GPP TS 35.206): the authentication and key agreement functions f1, f1*, f2–f5,
//! f5* over AES-128, OPc derivation, and the GSM conversion functions c2 (SRES) and c3 (Kc)
//! of TS 33.102 §6.8.1.2. The `aes` crate does the block cipher (AES-NI where the CPU has it);
//! the few XORs and byte rotations around it are the algorithm itself, written out here.
//!
//! Key material lives in zeroizing buffers; the expanded AES key is zeroized on drop.

// Index loops over fixed-size blocks read like the specification's byte formulas.
#![allow(clippy::needless_range_loop)]

use aes::Aes128Enc;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use zeroize::{Zeroize, Zeroizing};

pub type Block = [u8; 16];

/// Everything Milenage produces for one RAND, SQN and AMF.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    pub mac_a: [u8; 8],
    pub mac_s: [u8; 8],
    pub res: [u8; 8],
    pub ck: Zeroizing<Block>,
    pub ik: Zeroizing<Block>,
    pub ak: [u8; 6],
    pub ak_star: [u8; 6],
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("milenage::Output([redacted])")
    }
}

impl Output {
    /// AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A.
    pub fn autn(&self, sqn: &[u8; 6], amf: &[u8; 2]) -> [u8; 16] {
        let mut autn = [0u8; 16];
        for i in 0..6 {
            autn[i] = sqn[i] ^ self.ak[i];
        }
        autn[6..8].copy_from_slice(amf);
        autn[8..].copy_from_slice(&self.mac_a);
        autn
    }

    /// c2: the GSM SRES from a 64-bit RES (XRES1 ⊕ XRES2).
    pub fn sres(&self) -> [u8; 4] {
        let mut s = [0u8; 4];
        for i in 0..4 {
            s[i] = self.res[i] ^ self.res[i + 4];
        }
        s
    }

    /// c3: the GSM cipher key Kc = CK1 ⊕ CK2 ⊕ IK1 ⊕ IK2.
    pub fn kc(&self) -> Zeroizing<[u8; 8]> {
        let mut kc = Zeroizing::new([0u8; 8]);
        for i in 0..8 {
            kc[i] = self.ck[i] ^ self.ck[i + 8] ^ self.ik[i] ^ self.ik[i + 8];
        }
        kc
    }
}

/// A subscriber's K (expanded) and OPc, ready to compute.
pub struct Milenage {
    cipher: Aes128Enc,
    opc: Zeroizing<Block>,
}

impl std::fmt::Debug for Milenage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Milenage([redacted])")
    }
}

fn encrypt(cipher: &Aes128Enc, block: &Block) -> Block {
    let mut b = Array::from(*block);
    cipher.encrypt_block(&mut b);
    let out: Block = b.into();
    b.zeroize();
    out
}

fn xor(a: &Block, b: &Block) -> Block {
    let mut out = [0u8; 16];
    for i in 0..16 {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// Cyclic rotation left by `bytes` bytes (Milenage's r constants are whole bytes).
fn rot(x: &Block, bytes: usize) -> Block {
    let mut out = [0u8; 16];
    for i in 0..16 {
        out[i] = x[(i + bytes) % 16];
    }
    out
}

/// OPc = E_K(OP) ⊕ OP. OP itself is never stored.
pub fn opc_from_op(k: &Block, op: &Block) -> Zeroizing<Block> {
    let cipher = Aes128Enc::new(&Array::from(*k));
    Zeroizing::new(xor(&encrypt(&cipher, op), op))
}

/// A 128-bit key (Ki, OPc, OP) from its stored form, 32 hex digits; `None` if malformed.
pub fn key_block(v: &super::SecretValue) -> Option<Zeroizing<Block>> {
    let mut b = Zeroizing::new([0u8; 16]);
    hex::decode_to_slice(v.expose(), &mut b[..]).ok()?;
    Some(b)
}

/// OPc from secret values of Ki and OP (both validated 32 hex digits), as a secret value.
pub fn opc_value(ki: &super::SecretValue, op: &super::SecretValue) -> super::SecretValue {
    // Validated on the way in; a malformed value yields zeros, never a panic.
    let block = |v| key_block(v).unwrap_or_else(|| Zeroizing::new([0; 16]));
    let opc = opc_from_op(&block(ki), &block(op));
    super::SecretValue::from_stored(Zeroizing::new(hex::encode(*opc)))
}

impl Milenage {
    pub fn new(k: &Block, opc: &Block) -> Self {
        let mut key = Array::from(*k);
        let cipher = Aes128Enc::new(&key);
        key.zeroize();
        Self {
            cipher,
            opc: Zeroizing::new(*opc),
        }
    }

    /// All functions at once for one challenge. f2–f5 do not depend on SQN or AMF.
    pub fn compute(&self, rand: &Block, sqn: &[u8; 6], amf: &[u8; 2]) -> Output {
        let opc = &*self.opc;
        let temp = Zeroizing::new(encrypt(&self.cipher, &xor(rand, opc)));
        // f1, f1*: IN1 = SQN ‖ AMF ‖ SQN ‖ AMF; r1 = 64 bits, c1 = 0.
        let mut in1 = [0u8; 16];
        in1[..6].copy_from_slice(sqn);
        in1[6..8].copy_from_slice(amf);
        in1[8..14].copy_from_slice(sqn);
        in1[14..].copy_from_slice(amf);
        let out1 = xor(
            &encrypt(&self.cipher, &xor(&temp, &rot(&xor(&in1, opc), 8))),
            opc,
        );
        // f2–f5*: OUTi = E_K(rot(TEMP ⊕ OPc, ri) ⊕ ci) ⊕ OPc.
        let t = Zeroizing::new(xor(&temp, opc));
        let out = |r: usize, c: u8| {
            let mut x = rot(&t, r);
            x[15] ^= c;
            Zeroizing::new(xor(&encrypt(&self.cipher, &x), opc))
        };
        let out2 = out(0, 1);
        let out3 = out(4, 2);
        let out4 = out(8, 4);
        let out5 = out(12, 8);
        let take = |b: &Block, from: usize| -> [u8; 8] {
            let mut o = [0u8; 8];
            o.copy_from_slice(&b[from..from + 8]);
            o
        };
        let take6 = |b: &Block| -> [u8; 6] {
            let mut o = [0u8; 6];
            o.copy_from_slice(&b[..6]);
            o
        };
        Output {
            mac_a: take(&out1, 0),
            mac_s: take(&out1, 8),
            res: take(&out2, 8),
            ak: take6(&out2),
            ck: Zeroizing::new(*out3),
            ik: Zeroizing::new(*out4),
            ak_star: take6(&out5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> Block {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Every set of TS 35.208 (via `tests/vectors/milenage-ts35208.json`).
    #[test]
    fn reproduces_every_ts_35_208_set() {
        let text = include_str!("../../tests/vectors/milenage-ts35208.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let sets = v["sets"].as_object().unwrap();
        assert_eq!(sets.len(), 3, "the shared file holds sets 1, 3 and 4");
        for (name, s) in sets {
            let h = |k: &str| s[k].as_str().unwrap().to_owned();
            let k = hex16(&h("k"));
            let opc = opc_from_op(&k, &hex16(&h("op")));
            assert_eq!(hex::encode(*opc), h("opc"), "set {name}: OPc");
            let sqn: [u8; 6] = hex::decode(h("sqn")).unwrap().try_into().unwrap();
            let amf: [u8; 2] = hex::decode(h("amf")).unwrap().try_into().unwrap();
            let o = Milenage::new(&k, &opc).compute(&hex16(&h("rand")), &sqn, &amf);
            assert_eq!(hex::encode(o.mac_a), h("f1"), "set {name}: f1");
            assert_eq!(hex::encode(o.mac_s), h("f1star"), "set {name}: f1*");
            assert_eq!(hex::encode(o.res), h("f2"), "set {name}: f2");
            assert_eq!(hex::encode(*o.ck), h("f3"), "set {name}: f3");
            assert_eq!(hex::encode(*o.ik), h("f4"), "set {name}: f4");
            assert_eq!(hex::encode(o.ak), h("f5"), "set {name}: f5");
            assert_eq!(hex::encode(o.ak_star), h("f5star"), "set {name}: f5*");
            if s.get("autn").is_some() {
                assert_eq!(
                    hex::encode(o.autn(&sqn, &amf)),
                    h("autn"),
                    "set {name}: AUTN"
                );
            }
            if s.get("sres").is_some() {
                assert_eq!(hex::encode(o.sres()), h("sres"), "set {name}: SRES");
                assert_eq!(hex::encode(*o.kc()), h("kc"), "set {name}: Kc");
            }
        }
    }
}
