//! The 32-byte values of a session, each its own type: job ids, Merkle roots, challenge
//! seeds and verifying-key hashes. A function that takes two of them (say
//! `respond_signing_bytes(&job_id, &r_c, …)`) cannot be called with them swapped.
//!
//! Each is shown as 64 lowercase hex digits (`Display`; `Debug` adds the type's name) and
//! parsed from hex with [`IdError`] naming what was wrong. The bytes stay public: these are
//! plain values, and the encodings that use them are fixed in `docs/formats.md`.

use std::fmt;
use std::str::FromStr;

/// Why a hex string or byte slice is not a 32-byte id.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdError {
    /// The wrong number of bytes (or of hex digits, halved).
    #[error("{kind}: {len} bytes, expected 32")]
    Length {
        /// Which kind of id (`job id`, `Merkle root`, …).
        kind: &'static str,
        /// How many bytes there were.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("{kind}: not hex: {source}")]
    NotHex {
        /// Which kind of id.
        kind: &'static str,
        /// The decoder's complaint.
        #[source]
        source: hex::FromHexError,
    },
}

/// Lowercase hex of any bytes: the one place the crates format bytes for people.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// What the errors call this kind of id.
            pub const KIND: &'static str = $kind;

            /// The id with these bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// Its bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Its bytes, owned (for protobuf fields).
            pub fn to_vec(&self) -> Vec<u8> {
                self.0.to_vec()
            }

            /// 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex digits.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let bytes = hex::decode(text.trim()).map_err(|source| IdError::NotHex { kind: $kind, source })?;
                Self::try_from(bytes.as_slice())
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = IdError;

            fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; 32] =
                    bytes.try_into().map_err(|_| IdError::Length { kind: $kind, len: bytes.len() })?;
                Ok(Self(array))
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::from_hex(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }
    };
}

id32!(
    /// `job_id = SHA-256("matproof/v1/job" ‖ canonical job spec)` (DESIGN §3).
    JobId,
    "job id"
);
id32!(
    /// The root of an RFC 9162 Merkle tree: `R_A`, `R_B`, `R_C`.
    MerkleRoot,
    "Merkle root"
);
id32!(
    /// A challenge seed: 32 bytes from the verifier's OS CSPRNG, drawn after `R_C`.
    Seed,
    "seed"
);
id32!(
    /// The identity hash of a tile circuit's verifying key (`circuits::keys::vk_hash`).
    VkHash,
    "verifying-key hash"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_errors_name_the_kind() {
        let id = JobId([0xab; 32]);
        assert_eq!(id.to_string(), "ab".repeat(32));
        assert_eq!(format!("{id:?}"), format!("JobId({})", "ab".repeat(32)));
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        let short = "ab".repeat(31).parse::<MerkleRoot>().unwrap_err();
        assert_eq!(short, IdError::Length { kind: "Merkle root", len: 31 });
        assert!(short.to_string().contains("Merkle root"));
        let bad = "zz".repeat(32).parse::<Seed>().unwrap_err();
        assert!(matches!(bad, IdError::NotHex { kind: "seed", .. }), "{bad}");
        assert!(std::error::Error::source(&bad).is_some());
        assert_eq!(
            VkHash::try_from(&[1u8; 33][..]).unwrap_err(),
            IdError::Length { kind: "verifying-key hash", len: 33 }
        );
    }
}
