//! The PEM private key of a `private_key_jwt` client: RSA (PKCS#1 or PKCS#8, signs RS256) or
//! EC P-256 (PKCS#8 or SEC1, signs ES256), the algorithms Okta accepts for client assertions.

use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// A loaded signing key and what identifies it (for the token cache key).
pub struct SigningKey {
    pub key: EncodingKey,
    pub algorithm: Algorithm,
    /// SHA-256 of the public key: tells keys apart without storing anything secret.
    pub thumbprint: Vec<u8>,
    /// The public key as a JWK (`kty`, `n`/`e` or `crv`/`x`/`y`): what a DPoP proof carries.
    pub public_jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads and checks the key in `path`; the error says what is wrong and how to fix it.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        Self::from_pem(&text)
    }

    pub fn from_pem(text: &[u8]) -> Result<Self, String> {
        let pem = pem::parse(text).map_err(|_| "not a PEM private key".to_owned())?;
        let der = pem.contents();
        match pem.tag() {
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(der).map_err(|e| format!("bad RSA key: {e}"))?;
                Ok(Self::rsa(EncodingKey::from_rsa_der(der), &pair))
            }
            "PRIVATE KEY" => {
                if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                    let key = EncodingKey::from_rsa_pem(text).map_err(|e| e.to_string())?;
                    return Ok(Self::rsa(key, &pair));
                }
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| "neither an RSA key nor an EC P-256 key".to_owned())?;
                Ok(Self::ec(EncodingKey::from_ec_der(der), &pair))
            }
            "EC PRIVATE KEY" => {
                // SEC1 (what `openssl ecparam -genkey` writes); jsonwebtoken wants PKCS#8.
                let pair =
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(|_| "not an EC P-256 key (only P-256 is supported)".to_owned())?;
                let pkcs8 = pair
                    .to_pkcs8v1()
                    .map_err(|_| "cannot re-encode the EC key".to_owned())?;
                Ok(Self::ec(EncodingKey::from_ec_der(pkcs8.as_ref()), &pair))
            }
            "ENCRYPTED PRIVATE KEY" => Err(
                "encrypted keys are not supported: decrypt it with `openssl pkcs8 -in KEY -out KEY.pem` (mode 0600)"
                    .to_owned(),
            ),
            other => Err(format!(
                "a PEM \"{other}\" is not a private key (expected BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
            )),
        }
    }

    fn rsa(key: EncodingKey, pair: &RsaKeyPair) -> Self {
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        Self {
            key,
            algorithm: Algorithm::RS256,
            thumbprint: sha256(pair.public_key().as_ref()),
            public_jwk: json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(&public.n),
                "e": URL_SAFE_NO_PAD.encode(&public.e),
            }),
        }
    }

    fn ec(key: EncodingKey, pair: &EcdsaKeyPair) -> Self {
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(point.len().saturating_sub(1) / 2);
        Self {
            key,
            algorithm: Algorithm::ES256,
            thumbprint: sha256(point),
            public_jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }),
        }
    }

    /// A new EC P-256 key and its PKCS#8 PEM (what `token --dpop-key` creates).
    pub fn generate_ec() -> Result<(Self, String), String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "EC key generation failed".to_owned())?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| "cannot encode the EC key".to_owned())?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        Ok((Self::ec(EncodingKey::from_ec_der(der.as_ref()), &pair), pem))
    }

    /// A new RSA-2048 key and its PKCS#8 PEM.
    pub fn generate_rsa() -> Result<(Self, String), String> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| "RSA key generation failed".to_owned())?;
        let der = AsDer::<Pkcs8V1Der>::as_der(&pair)
            .map_err(|_| "cannot encode the RSA key".to_owned())?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        Ok((Self::rsa(key, &pair), pem))
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING;

    fn pem(tag: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(tag, der.to_vec()))
    }

    #[test]
    fn rsa_pkcs8_and_ec_pkcs8_keys_load_with_their_algorithms() {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).unwrap();
        let key = SigningKey::from_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap();
        assert_eq!(key.algorithm, Algorithm::RS256);

        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = ec.to_pkcs8v1().unwrap();
        let key = SigningKey::from_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap();
        assert_eq!(key.algorithm, Algorithm::ES256);
        assert_eq!(key.thumbprint, sha256(ec.public_key().as_ref()));
        // The key signs.
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(key.algorithm),
            &serde_json::json!({"a": 1}),
            &key.key,
        )
        .unwrap();
    }

    #[test]
    fn other_curves_certificates_and_garbage_are_refused_with_a_reason() {
        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let der = p384.to_pkcs8v1().unwrap();
        let error = SigningKey::from_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap_err();
        assert!(error.contains("P-256"), "{error}");
        let error = SigningKey::from_pem(pem("CERTIFICATE", b"x").as_bytes()).unwrap_err();
        assert!(error.contains("not a private key"), "{error}");
        let error = SigningKey::from_pem(b"hello").unwrap_err();
        assert!(error.contains("not a PEM"), "{error}");
        let error =
            SigningKey::from_pem(pem("ENCRYPTED PRIVATE KEY", b"x").as_bytes()).unwrap_err();
        assert!(error.contains("encrypted"), "{error}");
    }
}
