//! Secrets at rest: SHA-256 digests for the values we issue, AES-256-GCM sealing for the values
//! we must read back.
//!
//! * Authorization codes, access and refresh tokens, client secrets and consent tokens are random
//!   values of at least 128 bits that we only ever compare, so the database keeps their SHA-256
//!   digest ([`TokenHash`]). A slow password hash would buy nothing for such values and would make
//!   the digest unusable as a primary key.
//! * Upstream (AuthKit) tokens and upstream PKCE verifiers must be read back, so they are sealed
//!   with AES-256-GCM ([`Keyring::seal`]): a random 96-bit nonce per value, `nonce || ciphertext`
//!   stored as base64 TEXT, and the id of the sealing key stored beside it.
//! * The associated data names the table, column and row, so a ciphertext copied into another
//!   row or column fails to open instead of handing one user's tokens to another.
//! * A [`Keyring`] holds several keys: the first seals, all of them open. To rotate, put the new
//!   key first and keep the old one until every row sealed with it has expired.
//! * Key ids are derived from the keys (first 8 hex digits of SHA-256 of the key), so the
//!   configuration is just the list of keys: `MCP_AUTH_ENCRYPTION_KEYS=<base64>,<base64>`.
//!
//! No type here prints a key, a plaintext or a token in `Debug`; none implements `Display` for
//! secret material.

use std::fmt;

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

pub(crate) use crate::secret::{Secret, TokenHash};
use crate::{error::ConfigError, secret::hex};

/// The environment variable holding the encryption keys.
pub const ENCRYPTION_KEYS_VAR: &str = "MCP_AUTH_ENCRYPTION_KEYS";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// One AES-256 key and its id.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
}

impl EncryptionKey {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let id = hex(&Sha256::digest(bytes)[..4]);
        let key = Key::<Aes256Gcm>::from(*bytes);
        Self {
            id,
            cipher: Aes256Gcm::new(&key),
        }
    }

    /// A key from its standard base64 form (what `openssl rand -base64 32` prints).
    pub fn from_base64(encoded: &str) -> Result<Self, ConfigError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| ConfigError::invalid(ENCRYPTION_KEYS_VAR, "a key is not valid base64"))?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            ConfigError::invalid(
                ENCRYPTION_KEYS_VAR,
                "a key is not 32 bytes (generate one with `openssl rand -base64 32`)",
            )
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key id stored beside every value this key seals: the first 8 hex digits of the
    /// key's SHA-256. Safe to log.
    #[cfg(test)]
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A fresh random AES-256 key in the base64 form [`Keyring::from_config`] reads. Equivalent to
/// `openssl rand -base64 32`.
#[cfg(test)]
pub(crate) fn generate_key() -> String {
    let mut bytes = [0u8; KEY_LEN];
    rand::fill(&mut bytes);
    STANDARD.encode(bytes)
}

/// A ciphertext and the id of the key that sealed it, as stored in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the sealing key ([`EncryptionKey::id`]).
    pub key_id: String,
    /// Standard base64 of `nonce || ciphertext || tag`.
    pub ciphertext: String,
}

/// Why a sealed value did not open. Deliberately coarse: the caller fails closed either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No configured key has this id (was a key removed before its rows expired?).
    #[error("no configured encryption key has this key id")]
    UnknownKey,
    /// The ciphertext is malformed, was tampered with, or belongs to another row or column.
    #[error("sealed value failed authentication")]
    Tampered,
}

/// The encryption keys: the first seals, every one opens.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring from keys in order of preference; the first one seals.
    pub(crate) fn new(keys: Vec<EncryptionKey>) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::Missing(ENCRYPTION_KEYS_VAR.to_owned()));
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(ConfigError::invalid(
                    ENCRYPTION_KEYS_VAR,
                    format!("key id {} appears twice (duplicate key?)", key.id),
                ));
            }
        }
        Ok(Self { keys })
    }

    /// A keyring from a comma-separated list of base64 keys, newest first (the format of
    /// `MCP_AUTH_ENCRYPTION_KEYS`). Blank entries are ignored.
    pub fn from_config(value: &str) -> Result<Self, ConfigError> {
        let keys = value
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(EncryptionKey::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// A keyring from the `MCP_AUTH_ENCRYPTION_KEYS` environment variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let value = std::env::var(ENCRYPTION_KEYS_VAR)
            .map_err(|_| ConfigError::Missing(ENCRYPTION_KEYS_VAR.to_owned()))?;
        Self::from_config(&value)
    }

    /// A keyring with one fresh random key, for tests and throw-away setups: everything sealed
    /// with it is unreadable after a restart.
    pub fn ephemeral() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes);
        Self {
            keys: vec![EncryptionKey::from_bytes(&bytes)],
        }
    }

    /// Id of the key that seals new values.
    pub(crate) fn sealing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Ids of every key that can open values, sealing key first.
    pub(crate) fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Seals `plaintext` with the first key. `aad` must name where the value lives (see
    /// [`aad`]); the same `aad` is needed to open it.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only fails for inputs beyond GCM's 64 GiB limit.
            .expect("AES-GCM encryption of a small value");
        let mut stored = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&ciphertext);
        Sealed {
            key_id: key.id.clone(),
            ciphertext: STANDARD.encode(stored),
        }
    }

    /// Opens a sealed value. Fails closed on an unknown key id, a different `aad` or any
    /// change to the ciphertext.
    pub(crate) fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or(OpenError::UnknownKey)?;
        let stored = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Tampered)?;
        if stored.len() < NONCE_LEN {
            return Err(OpenError::Tampered);
        }
        let (nonce, ciphertext) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| OpenError::Tampered)?;
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Tampered)
    }

    /// Seals a [`Secret`].
    pub(crate) fn seal_secret(&self, aad: &[u8], secret: &Secret) -> Sealed {
        self.seal(aad, secret.expose().as_bytes())
    }

    /// Opens a value sealed by [`Keyring::seal_secret`].
    pub(crate) fn open_secret(&self, sealed: &Sealed, aad: &[u8]) -> Result<Secret, OpenError> {
        let bytes = self.open(sealed, aad)?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| OpenError::Tampered)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

/// The associated data of a sealed value: a version tag, the table and column, and the row id,
/// so a ciphertext only opens where it was written.
pub fn aad(table: &str, column: &str, row_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + table.len() + column.len() + row_id.len());
    aad.extend_from_slice(b"actix-mcp-auth/v1\0");
    aad.extend_from_slice(table.as_bytes());
    aad.push(b'.');
    aad.extend_from_slice(column.as_bytes());
    aad.push(0);
    aad.extend_from_slice(row_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[byte; KEY_LEN])
    }

    fn ring(bytes: &[u8]) -> Keyring {
        Keyring::new(bytes.iter().map(|b| key(*b)).collect()).unwrap()
    }

    #[test]
    fn round_trip() {
        let keys = ring(&[1]);
        let aad = aad("t", "c", "row-1");
        let sealed = keys.seal(&aad, b"upstream token");
        assert_eq!(sealed.key_id, keys.sealing_key_id());
        assert_eq!(keys.open(&sealed, &aad).unwrap(), b"upstream token");
    }

    #[test]
    fn nonces_differ() {
        let keys = ring(&[1]);
        let a = keys.seal(b"x", b"same");
        let b = keys.seal(b"x", b"same");
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn other_row_fails() {
        let keys = ring(&[1]);
        let sealed = keys.seal(&aad("t", "c", "row-1"), b"secret");
        assert_eq!(
            keys.open(&sealed, &aad("t", "c", "row-2")),
            Err(OpenError::Tampered)
        );
        assert_eq!(
            keys.open(&sealed, &aad("t", "other", "row-1")),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn unknown_key_id_fails() {
        let keys = ring(&[1]);
        let mut sealed = keys.seal(b"a", b"secret");
        sealed.key_id = "00000000".into();
        assert_eq!(keys.open(&sealed, b"a"), Err(OpenError::UnknownKey));
        // A keyring without the sealing key cannot open it either.
        let sealed = keys.seal(b"a", b"secret");
        assert_eq!(ring(&[2]).open(&sealed, b"a"), Err(OpenError::UnknownKey));
    }

    #[test]
    fn tampering_fails() {
        let keys = ring(&[1]);
        let sealed = keys.seal(b"a", b"secret");
        let mut raw = STANDARD.decode(&sealed.ciphertext).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let tampered = Sealed {
                key_id: sealed.key_id.clone(),
                ciphertext: STANDARD.encode(&raw),
            };
            assert_eq!(keys.open(&tampered, b"a"), Err(OpenError::Tampered));
            raw[i] ^= 1;
        }
        let short = Sealed {
            key_id: sealed.key_id.clone(),
            ciphertext: STANDARD.encode([0u8; 4]),
        };
        assert_eq!(keys.open(&short, b"a"), Err(OpenError::Tampered));
        let not_base64 = Sealed {
            key_id: sealed.key_id,
            ciphertext: "%%%".into(),
        };
        assert_eq!(keys.open(&not_base64, b"a"), Err(OpenError::Tampered));
    }

    #[test]
    fn rotation_old_key_opens_new_key_seals() {
        let old = ring(&[1]);
        let sealed_old = old.seal(b"a", b"before");
        let rotated = ring(&[2, 1]);
        assert_eq!(rotated.open(&sealed_old, b"a").unwrap(), b"before");
        let sealed_new = rotated.seal(b"a", b"after");
        assert_eq!(sealed_new.key_id, key(2).id());
        assert_eq!(old.open(&sealed_new, b"a"), Err(OpenError::UnknownKey));
    }

    #[test]
    fn config_parsing() {
        let a = generate_key();
        let b = generate_key();
        let keys = Keyring::from_config(&format!(" {a} , {b},")).unwrap();
        assert_eq!(keys.key_ids().count(), 2);
        assert_eq!(
            keys.sealing_key_id(),
            EncryptionKey::from_base64(&a).unwrap().id()
        );
        assert_eq!(keys.sealing_key_id().len(), 8);

        assert!(matches!(
            Keyring::from_config(""),
            Err(ConfigError::Missing(_))
        ));
        let short = STANDARD.encode([0u8; 16]);
        let err = Keyring::from_config(&short).unwrap_err().to_string();
        assert!(err.contains("MCP_AUTH_ENCRYPTION_KEYS") && err.contains("32 bytes"));
        assert!(!err.contains(&short), "the error must not echo the key");
        assert!(Keyring::from_config("not base64!").is_err());
        assert!(Keyring::from_config(&format!("{a},{a}")).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let encoded = generate_key();
        let keys = Keyring::from_config(&encoded).unwrap();
        let debug = format!("{keys:?} {:?}", keys.keys[0]);
        assert!(!debug.contains(&encoded));
        assert!(debug.contains(keys.sealing_key_id()));
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
        let hash = TokenHash::of("mcp_at_xyz");
        assert!(format!("{hash:?}").len() < 30);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(TokenHash::from_hex(TokenHash::of("x").as_str()).is_some());
        assert!(TokenHash::from_hex("ABC").is_none());
    }
}
