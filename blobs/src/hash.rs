//! [`BlobHash`]: the SHA-256 name of a blob.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 of a blob's bytes: its name everywhere (records, URLs, files).
/// Written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// The name of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// From the 32 raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// A text that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a SHA-256 blob name: it must be 64 hex digits (0-9, a-f)")]
pub struct ParseBlobHashError {
    /// The text as given, cut to 80 characters.
    pub text: String,
}

impl FromStr for BlobHash {
    type Err = ParseBlobHashError;

    /// Accepts 64 hex digits, upper or lower case (always written lower).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseBlobHashError {
            text: s.chars().take(80).collect(),
        };
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(Self(out))
    }
}

impl serde::Serialize for BlobHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for BlobHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// SHA-256 over bytes fed in pieces, for files too large to hold at once.
#[derive(Clone, Default)]
pub struct BlobHasher(Sha256);

impl BlobHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The name of everything fed.
    pub fn finish(self) -> BlobHash {
        BlobHash(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sha256_in_lowercase_hex_and_parse_back() {
        let h = BlobHash::of(b"abc");
        assert_eq!(
            h.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.to_string().to_uppercase().parse::<BlobHash>(), Ok(h));
        let mut pieces = BlobHasher::new();
        pieces.update(b"a");
        pieces.update(b"bc");
        assert_eq!(pieces.finish(), h);
    }

    #[test]
    fn malformed_names_are_refused_with_the_text() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            let err = bad.parse::<BlobHash>().unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{err}");
        }
        let json = serde_json_like(&BlobHash::of(b"x"));
        assert_eq!(json.len(), 64);
    }

    fn serde_json_like(h: &BlobHash) -> String {
        h.to_hex()
    }
}
