//! The token cache: one JSON file per (issuer, client id, auth method, key thumbprint or
//! secret fingerprint, sorted scopes), mode 0600 in a 0700 directory, holding the token and its
//! expiry only (never a secret or key).
//!
//! Each entry has a lock file beside it; a caller holds the lock across read, fetch and write,
//! so concurrent invocations with the same key make one token request between them (the lock
//! is on a separate file because the entry itself is replaced by rename). Writes go to a temp
//! file that is synced and renamed over the entry, so a reader never sees half a token.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client_auth::Credential;
use super::settings::Settings;

/// A cached token is used while more than this much of it remains...
const MIN_REMAINING_SECS: u64 = 60;
/// ...and more than this share (percent) of its lifetime.
const MIN_REMAINING_PERCENT: u64 = 10;

/// A token as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub access_token: String,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Unix seconds when it was received.
    pub issued_at: u64,
    /// Unix seconds when it expires (`issued_at + expires_in`).
    pub expires_at: u64,
}

impl Entry {
    /// Whether the token may still be handed out at `now`: more than max(60 s, 10 % of its
    /// lifetime) remains.
    pub fn is_fresh(&self, now: u64) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.issued_at);
        let margin = MIN_REMAINING_SECS.max(lifetime * MIN_REMAINING_PERCENT / 100);
        self.expires_at.saturating_sub(now) > margin
    }
}

/// The file name stem of the entry for `settings`: a SHA-256 over everything that makes a
/// token different, so no part of it (the secret's fingerprint least) shows in the name.
pub fn key(settings: &Settings) -> String {
    let credential = match &settings.credential {
        Credential::Secret(secret) => {
            let digest = sha256(format!("client secret\0{}", secret.expose()).as_bytes());
            format!("secret:{}", hex(&digest))
        }
        Credential::PrivateKey { key, key_id } => format!(
            "key:{}:{}",
            hex(&key.thumbprint),
            key_id.as_deref().unwrap_or_default()
        ),
    };
    let parts = [
        "halo-gateway token cache v1",
        settings.issuer.as_str(),
        settings
            .token_endpoint
            .as_ref()
            .map_or("", |url| url.as_str()),
        &settings.client_id,
        settings.method.as_str(),
        &credential,
        &settings.scope(),
        &settings.dpop_key.as_ref().map_or(String::new(), |key| {
            format!("dpop:{}", hex(&key.thumbprint))
        }),
    ];
    format!("token-{}", &hex(&sha256(parts.join("\0").as_bytes()))[..32])
}

/// The cache directory.
#[derive(Debug)]
pub struct TokenCache {
    dir: PathBuf,
}

impl TokenCache {
    /// Opens `dir`, creating it (mode 0700) if needed.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Takes the lock of entry `key`, waiting at most `wait` for another invocation to finish
    /// (`None` then: the caller goes on without the cache rather than hang).
    pub async fn lock(&self, key: &str, wait: Duration) -> std::io::Result<Option<LockedEntry>> {
        let lock_path = self.dir.join(format!("{key}.lock"));
        let file = private_file_options().open(&lock_path)?;
        // `File::lock` blocks the thread; a thread still waiting after the timeout ends with
        // the process.
        let locking = tokio::task::spawn_blocking(move || file.lock().map(|()| file));
        match tokio::time::timeout(wait, locking).await {
            Ok(Ok(Ok(file))) => Ok(Some(LockedEntry {
                _lock: file,
                dir: self.dir.clone(),
                path: self.dir.join(format!("{key}.json")),
            })),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_elapsed) => Ok(None),
        }
    }
}

/// An entry whose lock this process holds until it is dropped.
#[derive(Debug)]
pub struct LockedEntry {
    _lock: File,
    dir: PathBuf,
    path: PathBuf,
}

impl LockedEntry {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached token, if there is a readable one.
    pub fn read(&self) -> Option<Entry> {
        let text = std::fs::read(&self.path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Replaces the entry atomically: temp file (0600) in the same directory, synced, renamed.
    pub fn write(&self, entry: &Entry) -> std::io::Result<()> {
        // tempfile creates the file 0600 (O_EXCL, random name).
        let mut file = tempfile::Builder::new()
            .prefix(".token-")
            .tempfile_in(&self.dir)?;
        serde_json::to_writer(&mut file, entry)?;
        file.flush()?;
        file.as_file().sync_all()?;
        file.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(issued_at: u64, expires_at: u64) -> Entry {
        Entry {
            access_token: "t".into(),
            token_type: "Bearer".into(),
            scope: None,
            issued_at,
            expires_at,
        }
    }

    #[test]
    fn a_token_is_fresh_while_more_than_max_60s_and_10_percent_remains() {
        // One hour: the margin is 360 s.
        let hour = entry(0, 3600);
        assert!(hour.is_fresh(3600 - 361));
        assert!(!hour.is_fresh(3600 - 360));
        // Five minutes: the margin is 60 s.
        let short = entry(0, 300);
        assert!(short.is_fresh(239));
        assert!(!short.is_fresh(240));
        // Expired, and a clock that went backwards past issue time.
        assert!(!hour.is_fresh(4000));
        assert!(entry(100, 3700).is_fresh(50));
    }

    #[tokio::test]
    async fn entries_are_written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(&dir.path().join("sub")).unwrap();
        let locked = cache
            .lock("k", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(locked.read(), None);
        locked.write(&entry(1, 2)).unwrap();
        assert_eq!(locked.read(), Some(entry(1, 2)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(locked.path()), 0o600);
            assert_eq!(mode(&dir.path().join("sub")), 0o700);
        }
        // No temp files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".token-")), "{names:?}");
    }

    #[tokio::test]
    async fn a_held_lock_makes_the_next_caller_wait_and_then_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(dir.path()).unwrap();
        let held = cache.lock("k", Duration::from_secs(5)).await.unwrap();
        assert!(held.is_some());
        let second = cache.lock("k", Duration::from_millis(200)).await.unwrap();
        assert!(second.is_none(), "the lock is held");
        drop(held);
        let third = cache.lock("k", Duration::from_secs(5)).await.unwrap();
        assert!(third.is_some(), "free again once dropped");
    }
}
