//! Stateless server nonces (RFC 9449 §9): `base64url(bucket || HMAC-SHA256(secret, bucket))`
//! where `bucket` is the current time divided by the period. Every replica holding the same
//! `NonceSecret` issues and accepts the same nonces, so no state is shared. A nonce is
//! accepted in its own bucket and the next (so it lives one to two periods), and one bucket
//! early within the clock skew, for a replica whose clock runs slightly ahead.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Bytes of the HMAC kept in a nonce (128 bits).
const TAG_LEN: usize = 16;
/// Domain separation for the MAC input.
const LABEL: &[u8] = b"halo-gateway dpop nonce v1";

/// Issues and checks nonces with one key.
pub struct Nonces {
    key: hmac::Key,
    period: u64,
    skew: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// `period` and `skew` in seconds; a zero period counts as one second.
    pub fn new(secret: &[u8], period: u64, skew: u64) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            period: period.max(1),
            skew,
        }
    }

    /// The nonce for `now` (Unix seconds).
    pub fn issue(&self, now: u64) -> String {
        self.encode(now / self.period)
    }

    /// Whether `nonce` was issued with this key in an accepted bucket.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((bucket, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let bucket = u64::from_be_bytes(*bucket);
        let current = now / self.period;
        let ahead = (now.saturating_add(self.skew)) / self.period;
        let fresh = bucket == current || bucket.saturating_add(1) == current || bucket == ahead;
        fresh && tag.len() == TAG_LEN && {
            // `hmac::verify` wants the whole tag; the truncated one is compared in constant time.
            let full = hmac::sign(&self.key, &mac_input(bucket));
            aws_lc_rs::constant_time::verify_slices_are_equal(&full.as_ref()[..TAG_LEN], tag)
                .is_ok()
        }
    }

    fn encode(&self, bucket: u64) -> String {
        let tag = hmac::sign(&self.key, &mac_input(bucket));
        let mut bytes = bucket.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

fn mac_input(bucket: u64) -> Vec<u8> {
    let mut input = LABEL.to_vec();
    input.extend_from_slice(&bucket.to_be_bytes());
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_by_another_instance_with_the_same_secret_for_one_to_two_periods() {
        let a = Nonces::new(&[7; 32], 60, 5);
        let b = Nonces::new(&[7; 32], 60, 5);
        let other = Nonces::new(&[8; 32], 60, 5);
        let nonce = a.issue(6000);
        assert!(b.accepts(&nonce, 6000));
        assert!(b.accepts(&nonce, 6119), "next bucket");
        assert!(!b.accepts(&nonce, 6120), "two buckets later");
        assert!(
            b.accepts(&nonce, 5996),
            "issuer's clock ahead within the skew"
        );
        assert!(!b.accepts(&nonce, 5990), "too far ahead");
        assert!(!other.accepts(&nonce, 6000), "another secret");
        assert!(!b.accepts("", 6000));
        assert!(!b.accepts("not base64!", 6000));
        let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        forged[7] ^= 1;
        assert!(!b.accepts(&URL_SAFE_NO_PAD.encode(forged), 6060));
        // RFC 9449 §8.1: NQCHAR only.
        assert!(
            nonce
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
