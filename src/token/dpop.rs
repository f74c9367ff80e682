//! The client side of DPoP (RFC 9449): the key file, its thumbprint, and proofs.
//!
//! A proof is a JWS with `typ: dpop+jwt` and the public key in `jwk` (§4.2), claims `jti`
//! (random), `htm`, `htu` (without query and fragment), `iat`, and `ath` when it goes with an
//! access token, `nonce` when the server asked for one.

use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Header, encode};
use serde_json::json;

use super::private_key::SigningKey;
use crate::auth::dpop::proof::token_hash;

/// The key in `path`, or a new EC P-256 key written there (mode 0600, in a directory created
/// 0700 if missing) when the file is missing.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, String> {
    if path.exists() {
        return SigningKey::load(path);
    }
    let (key, pem) = SigningKey::generate_ec()?;
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| format!("cannot create its directory: {e}"))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create it: {e}"))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write it: {e}"))?;
    Ok(key)
}

/// The key's RFC 7638 SHA-256 thumbprint: the `cnf.jkt` of tokens bound to it.
pub fn thumbprint(key: &SigningKey) -> Result<String, String> {
    public_jwk(key)?
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| e.to_string())
}

fn public_jwk(key: &SigningKey) -> Result<Jwk, String> {
    serde_json::from_value(key.public_jwk.clone()).map_err(|e| e.to_string())
}

/// A fresh proof for `method url`, bound to `access_token` when given (`ath`), with the
/// server's `nonce` when it asked for one.
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
) -> Result<String, String> {
    let mut header = Header::new(key.algorithm);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(public_jwk(key)?);
    let htu = url.split(['?', '#']).next().unwrap_or(url);
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": htu,
        "iat": iat,
    });
    if let Some(token) = access_token {
        claims["ath"] = token_hash(token).into();
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = nonce.into();
    }
    encode(&header, &claims, &key.key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_is_0600_reloads_with_the_same_thumbprint_and_signs_proofs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dpop.pem");
        let created = load_or_create_key(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = load_or_create_key(&path).unwrap();
        assert_eq!(thumbprint(&created).unwrap(), thumbprint(&loaded).unwrap());
        let proof = proof(&loaded, "GET", "https://h/api?q=1", Some("tok"), None).unwrap();
        let decoded = crate::auth::validate::decode(&proof).unwrap();
        assert_eq!(decoded.header["typ"], "dpop+jwt");
        assert_eq!(decoded.claims["htu"], "https://h/api");
        assert_eq!(decoded.claims["ath"], token_hash("tok"));
    }
}
