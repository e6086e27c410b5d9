//! Encrypted Ki (EKI) from SIM vendors' batch files: Ki encrypted under a transport key
//! agreed with the card vendor, with AES-128 in CBC mode, a zero IV and no padding (Ki is
//! exactly one block). Decrypted in memory on import, so the plaintext Ki never touches disk.
//!
//! CBC decryption is written here over the `aes` block cipher the crate already uses for
//! Milenage: for one or a few blocks it is a short loop, not worth another dependency.

use aes::Aes128Dec;
use aes::cipher::{Array, BlockCipherDecrypt, KeyInit};
use zeroize::Zeroizing;

/// Why an EKI could not be decrypted (never naming a key or value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EkiError {
    #[error("must be 32 hexadecimal digits (one AES block)")]
    Format,
}

/// A transport key: 32 hex digits.
pub fn parse_transport_key(text: &str) -> Option<Zeroizing<[u8; 16]>> {
    let key = super::validation::hex_array::<16>(text.trim())?;
    Some(Zeroizing::new(key))
}

/// Decrypts an EKI (32 hex digits) to the Ki, as lower-case hex.
pub fn decrypt_ki(transport_key: &[u8; 16], eki_hex: &str) -> Result<Zeroizing<String>, EkiError> {
    let eki = super::validation::hex_array::<16>(eki_hex.trim()).ok_or(EkiError::Format)?;
    let ki = cbc_decrypt(transport_key, &[0u8; 16], &eki);
    Ok(Zeroizing::new(hex::encode(ki.as_ref())))
}

/// AES-128-CBC decryption of one block under `iv`.
fn cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], block: &[u8; 16]) -> Zeroizing<[u8; 16]> {
    let cipher = Aes128Dec::new(&Array::from(*key));
    let mut b = Array::from(*block);
    cipher.decrypt_block(&mut b);
    let mut out = Zeroizing::new([0u8; 16]);
    for (o, (p, v)) in out.iter_mut().zip(b.iter().zip(iv)) {
        *o = p ^ v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS-197 Appendix C.1 (AES-128): key 000102…0f encrypts 00112233…ff to 69c4e0d8…c55a.
    /// With a zero IV, one CBC block is exactly that.
    #[test]
    fn fips_197_vector() {
        let key = parse_transport_key("000102030405060708090a0b0c0d0e0f").unwrap();
        let ki = decrypt_ki(&key, "69C4E0D86A7B0430D8CDB78070B4C55A").unwrap();
        assert_eq!(ki.as_str(), "00112233445566778899aabbccddeeff");
    }

    #[test]
    fn malformed_input_is_refused() {
        let key = parse_transport_key("000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(decrypt_ki(&key, "69c4"), Err(EkiError::Format));
        assert_eq!(decrypt_ki(&key, &"zz".repeat(16)), Err(EkiError::Format));
        assert!(parse_transport_key("0001").is_none());
    }
}
