//! Escrow ledger tests (DESIGN §7). Each runs against SQLite in a temporary directory and,
//! when `MATPROOF_TEST_POSTGRES_URL` is set, also against PostgreSQL in a fresh schema.
#![cfg(feature = "service")]

mod support;

use matproof_protocol::receipt::Verdict;
use matproof_verifier::ledger::{
    ESCROW_ACCOUNT, JobId, Ledger, LedgerError, MAX_AMOUNT, Movement, Operation, TransferState, transfer_id,
};
use sqlx::Connection;
use support::targets;

/// A deadline far in the future (year 2096).
const FAR: u64 = 4_000_000_000_000;

fn job() -> JobId {
    JobId(rand::random())
}

/// Unique account names, so scenarios never share an account.
fn accounts() -> (String, String, String) {
    let p = format!("{:08x}", rand::random::<u32>());
    (format!("consumer-{p}"), format!("provider-{p}"), format!("stake-{p}"))
}

/// The verdict column as stored, read over a connection of our own: the stored names are
/// part of the format (existing databases hold them), whatever type the API uses.
async fn stored_verdict(url: &str, j: &JobId) -> Option<String> {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("SELECT verdict FROM ledger_transfers WHERE transfer_id = $1")
        .bind(transfer_id(j))
        .fetch_one(&mut c)
        .await
        .expect("verdict column")
}

async fn conserved(l: &Ledger) {
    l.conservation_check().await.expect("conservation");
}

#[tokio::test]
async fn full_lifecycle() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        if t.name == "sqlite" {
            // WAL is a property of the file: check it from a connection of our own.
            let mut c = sqlx::SqliteConnection::connect(&t.url).await.expect("sqlite");
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut c).await.expect("pragma");
            assert_eq!(mode, "wal");
        }
        let (consumer, provider, _) = accounts();
        let j = job();
        conserved(&l).await;
        assert_eq!(l.deposit(&consumer, 1_000).await.unwrap(), 1_000);
        conserved(&l).await;
        let open = l.open_pending(&j, &consumer, &provider, 300, FAR).await.unwrap();
        assert!(!open.replayed);
        assert_eq!(open.operation, Operation::Open);
        assert_eq!(open.transfer_id, transfer_id(&j));
        assert_eq!(open.movements, vec![Movement { from: consumer.clone(), to: ESCROW_ACCOUNT.into(), amount: 300 }]);
        assert_eq!(l.balance(&consumer).await.unwrap(), 700);
        assert_eq!(l.balance(ESCROW_ACCOUNT).await.unwrap(), 300);
        assert_eq!(l.transfer(&j).await.unwrap().state, TransferState::Pending);
        conserved(&l).await;
        let verdict = l.record_verdict(&j, Verdict::Approved, &[7; 32]).await.unwrap();
        assert!(!verdict.replayed && verdict.movements.is_empty());
        assert_eq!(stored_verdict(&t.url, &j).await.as_deref(), Some("approved"));
        conserved(&l).await;
        let post = l.post(&j).await.unwrap();
        assert!(!post.replayed);
        assert_eq!(post.movements, vec![Movement { from: ESCROW_ACCOUNT.into(), to: provider.clone(), amount: 300 }]);
        assert_eq!(l.balance(&consumer).await.unwrap(), 700);
        assert_eq!(l.balance(&provider).await.unwrap(), 300);
        assert_eq!(l.balance(ESCROW_ACCOUNT).await.unwrap(), 0);
        assert_eq!(l.total_deposited().await.unwrap(), 1_000);
        let tr = l.transfer(&j).await.unwrap();
        assert_eq!(
            (tr.state, tr.verdict, tr.verdict_body_hash),
            (TransferState::Posted, Some(Verdict::Approved), Some([7; 32]))
        );
        assert_eq!(
            (tr.consumer.as_str(), tr.provider.as_str(), tr.amount, tr.job_id),
            (&*consumer, &*provider, 300, j)
        );
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn void_refunds_and_settle() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, _) = accounts();
        let (j1, j2) = (job(), job());
        l.deposit(&consumer, 500).await.unwrap();
        l.open_pending(&j1, &consumer, &provider, 200, FAR).await.unwrap();
        l.open_pending(&j2, &consumer, &provider, 100, FAR).await.unwrap();
        conserved(&l).await;
        let v = l.void(&j1).await.unwrap();
        assert_eq!(v.movements, vec![Movement { from: ESCROW_ACCOUNT.into(), to: consumer.clone(), amount: 200 }]);
        assert_eq!(l.balance(&consumer).await.unwrap(), 400);
        assert_eq!(l.transfer(&j1).await.unwrap().state, TransferState::Voided);
        conserved(&l).await;
        // settle(Rejected) records the verdict, then voids.
        let s = l.settle(&j2, Verdict::Rejected, &[1; 32]).await.unwrap();
        assert_eq!(stored_verdict(&t.url, &j2).await.as_deref(), Some("rejected"));
        assert_eq!(stored_verdict(&t.url, &j1).await, None);
        assert_eq!((s.operation, s.replayed), (Operation::Void, false));
        assert_eq!(l.balance(&consumer).await.unwrap(), 500);
        assert_eq!(l.balance(&provider).await.unwrap(), 0);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn deadline_expiry_voids() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, _) = accounts();
        let (early, late, approved) = (job(), job(), job());
        l.deposit(&consumer, 1_000).await.unwrap();
        l.open_pending(&early, &consumer, &provider, 100, 1_000).await.unwrap();
        l.open_pending(&late, &consumer, &provider, 100, FAR).await.unwrap();
        l.open_pending(&approved, &consumer, &provider, 100, 1_000).await.unwrap();
        l.record_verdict(&approved, Verdict::Approved, &[2; 32]).await.unwrap();
        assert!(l.void_expired(1_000).await.unwrap().is_empty(), "not past the deadline yet");
        assert_eq!(l.void_expired(1_001).await.unwrap(), vec![early]);
        assert!(l.void_expired(1_001).await.unwrap().is_empty(), "voided once");
        assert_eq!(l.transfer(&early).await.unwrap().state, TransferState::Voided);
        assert_eq!(l.transfer(&late).await.unwrap().state, TransferState::Pending);
        // An approved job is never voided by expiry; recovery posts it.
        assert_eq!(l.transfer(&approved).await.unwrap().state, TransferState::Pending);
        assert_eq!(l.balance(&consumer).await.unwrap(), 800);
        conserved(&l).await;
        assert!(matches!(
            l.post(&early).await,
            Err(LedgerError::InvalidTransition { from: TransferState::Voided, .. })
        ));
        let r = l.recover().await.unwrap();
        assert_eq!((r.posted, r.voided), (vec![approved], vec![]));
        assert_eq!(l.balance(&provider).await.unwrap(), 100);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn slash_moves_stake_and_refunds_once() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, stake) = accounts();
        let (j, posted) = (job(), job());
        l.deposit(&consumer, 500).await.unwrap();
        l.deposit(&stake, 1_000).await.unwrap();
        l.open_pending(&j, &consumer, &provider, 200, FAR).await.unwrap();
        l.open_pending(&posted, &consumer, &provider, 50, FAR).await.unwrap();
        l.post(&posted).await.unwrap();
        conserved(&l).await;

        // A stake that cannot cover the penalty: refused, nothing changes (not even the void).
        let err = l.slash(&j, &stake, &consumer, 5_000).await.unwrap_err();
        assert_eq!(err, LedgerError::InsufficientFunds { account: stake.clone(), needed: 5_000, available: 1_000 });
        assert_eq!(l.transfer(&j).await.unwrap().state, TransferState::Pending);

        let s = l.slash(&j, &stake, &consumer, 400).await.unwrap();
        let expected = vec![
            Movement { from: stake.clone(), to: consumer.clone(), amount: 400 },
            Movement { from: ESCROW_ACCOUNT.into(), to: consumer.clone(), amount: 200 },
        ];
        assert_eq!((s.operation, s.replayed, &s.movements), (Operation::Slash, false, &expected));
        assert_eq!(l.balance(&stake).await.unwrap(), 600);
        assert_eq!(l.balance(&consumer).await.unwrap(), 500 - 50 + 400);
        assert_eq!(l.transfer(&j).await.unwrap().state, TransferState::Voided);
        conserved(&l).await;

        // Once per job: the same slash replays, another one conflicts, nothing moves.
        let again = l.slash(&j, &stake, &consumer, 400).await.unwrap();
        assert_eq!((again.replayed, &again.movements), (true, &expected));
        let err = l.slash(&j, &stake, &consumer, 300).await.unwrap_err();
        assert_eq!(err, LedgerError::IdempotencyConflict { job_id: j, operation: Operation::Slash });
        // The slash's void is the job's void.
        assert!(l.void(&j).await.unwrap().replayed);
        assert!(matches!(l.post(&j).await, Err(LedgerError::InvalidTransition { from: TransferState::Voided, .. })));
        assert_eq!(l.balance(&stake).await.unwrap(), 600);
        assert_eq!(l.balance(&consumer).await.unwrap(), 850);
        // A posted job cannot be slashed.
        let err = l.slash(&posted, &stake, &consumer, 10).await.unwrap_err();
        assert!(matches!(
            err,
            LedgerError::InvalidTransition { from: TransferState::Posted, to: TransferState::Voided, .. }
        ));
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn idempotency_and_release_once() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, _) = accounts();
        let (a, b, c) = (job(), job(), job());
        l.deposit(&consumer, 1_000).await.unwrap();

        let first = l.open_pending(&a, &consumer, &provider, 100, FAR).await.unwrap();
        let again = l.open_pending(&a, &consumer, &provider, 100, FAR).await.unwrap();
        assert!(again.replayed);
        assert_eq!((&again.transfer_id, &again.movements), (&first.transfer_id, &first.movements));
        assert_eq!(l.balance(&consumer).await.unwrap(), 900, "a replay moves nothing");
        let conflict = LedgerError::IdempotencyConflict { job_id: a, operation: Operation::Open };
        assert_eq!(l.open_pending(&a, &consumer, &provider, 101, FAR).await.unwrap_err(), conflict);
        assert_eq!(l.open_pending(&a, &consumer, "someone-else", 100, FAR).await.unwrap_err(), conflict);
        assert_eq!(l.open_pending(&a, &consumer, &provider, 100, FAR + 1).await.unwrap_err(), conflict);

        let post = l.post(&a).await.unwrap();
        let post2 = l.post(&a).await.unwrap();
        assert!(!post.replayed && post2.replayed);
        assert_eq!(post.movements, post2.movements);
        let err = l.void(&a).await.unwrap_err();
        assert_eq!(
            err,
            LedgerError::InvalidTransition { job_id: a, from: TransferState::Posted, to: TransferState::Voided }
        );
        assert_eq!(l.balance(&provider).await.unwrap(), 100);

        l.open_pending(&b, &consumer, &provider, 100, FAR).await.unwrap();
        assert!(!l.void(&b).await.unwrap().replayed);
        assert!(l.void(&b).await.unwrap().replayed);
        let err = l.post(&b).await.unwrap_err();
        assert_eq!(
            err,
            LedgerError::InvalidTransition { job_id: b, from: TransferState::Voided, to: TransferState::Posted }
        );

        // Verdicts: same verdict replays, another conflicts; the verdict binds the release.
        l.open_pending(&c, &consumer, &provider, 100, FAR).await.unwrap();
        assert!(!l.record_verdict(&c, Verdict::Rejected, &[3; 32]).await.unwrap().replayed);
        assert!(l.record_verdict(&c, Verdict::Rejected, &[3; 32]).await.unwrap().replayed);
        let conflict = LedgerError::IdempotencyConflict { job_id: c, operation: Operation::Verdict };
        assert_eq!(l.record_verdict(&c, Verdict::Approved, &[3; 32]).await.unwrap_err(), conflict);
        assert_eq!(l.record_verdict(&c, Verdict::Rejected, &[4; 32]).await.unwrap_err(), conflict);
        let err = l.post(&c).await.unwrap_err();
        assert_eq!(
            err,
            LedgerError::VerdictConflict { job_id: c, verdict: Verdict::Rejected, operation: Operation::Post }
        );
        // A refused operation leaves no key: the void still goes through.
        assert!(!l.void(&c).await.unwrap().replayed);

        let unknown = job();
        assert_eq!(l.post(&unknown).await.unwrap_err(), LedgerError::UnknownJob { job_id: unknown });
        assert_eq!(l.void(&unknown).await.unwrap_err(), LedgerError::UnknownJob { job_id: unknown });
        assert!(matches!(
            l.record_verdict(&unknown, Verdict::Approved, &[0; 32]).await,
            Err(LedgerError::UnknownJob { .. })
        ));
        assert_eq!(l.balance(&consumer).await.unwrap(), 900);
        assert_eq!(l.balance(&provider).await.unwrap(), 100);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_release_once() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, _) = accounts();
        let j = job();
        l.deposit(&consumer, 1_000).await.unwrap();
        l.open_pending(&j, &consumer, &provider, 250, FAR).await.unwrap();
        let tasks: Vec<_> = (0..1_000)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.post(&j).await })
            })
            .collect();
        let mut fresh = 0;
        for task in tasks {
            let outcome = task.await.expect("task").unwrap_or_else(|e| panic!("{}: post: {e}", t.name));
            assert_eq!(
                outcome.movements,
                vec![Movement { from: ESCROW_ACCOUNT.into(), to: provider.clone(), amount: 250 }]
            );
            fresh += usize::from(!outcome.replayed);
        }
        assert_eq!(fresh, 1, "{}: exactly one post moves money", t.name);
        assert_eq!(l.balance(&provider).await.unwrap(), 250);
        assert_eq!(l.balance(&consumer).await.unwrap(), 750);
        assert_eq!(l.transfer(&j).await.unwrap().state, TransferState::Posted);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_posts_and_voids_release_each_job_once() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, _) = accounts();
        let jobs: Vec<JobId> = (0..20).map(|_| job()).collect();
        l.deposit(&consumer, 20 * 10).await.unwrap();
        for j in &jobs {
            l.open_pending(j, &consumer, &provider, 10, FAR).await.unwrap();
        }
        // Every job gets 10 posts and 10 voids at once, all jobs sharing the same accounts.
        let tasks: Vec<_> = jobs
            .iter()
            .flat_map(|j| (0..20).map(move |i| (*j, i % 2 == 0)))
            .map(|(j, post)| {
                let l = l.clone();
                tokio::spawn(async move { (j, if post { l.post(&j).await } else { l.void(&j).await }) })
            })
            .collect();
        let mut fresh = std::collections::HashMap::new();
        for task in tasks {
            let (j, result) = task.await.expect("task");
            match result {
                Ok(o) if !o.replayed => *fresh.entry(j).or_insert(0) += 1,
                Ok(_) | Err(LedgerError::InvalidTransition { .. }) => {}
                Err(e) => panic!("{}: {e}", t.name),
            }
        }
        assert_eq!(fresh.len(), jobs.len());
        assert!(fresh.values().all(|&n| n == 1), "{}: a job released twice", t.name);
        let mut paid = 0;
        for j in &jobs {
            if l.transfer(j).await.unwrap().state == TransferState::Posted {
                paid += 10;
            }
        }
        assert_eq!(l.balance(&provider).await.unwrap(), paid);
        assert_eq!(l.balance(&consumer).await.unwrap(), 200 - paid);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn crash_between_verdict_and_release_recovers_once() {
    for t in targets("ledger").await {
        let (consumer, provider, _) = accounts();
        let (approved, rejected, undecided) = (job(), job(), job());
        {
            let l = t.ledger().await;
            l.deposit(&consumer, 1_000).await.unwrap();
            for j in [&approved, &rejected, &undecided] {
                l.open_pending(j, &consumer, &provider, 100, FAR).await.unwrap();
            }
            l.record_verdict(&approved, Verdict::Approved, &[5; 32]).await.unwrap();
            l.record_verdict(&rejected, Verdict::Rejected, &[6; 32]).await.unwrap();
            // The crash: the ledger goes away before any release is written.
            drop(l);
        }
        let l = t.ledger().await;
        conserved(&l).await;
        let report = l.recover().await.unwrap();
        assert_eq!((report.posted, report.voided), (vec![approved], vec![rejected]));
        assert_eq!(l.balance(&provider).await.unwrap(), 100);
        assert_eq!(l.balance(&consumer).await.unwrap(), 800);
        assert_eq!(l.transfer(&undecided).await.unwrap().state, TransferState::Pending);
        conserved(&l).await;
        let again = l.recover().await.unwrap();
        assert!(again.posted.is_empty() && again.voided.is_empty(), "{}: second recovery changed {again:?}", t.name);
        assert_eq!(l.balance(&provider).await.unwrap(), 100);
        assert_eq!(l.balance(&consumer).await.unwrap(), 800);
        // A late post of the approved job is a replay, not a second payment.
        assert!(l.post(&approved).await.unwrap().replayed);
        assert_eq!(l.balance(&provider).await.unwrap(), 100);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}

#[tokio::test]
async fn insufficient_funds_and_bad_input_change_nothing() {
    for t in targets("ledger").await {
        let l = t.ledger().await;
        let (consumer, provider, _) = accounts();
        let j = job();
        l.deposit(&consumer, 100).await.unwrap();
        let err = l.open_pending(&j, &consumer, &provider, 101, FAR).await.unwrap_err();
        assert_eq!(err, LedgerError::InsufficientFunds { account: consumer.clone(), needed: 101, available: 100 });
        assert_eq!(l.balance(&consumer).await.unwrap(), 100);
        assert_eq!(l.balance(ESCROW_ACCOUNT).await.unwrap(), 0);
        assert_eq!(l.balance(&provider).await.unwrap(), 0);
        assert_eq!(l.total_deposited().await.unwrap(), 100);
        assert!(matches!(l.transfer(&j).await, Err(LedgerError::UnknownJob { .. })));
        conserved(&l).await;
        // Nothing was recorded under the job's key, so it can be opened once funded.
        l.deposit(&consumer, 1).await.unwrap();
        assert!(!l.open_pending(&j, &consumer, &provider, 101, FAR).await.unwrap().replayed);
        assert_eq!(l.balance(&consumer).await.unwrap(), 0);
        conserved(&l).await;

        // Bad input is refused before touching the database.
        let k = job();
        for (who, bad) in [("escrow", ESCROW_ACCOUNT), ("empty", ""), ("space", "a b"), ("long", &"x".repeat(129))] {
            assert!(
                matches!(l.open_pending(&k, bad, &provider, 1, FAR).await, Err(LedgerError::InvalidAccount { .. })),
                "{who}"
            );
            assert!(matches!(l.deposit(bad, 1).await, Err(LedgerError::InvalidAccount { .. })), "{who}");
        }
        let too_big = MAX_AMOUNT + 1;
        assert!(matches!(l.deposit(&consumer, too_big).await, Err(LedgerError::OutOfRange { field: "amount", .. })));
        assert!(matches!(
            l.open_pending(&k, &consumer, &provider, 0, u64::MAX).await,
            Err(LedgerError::OutOfRange { field: "deadline_unix_ms", .. })
        ));
        // The total supply stays within i64.
        let rich = format!("{consumer}-rich");
        l.deposit(&rich, MAX_AMOUNT - 101).await.unwrap();
        assert_eq!(
            l.deposit(&rich, 1).await.unwrap_err(),
            LedgerError::SupplyOverflow { minted: MAX_AMOUNT, amount: 1 }
        );
        assert_eq!(l.total_deposited().await.unwrap(), MAX_AMOUNT);
        conserved(&l).await;
        l.close().await;
        t.finish().await;
    }
}
