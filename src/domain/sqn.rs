//! Sequence number management for authentication vectors (3GPP TS 33.102 Annex C): SQN is
//! SEQ ‖ IND, 48 bits. Each new vector takes the next SEQ and the next IND (cycling through
//! 2^ind_bitlen values), so every SQN issued for a SIM is strictly greater than the last.

/// 2^48: SQN is a 48-bit number.
pub const SQN_LIMIT: u64 = 1 << 48;

/// The subscriber's authentication data besides K and OPc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthData {
    pub amf: [u8; 2],
    /// The last SQN issued (0: none yet).
    pub sqn: u64,
    /// Width of IND in bits (TS 33.102 C.3.2 suggests 5).
    pub ind_bitlen: u8,
}

impl Default for AuthData {
    fn default() -> Self {
        Self {
            amf: [0x80, 0x00],
            sqn: 0,
            ind_bitlen: 5,
        }
    }
}

/// The SQN after `last`: SEQ + 1 and the next IND. `None` when SEQ is exhausted.
pub fn next(last: u64, ind_bitlen: u8) -> Option<u64> {
    let mask = (1u64 << ind_bitlen) - 1;
    let seq = (last >> ind_bitlen) + 1;
    let ind = ((last & mask) + 1) & mask;
    let sqn = (seq << ind_bitlen) | ind;
    (sqn < SQN_LIMIT).then_some(sqn)
}

/// The 6 bytes of a SQN.
pub fn to_bytes(sqn: u64) -> [u8; 6] {
    let b = sqn.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

pub fn from_bytes(b: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqns_strictly_increase_with_ind_cycling() {
        let mut s = 0;
        let mut seen = Vec::new();
        for _ in 0..100 {
            let n = next(s, 5).unwrap();
            assert!(n > s);
            seen.push(n & 31);
            s = n;
        }
        assert_eq!(&seen[..3], [1, 2, 3]);
        assert_eq!(seen[31], 0, "IND wraps after 32");
        assert_eq!(
            from_bytes(&to_bytes(0x0000_1234_5678_9abc)),
            0x0000_1234_5678_9abc
        );
        assert_eq!(next(SQN_LIMIT - 1, 5), None, "exhausted");
    }
}
