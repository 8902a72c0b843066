//! Ed25519 identities and signatures over canonical bytes.
//!
//! Every signature is domain-separated: the signed message is
//! `"matproof/v1/sig" ‖ u8(len(purpose)) ‖ purpose ‖ bytes`, so a signature made for one
//! purpose (say, a challenge) can never be replayed as another (say, a verdict).
//! Verification is strict (`verify_strict`: no small-order keys, no malleable signatures).

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Prefix of every signed message.
pub const SIGNATURE_DOMAIN: &[u8] = b"matproof/v1/sig";

/// An Ed25519 public key (32 bytes, compressed Edwards point).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

impl std::fmt::Display for PublicKey {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl PublicKey {
    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (not checked to be a point: verification does that).
    pub fn from_hex(text: &str) -> Result<Self, crate::ids::IdError> {
        let kind = "public key";
        let bytes = hex::decode(text.trim()).map_err(|source| crate::ids::IdError::NotHex { kind, source })?;
        let key: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| crate::ids::IdError::Length { kind, len: bytes.len() })?;
        Ok(Self(key))
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// A signature check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key is not a valid Ed25519 point.
    #[error("invalid Ed25519 public key {key:?}")]
    InvalidKey {
        /// The key.
        key: PublicKey,
    },
    /// The signature does not verify.
    #[error("bad signature for purpose {purpose:?} under key {key:?}")]
    BadSignature {
        /// The purpose label.
        purpose: &'static str,
        /// The key.
        key: PublicKey,
    },
    /// The random number generator failed.
    #[error("OS random number generator failed: {reason}")]
    Rng {
        /// The cause.
        reason: String,
    },
}

/// A signing identity (keep it secret).
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({:?})", self.public_key())
    }
}

fn message(purpose: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 1 + purpose.len() + bytes.len());
    out.extend_from_slice(SIGNATURE_DOMAIN);
    out.push(purpose.len() as u8);
    out.extend_from_slice(purpose.as_bytes());
    out.extend_from_slice(bytes);
    out
}

impl Identity {
    /// A new identity from the OS random number generator.
    pub fn generate() -> Result<Self, SignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| SignatureError::Rng { reason: e.to_string() })?;
        Ok(Self::from_seed(seed))
    }

    /// The identity with this 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&seed) }
    }

    /// The secret seed (to store the identity).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `bytes` for `purpose` (a short fixed ASCII label).
    pub fn sign(&self, purpose: &str, bytes: &[u8]) -> Signature {
        debug_assert!(purpose.len() <= usize::from(u8::MAX));
        Signature(self.key.sign(&message(purpose, bytes)).to_bytes())
    }
}

/// Verifies a signature made by [`Identity::sign`].
pub fn verify(
    key: &PublicKey,
    purpose: &'static str,
    bytes: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let verifying = VerifyingKey::from_bytes(&key.0).map_err(|_| SignatureError::InvalidKey { key: *key })?;
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    verifying
        .verify_strict(&message(purpose, bytes), &sig)
        .map_err(|_| SignatureError::BadSignature { purpose, key: *key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let id = Identity::from_seed([9; 32]);
        let sig = id.sign("challenge", b"hello");
        verify(&id.public_key(), "challenge", b"hello", &sig).unwrap();
        assert!(verify(&id.public_key(), "verdict", b"hello", &sig).is_err());
        assert!(verify(&id.public_key(), "challenge", b"hellO", &sig).is_err());
        let other = Identity::generate().unwrap();
        assert!(verify(&other.public_key(), "challenge", b"hello", &sig).is_err());
        assert_eq!(Identity::from_seed(id.seed()).public_key(), id.public_key());
    }

    #[test]
    fn every_bit_flip_of_a_signature_is_rejected() {
        let id = Identity::from_seed([4; 32]);
        let sig = id.sign("verdict", b"job");
        for bit in 0..512 {
            let mut bad = sig;
            bad.0[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&id.public_key(), "verdict", b"job", &bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn known_answer_rfc8032_key() {
        // RFC 8032 §7.1 test 1: secret key 9d61b1…7f60 has public key d75a98…511a.
        let seed: [u8; 32] = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(Identity::from_seed(seed).public_key().0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn invalid_keys_are_errors() {
        let sig = Signature([0; 64]);
        // A small-order point (the identity) must be refused by strict verification.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert!(verify(&PublicKey(identity_point), "x", b"", &sig).is_err());
        assert!(verify(&PublicKey([0xff; 32]), "x", b"", &sig).is_err());
    }
}
