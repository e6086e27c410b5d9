//! The 3GPP key derivation function (TS 33.220 Annex B.2: HMAC-SHA-256 over
//! FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 …) and the keys built on it for 4G and 5G authentication vectors:
//! KASME (TS 33.401 A.2), KAUSF (TS 33.501 A.2) and XRES* (TS 33.501 A.4).

#![allow(clippy::needless_range_loop)]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// KDF(key, S) with S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ … (each Li the 2-byte length of Pi).
pub fn kdf(key: &[u8], fc: u8, params: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return Zeroizing::new([0; 32]);
    };
    mac.update(&[fc]);
    for p in params {
        mac.update(p);
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        mac.update(&len.to_be_bytes());
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn ck_ik(ck: &[u8; 16], ik: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    key[..16].copy_from_slice(ck);
    key[16..].copy_from_slice(ik);
    key
}

/// KASME = KDF(CK ‖ IK, 0x10, PLMN id, SQN ⊕ AK).
pub fn kasme(
    ck: &[u8; 16],
    ik: &[u8; 16],
    plmn: &[u8; 3],
    sqn_xor_ak: &[u8; 6],
) -> Zeroizing<[u8; 32]> {
    kdf(&*ck_ik(ck, ik), 0x10, &[plmn, sqn_xor_ak])
}

/// KAUSF = KDF(CK ‖ IK, 0x6A, serving network name, SQN ⊕ AK).
pub fn kausf(ck: &[u8; 16], ik: &[u8; 16], snn: &str, sqn_xor_ak: &[u8; 6]) -> Zeroizing<[u8; 32]> {
    kdf(&*ck_ik(ck, ik), 0x6A, &[snn.as_bytes(), sqn_xor_ak])
}

/// XRES* = the last 128 bits of KDF(CK ‖ IK, 0x6B, serving network name, RAND, XRES).
pub fn xres_star(
    ck: &[u8; 16],
    ik: &[u8; 16],
    snn: &str,
    rand: &[u8; 16],
    xres: &[u8],
) -> [u8; 16] {
    let out = kdf(&*ck_ik(ck, ik), 0x6B, &[snn.as_bytes(), rand, xres]);
    let mut x = [0u8; 16];
    x.copy_from_slice(&out[16..]);
    x
}

/// The 3-byte PLMN identity (TS 24.301 §9.9.3.12) of MCC ‖ MNC given as 5 or 6 digits
/// (`20893`: MCC 208, MNC 93; `208034`: MNC 034).
pub fn plmn_id(digits: &str) -> Option<[u8; 3]> {
    if !(5..=6).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    let mnc3 = if d.len() == 6 { d[5] } else { 0xF };
    Some([d[1] << 4 | d[0], mnc3 << 4 | d[2], d[4] << 4 | d[3]])
}

/// A 5G serving network name (`5G:mnc093.mcc208.3gppnetwork.org`, TS 24.501 §9.12.1).
pub fn valid_serving_network_name(s: &str) -> bool {
    s.starts_with("5G:") && (4..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// The KDF itself, with the CK'/IK' parameters of RFC 5448 test vector 1 as used in
    /// free5GC's test suite (free5gc/util, ueauth/ueauth_test.go, TestGetKDFValue): KAUSF
    /// has exactly this shape (key CK ‖ IK; a network name, then SQN ⊕ AK) with FC 0x6A.
    #[test]
    fn kdf_matches_rfc_5448_vector_1() {
        let out = kdf(
            &[
                h::<16>("5349fbe098649f948f5d2e973a81c00f"),
                h::<16>("9744871ad32bf9bbd1dd5ce54e3e2e5a"),
            ]
            .concat(),
            0x20,
            &[b"WLAN", &h::<6>("bb52e91c747a")],
        );
        assert_eq!(
            hex::encode(*out),
            "0093962d0dd84aa5684b045c9edffa04ccfc230ca74fcc96c0a5d61164f5a76c"
        );
    }

    /// KASME from Open5GS's test suite (open5gs, tests/unit/security-test.c,
    /// security_test3): CK/IK of TS 35.208 set 1, PLMN 02 48 30, SQN fd8eef40df7d.
    #[test]
    fn kasme_matches_open5gs_security_test3() {
        let sqn = h::<6>("fd8eef40df7d");
        let ak = h::<6>("aa689c648370");
        let mut sqn_xor_ak = [0u8; 6];
        for i in 0..6 {
            sqn_xor_ak[i] = sqn[i] ^ ak[i];
        }
        let plmn = plmn_id("208034").unwrap();
        assert_eq!(plmn, h::<3>("024830"));
        let k = kasme(
            &h("b40ba9a3c58b2a05bbf0d987b21bf8cb"),
            &h("f769bcd751044604127672711c6d3441"),
            &plmn,
            &sqn_xor_ak,
        );
        assert_eq!(
            hex::encode(*k),
            "238e457e0f758badbca8d34bb2612c10428d426757cb5553b2b184fa64bfc549"
        );
    }

    #[test]
    fn plmn_ids_and_network_names() {
        assert_eq!(plmn_id("00101"), Some([0x00, 0xF1, 0x10]));
        assert_eq!(plmn_id("1234"), None);
        assert_eq!(plmn_id("12a45"), None);
        assert!(valid_serving_network_name(
            "5G:mnc001.mcc001.3gppnetwork.org"
        ));
        assert!(!valid_serving_network_name("mnc001.mcc001.3gppnetwork.org"));
        assert!(!valid_serving_network_name("5G:with space"));
    }
}
