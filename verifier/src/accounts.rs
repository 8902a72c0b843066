//! The ledger accounts the node uses for a job's parties: fixed names derived from their
//! Ed25519 public keys, so a demo or an operator can deposit funds and read balances. Outside
//! the `service` feature: a consumer (the Python package) names its account without linking
//! the ledger.
//!
//! * [`consumer_account`]: pays the job's price into escrow and receives refunds (and, on a
//!   proven fraud, the slashed amount).
//! * [`provider_account`]: paid when a job is approved.
//! * [`stake_account`]: the provider's stake, slashed by `spec.slash_amount` on a proven
//!   fraud.

use matproof_protocol::identity::PublicKey;

/// `consumer-<hex public key>`.
pub fn consumer_account(key: &PublicKey) -> String {
    format!("consumer-{}", key.to_hex())
}

/// `provider-<hex public key>`.
pub fn provider_account(key: &PublicKey) -> String {
    format!("provider-{}", key.to_hex())
}

/// `stake-<hex public key>`.
pub fn stake_account(key: &PublicKey) -> String {
    format!("stake-{}", key.to_hex())
}

// The length limit lives with the ledger.
#[cfg(all(test, feature = "service"))]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_valid_ledger_ids() {
        let key = PublicKey([0xab; 32]);
        let names = [consumer_account(&key), provider_account(&key), stake_account(&key)];
        for name in &names {
            assert!(name.len() <= crate::ledger::MAX_ACCOUNT_ID_LEN);
            assert!(name.bytes().all(|b| b.is_ascii_graphic()));
        }
        assert_ne!(names[0], names[1]);
        assert_ne!(names[1], names[2]);
    }
}
