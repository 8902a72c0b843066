//! Model test of the escrow ledger with injected crashes (docs/reliability.md, "Ledger
//! model"). Random operation sequences (deposit, open_pending, post, void, slash,
//! void_expired, record_verdict, settle, recover) run against the real ledger and against a
//! plain in-memory model; half of the steps are given a crash at a random write point (a
//! [`FaultPlan`]), after which the ledger is reopened and `recover` runs, as a restarted
//! verifier would.
//!
//! After every step: the ledger's state (every balance, the total deposited, every job's
//! transfer state, verdict and amount) equals the model's; `conservation_check` passes; no
//! job leaves `posted` or `voided` (at most one release); the operation's result (outcome,
//! replay flag, movements, error kind) equals the model's unless the step crashed; after a
//! crash the state equals the model having applied exactly the transactions the ledger
//! committed; after every `recover` no job with a verdict is still pending (every approved
//! job is released).
//!
//! Runs on SQLite, and on PostgreSQL too when `MATPROOF_TEST_POSTGRES_URL` is set. Cases and
//! length: `MATPROOF_LEDGER_MODEL_CASES` (default 64), `MATPROOF_LEDGER_MODEL_STEPS` (default
//! at most 60 per case).
#![allow(clippy::too_many_lines)] // long scenarios read top to bottom
#![cfg(feature = "service")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use matproof_protocol::receipt::Verdict;
use matproof_verifier::ledger::{
    ESCROW_ACCOUNT, FaultPlan, JobId, Ledger, LedgerError, Movement, Outcome, RecoveryReport, TransferState,
    verdict_target,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::{Connection, Executor};

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const JOBS: usize = 6;

fn job_id(j: usize) -> JobId {
    JobId([j as u8 + 1; 32])
}

#[derive(Debug, Clone)]
enum Op {
    Deposit { account: usize, amount: u64 },
    Open { job: usize, consumer: usize, provider: usize, amount: u64, deadline: u64 },
    Post { job: usize },
    Void { job: usize },
    Slash { job: usize, stake: usize, beneficiary: usize, amount: u64 },
    VoidExpired { now: u64 },
    Verdict { job: usize, approved: bool, hash: u8 },
    Settle { job: usize, approved: bool, hash: u8 },
    Recover,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Deposit { .. } => "deposit",
            Op::Open { .. } => "open_pending",
            Op::Post { .. } => "post",
            Op::Void { .. } => "void",
            Op::Slash { .. } => "slash",
            Op::VoidExpired { .. } => "void_expired",
            Op::Verdict { .. } => "record_verdict",
            Op::Settle { .. } => "settle",
            Op::Recover => "recover",
        }
    }
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// Crash at this write point of the operation (if it reaches it).
    crash: Option<u64>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let acct = 0..NAMES.len();
    let job = 0..JOBS;
    prop_oneof![
        4 => (acct.clone(), 0u64..200).prop_map(|(account, amount)| Op::Deposit { account, amount }),
        4 => (job.clone(), acct.clone(), acct.clone(), 0u64..40, prop::sample::select(vec![100u64, 200, 300]))
            .prop_map(|(job, consumer, provider, amount, deadline)| Op::Open { job, consumer, provider, amount, deadline }),
        2 => job.clone().prop_map(|job| Op::Post { job }),
        2 => job.clone().prop_map(|job| Op::Void { job }),
        2 => (job.clone(), acct.clone(), acct, 0u64..30)
            .prop_map(|(job, stake, beneficiary, amount)| Op::Slash { job, stake, beneficiary, amount }),
        1 => (0u64..400).prop_map(|now| Op::VoidExpired { now }),
        3 => (job.clone(), any::<bool>(), 0u8..2).prop_map(|(job, approved, hash)| Op::Verdict { job, approved, hash }),
        4 => (job, any::<bool>(), 0u8..2).prop_map(|(job, approved, hash)| Op::Settle { job, approved, hash }),
        1 => Just(Op::Recover),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (op_strategy(), prop::option::weighted(0.5, 0u64..12)).prop_map(|(op, crash)| Step { op, crash })
}

// ---------------------------------------------------------------------------------------
// The model.

/// An error's kind, for comparison (the model does not build messages).
fn kind(e: &LedgerError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{', '(']).next().unwrap_or_default().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Open,
    Post,
    Void,
    Slash,
    Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MTransfer {
    consumer: String,
    provider: String,
    amount: u64,
    deadline: u64,
    state: TransferState,
    verdict: Option<(Verdict, u8)>,
}

type R<T> = Result<T, String>;

#[derive(Debug, Clone, Default)]
struct Model {
    balances: BTreeMap<String, u64>,
    minted: u64,
    transfers: BTreeMap<usize, MTransfer>,
    keys: BTreeMap<(Key, usize), String>,
    journal: BTreeMap<(Key, usize), Vec<Movement>>,
    /// Transactions that may still commit (`None`: unlimited). A crash leaves exactly the
    /// transactions the ledger committed; the model then stops at the next one.
    budget: Option<u64>,
}

fn mv(from: &str, to: &str, amount: u64) -> Movement {
    Movement { from: from.to_string(), to: to.to_string(), amount }
}

impl Model {
    fn commit(&mut self, mut next: Model) -> R<()> {
        if let Some(b) = &mut self.budget {
            if *b == 0 {
                return Err("Crash".into());
            }
            *b -= 1;
        }
        next.budget = self.budget;
        *self = next;
        Ok(())
    }

    fn balance(&self, a: &str) -> u64 {
        self.balances.get(a).copied().unwrap_or(0)
    }

    /// Net per account; debits refused when the balance is short.
    fn apply(&mut self, moves: &[Movement]) -> R<()> {
        let mut net: BTreeMap<&str, i128> = BTreeMap::new();
        for m in moves {
            *net.entry(&m.from).or_default() -= i128::from(m.amount);
            *net.entry(&m.to).or_default() += i128::from(m.amount);
        }
        for (account, delta) in net {
            if delta < 0 {
                let needed = (-delta) as u64;
                if !self.balances.contains_key(account) || self.balance(account) < needed {
                    return Err("InsufficientFunds".into());
                }
                *self.balances.get_mut(account).unwrap() -= needed;
            } else if delta > 0 {
                *self.balances.entry(account.to_string()).or_default() += delta as u64;
            }
        }
        Ok(())
    }

    fn deposit(&mut self, account: &str, amount: u64) -> R<u64> {
        let mut next = self.clone();
        next.minted += amount;
        *next.balances.entry(account.to_string()).or_default() += amount;
        let balance = next.balance(account);
        self.commit(next)?;
        Ok(balance)
    }

    fn open(
        &mut self,
        job: usize,
        consumer: &str,
        provider: &str,
        amount: u64,
        deadline: u64,
    ) -> R<(Vec<Movement>, bool)> {
        let key = (Key::Open, job);
        let body = format!("{consumer}|{provider}|{amount}|{deadline}");
        if let Some(b) = self.keys.get(&key) {
            return if *b == body { Ok((self.journal[&key].clone(), true)) } else { Err("IdempotencyConflict".into()) };
        }
        let mut next = self.clone();
        next.transfers.insert(
            job,
            MTransfer {
                consumer: consumer.into(),
                provider: provider.into(),
                amount,
                deadline,
                state: TransferState::Pending,
                verdict: None,
            },
        );
        let moves = vec![mv(consumer, ESCROW_ACCOUNT, amount)];
        next.apply(&moves)?;
        next.keys.insert(key, body);
        next.journal.insert(key, moves.clone());
        self.commit(next)?;
        Ok((moves, false))
    }

    /// The body of `post`/`void`, within `next`, without the key check.
    fn release_in(next: &mut Model, job: usize, to: TransferState) -> R<Vec<Movement>> {
        let t = next.transfers.get(&job).ok_or("UnknownJob")?.clone();
        let forbidden = if to == TransferState::Posted { Verdict::Rejected } else { Verdict::Approved };
        if t.state != TransferState::Pending {
            return Err("InvalidTransition".into());
        }
        if t.verdict.map(|v| v.0) == Some(forbidden) {
            return Err("VerdictConflict".into());
        }
        next.transfers.get_mut(&job).unwrap().state = to;
        let payee = if to == TransferState::Posted { &t.provider } else { &t.consumer };
        let moves = vec![mv(ESCROW_ACCOUNT, payee, t.amount)];
        next.apply(&moves)?;
        let key = (if to == TransferState::Posted { Key::Post } else { Key::Void }, job);
        next.keys.insert(key, String::new());
        next.journal.insert(key, moves.clone());
        Ok(moves)
    }

    fn release(&mut self, job: usize, to: TransferState) -> R<(Vec<Movement>, bool)> {
        let key = (if to == TransferState::Posted { Key::Post } else { Key::Void }, job);
        if self.keys.contains_key(&key) {
            return Ok((self.journal[&key].clone(), true));
        }
        let mut next = self.clone();
        let moves = Self::release_in(&mut next, job, to)?;
        self.commit(next)?;
        Ok((moves, false))
    }

    fn slash(&mut self, job: usize, stake: &str, beneficiary: &str, amount: u64) -> R<(Vec<Movement>, bool)> {
        let key = (Key::Slash, job);
        let body = format!("{stake}|{beneficiary}|{amount}");
        let void_journal = |m: &Model| m.journal.get(&(Key::Void, job)).cloned().unwrap_or_default();
        if let Some(b) = self.keys.get(&key) {
            if *b != body {
                return Err("IdempotencyConflict".into());
            }
            let mut moves = self.journal[&key].clone();
            moves.extend(void_journal(self));
            return Ok((moves, true));
        }
        let t = self.transfers.get(&job).ok_or("UnknownJob")?.clone();
        let mut next = self.clone();
        match t.state {
            TransferState::Posted => return Err("InvalidTransition".into()),
            TransferState::Pending => {
                if next.keys.contains_key(&(Key::Void, job)) {
                    return Err("Corrupt".into());
                }
                Self::release_in(&mut next, job, TransferState::Voided)?;
            }
            TransferState::Voided => {}
        }
        let penalty = vec![mv(stake, beneficiary, amount)];
        next.apply(&penalty)?;
        next.keys.insert(key, body);
        next.journal.insert(key, penalty.clone());
        let mut moves = penalty;
        moves.extend(void_journal(&next));
        self.commit(next)?;
        Ok((moves, false))
    }

    fn verdict(&mut self, job: usize, verdict: Verdict, hash: u8) -> R<bool> {
        let key = (Key::Verdict, job);
        let body = format!("{}|{hash}", verdict.as_str());
        if let Some(b) = self.keys.get(&key) {
            return if *b == body { Ok(true) } else { Err("IdempotencyConflict".into()) };
        }
        let t = self.transfers.get(&job).ok_or("UnknownJob")?;
        if !(t.state == TransferState::Pending || t.state == verdict_target(verdict)) || t.verdict.is_some() {
            return Err("InvalidTransition".into());
        }
        let mut next = self.clone();
        next.transfers.get_mut(&job).unwrap().verdict = Some((verdict, hash));
        next.keys.insert(key, body);
        self.commit(next)?;
        Ok(false)
    }

    fn settle(&mut self, job: usize, verdict: Verdict, hash: u8) -> R<(Vec<Movement>, bool)> {
        self.verdict(job, verdict, hash)?;
        self.release(job, verdict_target(verdict))
    }

    fn recover(&mut self) -> R<(Vec<usize>, Vec<usize>)> {
        let todo: Vec<(usize, Verdict)> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.state == TransferState::Pending && t.verdict.is_some())
            .map(|(j, t)| (*j, t.verdict.unwrap().0))
            .collect();
        let (mut posted, mut voided) = (Vec::new(), Vec::new());
        for (job, v) in todo {
            let (_, replayed) = self.release(job, verdict_target(v))?;
            if !replayed {
                if v == Verdict::Approved { posted.push(job) } else { voided.push(job) }
            }
        }
        Ok((posted, voided))
    }

    fn void_expired(&mut self, now: u64) -> R<Vec<usize>> {
        let mut todo: Vec<(u64, usize)> = self
            .transfers
            .iter()
            .filter(|(_, t)| {
                t.state == TransferState::Pending
                    && t.deadline < now
                    && t.verdict.map(|v| v.0) != Some(Verdict::Approved)
            })
            .map(|(j, t)| (t.deadline, *j))
            .collect();
        todo.sort();
        let mut voided = Vec::new();
        for (_, job) in todo {
            match self.release(job, TransferState::Voided) {
                Ok((_, false)) => voided.push(job),
                Ok((_, true)) => {}
                Err(e) if e == "InvalidTransition" || e == "VerdictConflict" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(voided)
    }
}

// ---------------------------------------------------------------------------------------
// Running a step on both.

/// What an operation returned, in comparable form.
#[derive(Debug, PartialEq)]
enum Answer {
    Balance(u64),
    Moved { movements: Vec<Movement>, replayed: bool },
    Verdict { replayed: bool },
    Jobs(Vec<usize>),
    Recovered(Vec<usize>, Vec<usize>),
}

fn job_index(id: &JobId) -> usize {
    usize::from(id.0[0]) - 1
}

fn verdict_of(approved: bool) -> Verdict {
    if approved { Verdict::Approved } else { Verdict::Rejected }
}

async fn run_ledger(l: &Ledger, op: &Op) -> Result<Answer, LedgerError> {
    let moved = |o: Outcome| Answer::Moved { movements: o.movements, replayed: o.replayed };
    Ok(match *op {
        Op::Deposit { account, amount } => Answer::Balance(l.deposit(NAMES[account], amount).await?),
        Op::Open { job, consumer, provider, amount, deadline } => {
            moved(l.open_pending(&job_id(job), NAMES[consumer], NAMES[provider], amount, deadline).await?)
        }
        Op::Post { job } => moved(l.post(&job_id(job)).await?),
        Op::Void { job } => moved(l.void(&job_id(job)).await?),
        Op::Slash { job, stake, beneficiary, amount } => {
            moved(l.slash(&job_id(job), NAMES[stake], NAMES[beneficiary], amount).await?)
        }
        Op::VoidExpired { now } => Answer::Jobs(l.void_expired(now).await?.iter().map(job_index).collect()),
        Op::Verdict { job, approved, hash } => Answer::Verdict {
            replayed: l.record_verdict(&job_id(job), verdict_of(approved), &[hash; 32]).await?.replayed,
        },
        Op::Settle { job, approved, hash } => moved(l.settle(&job_id(job), verdict_of(approved), &[hash; 32]).await?),
        Op::Recover => {
            let RecoveryReport { posted, voided } = l.recover().await?;
            Answer::Recovered(posted.iter().map(job_index).collect(), voided.iter().map(job_index).collect())
        }
    })
}

fn run_model(m: &mut Model, op: &Op) -> R<Answer> {
    let moved = |(movements, replayed): (Vec<Movement>, bool)| Answer::Moved { movements, replayed };
    Ok(match *op {
        Op::Deposit { account, amount } => Answer::Balance(m.deposit(NAMES[account], amount)?),
        Op::Open { job, consumer, provider, amount, deadline } => {
            moved(m.open(job, NAMES[consumer], NAMES[provider], amount, deadline)?)
        }
        Op::Post { job } => moved(m.release(job, TransferState::Posted)?),
        Op::Void { job } => moved(m.release(job, TransferState::Voided)?),
        Op::Slash { job, stake, beneficiary, amount } => {
            moved(m.slash(job, NAMES[stake], NAMES[beneficiary], amount)?)
        }
        Op::VoidExpired { now } => Answer::Jobs(m.void_expired(now)?),
        Op::Verdict { job, approved, hash } => {
            Answer::Verdict { replayed: m.verdict(job, verdict_of(approved), hash)? }
        }
        Op::Settle { job, approved, hash } => moved(m.settle(job, verdict_of(approved), hash)?),
        Op::Recover => {
            let (p, v) = m.recover()?;
            Answer::Recovered(p, v)
        }
    })
}

/// Counts for the report, across cases.
#[derive(Debug, Default)]
struct Stats {
    cases: u64,
    steps: u64,
    crashes: u64,
    recoveries: u64,
    /// (operation, write point) → (times passed without crashing, times crashed at).
    points: BTreeMap<(&'static str, &'static str), (u64, u64)>,
    /// Jobs that recovery released after a crash left them approved (or rejected) and pending.
    released_by_recovery: u64,
    violations: u64,
}

/// The ledger's state, read through its API, in the model's terms.
async fn observe(l: &Ledger) -> Result<View, LedgerError> {
    let mut balances = BTreeMap::new();
    for a in NAMES.iter().chain([&ESCROW_ACCOUNT]) {
        balances.insert(a.to_string(), l.balance(a).await?);
    }
    let mut transfers = BTreeMap::new();
    for j in 0..JOBS {
        match l.transfer(&job_id(j)).await {
            Ok(t) => {
                transfers.insert(j, (t.state, t.verdict, t.amount));
            }
            Err(LedgerError::UnknownJob { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((balances, l.total_deposited().await?, transfers))
}

/// Balances, total deposited, and each job's (state, verdict, amount).
type View = (BTreeMap<String, u64>, u64, BTreeMap<usize, (TransferState, Option<Verdict>, u64)>);

fn model_view(m: &Model) -> View {
    let balances = NAMES.iter().chain([&ESCROW_ACCOUNT]).map(|a| (a.to_string(), m.balance(a))).collect();
    let transfers = m.transfers.iter().map(|(j, t)| (*j, (t.state, t.verdict.map(|v| v.0), t.amount))).collect();
    (balances, m.minted, transfers)
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Checks the ledger against the model and the invariants; `released`: states seen before
/// (a job once posted or voided must stay so).
async fn check_state(
    l: &Ledger,
    m: &Model,
    released: &mut BTreeMap<usize, TransferState>,
    context: &str,
) -> Result<(), TestCaseError> {
    l.conservation_check().await.map_err(|e| fail(format!("{context}: conservation: {e}")))?;
    let seen = observe(l).await.map_err(|e| fail(format!("{context}: observe: {e}")))?;
    let want = model_view(m);
    if seen != want {
        return Err(fail(format!("{context}: ledger state {seen:?}\n model state {want:?}")));
    }
    for (j, (state, _, _)) in &seen.2 {
        if *state != TransferState::Pending
            && let Some(before) = released.insert(*j, *state)
            && before != *state
        {
            return Err(fail(format!("{context}: job {j} released twice: {before} then {state}")));
        }
    }
    Ok(())
}

/// Runs one sequence; returns how many crashes fired.
async fn run_case(url: &str, steps: &[Step], stats: &Mutex<Stats>) -> Result<u64, TestCaseError> {
    let plan = FaultPlan::new();
    let open = |url: String, plan: Arc<FaultPlan>| async move {
        Ledger::open(&url).await.map(|l| l.with_fault_plan(plan)).map_err(|e| fail(format!("open: {e}")))
    };
    let mut l = open(url.to_string(), plan.clone()).await?;
    let mut m = Model::default();
    let mut released = BTreeMap::new();
    let mut local = Stats::default();
    for (n, step) in steps.iter().enumerate() {
        let context = format!("step {n} {:?} crash {:?}", step.op, step.crash);
        plan.arm(step.crash);
        let got = run_ledger(&l, &step.op).await;
        let trace = plan.trace();
        let fired = plan.fired();
        local.steps += 1;
        for (i, label) in trace.iter().enumerate() {
            let e = local.points.entry((step.op.name(), label)).or_default();
            if fired.is_some() && i + 1 == trace.len() {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
        match fired {
            None => {
                let want = run_model(&mut m, &step.op);
                let got = got.map_err(|e| kind(&e));
                if got != want {
                    return Err(fail(format!("{context}: ledger answered {got:?}, model {want:?}")));
                }
                check_state(&l, &m, &mut released, &context).await?;
            }
            Some(point) => {
                local.crashes += 1;
                if !matches!(got, Err(LedgerError::InjectedFault { .. })) {
                    return Err(fail(format!("{context}: crashed at {point} but answered {got:?}")));
                }
                // The model applies exactly the transactions that committed before the crash.
                m.budget = Some(plan.commits());
                let _ = run_model(&mut m, &step.op);
                m.budget = None;
                // Restart: drop the pool (uncommitted work is gone), reopen, recover.
                plan.arm(None);
                l.close().await;
                l = open(url.to_string(), plan.clone()).await?;
                check_state(&l, &m, &mut released, &format!("{context}: after the crash at {point}")).await?;
                let pending_with_verdict =
                    m.transfers.values().filter(|t| t.state == TransferState::Pending && t.verdict.is_some()).count();
                let got = l.recover().await.map_err(|e| fail(format!("{context}: recover: {e}")))?;
                let want = m.recover().map_err(|e| fail(format!("{context}: model recover: {e}")))?;
                let got = (
                    got.posted.iter().map(job_index).collect::<Vec<_>>(),
                    got.voided.iter().map(job_index).collect::<Vec<_>>(),
                );
                if got != want {
                    return Err(fail(format!("{context}: recover released {got:?}, model {want:?}")));
                }
                local.recoveries += 1;
                local.released_by_recovery += pending_with_verdict as u64;
                check_state(&l, &m, &mut released, &format!("{context}: after recovery")).await?;
            }
        }
        if matches!(step.op, Op::Recover) || fired.is_some() {
            // Every job with a verdict is released once recovery ran.
            for (j, t) in &m.transfers {
                if t.verdict.is_some() && t.state == TransferState::Pending {
                    return Err(fail(format!("{context}: job {j} has verdict {:?} and is still pending", t.verdict)));
                }
            }
        }
    }
    l.close().await;
    let crashes = local.crashes;
    let mut s = stats.lock().unwrap();
    s.cases += 1;
    s.steps += local.steps;
    s.crashes += local.crashes;
    s.recoveries += local.recoveries;
    s.released_by_recovery += local.released_by_recovery;
    for (k, (p, c)) in local.points {
        let e = s.points.entry(k).or_default();
        e.0 += p;
        e.1 += c;
    }
    Ok(crashes)
}

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the model test on databases made by `fresh` (one per case).
fn run_on<F, Fut>(backend: &str, fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (String, Finish)>,
{
    let cases = env("MATPROOF_LEDGER_MODEL_CASES", 64);
    let max_steps = env("MATPROOF_LEDGER_MODEL_STEPS", 60) as usize;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stats = Mutex::new(Stats::default());
    let start = std::time::Instant::now();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&prop::collection::vec(step_strategy(), 1..=max_steps), |steps| {
        rt.block_on(async {
            let (url, finish) = fresh().await;
            let r = run_case(&url, &steps, &stats).await;
            finish().await;
            r.map(drop)
        })
    });
    let mut s = stats.lock().unwrap();
    if result.is_err() {
        s.violations += 1;
    }
    let never_crashed: Vec<_> = s.points.iter().filter(|(_, (_, c))| *c == 0).map(|(k, _)| *k).collect();
    println!(
        "ledger model on {backend}: {} cases, {} steps, {} crashes injected, {} recoveries ({} jobs left pending with a verdict, all released by recovery), {} violations, {:.1} s",
        s.cases,
        s.steps,
        s.crashes,
        s.recoveries,
        s.released_by_recovery,
        s.violations,
        start.elapsed().as_secs_f64()
    );
    println!("write points (operation, point): passed / crashed at");
    for ((op, point), (p, c)) in &s.points {
        println!("  {op:<15} {point:<26} {p:>6} / {c}");
    }
    if !never_crashed.is_empty() {
        println!("  never crashed at (too few steps for them): {never_crashed:?}");
    }
    if let Err(e) = result {
        panic!("{backend}: {e}");
    }
}

type Finish = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

async fn fresh_sqlite() -> (String, Finish) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("ledger.db").display());
    let finish: Finish = Box::new(move || {
        Box::pin(async move {
            drop(dir);
        })
    });
    (url, finish)
}

async fn fresh_postgres(base: String) -> (String, Finish) {
    let schema = format!("mp_model_{:016x}", rand::random::<u64>());
    let mut c = sqlx::PgConnection::connect(&base).await.expect("connect to PostgreSQL");
    c.execute(format!("CREATE SCHEMA {schema}").as_str()).await.expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    let finish: Finish = Box::new(move || {
        Box::pin(async move {
            c.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await.expect("drop schema");
        })
    });
    (url, finish)
}

/// Scenarios whose last operation succeeds (or replays) and so passes every write point of
/// its path: `(name, prefix, operation)`.
fn scenarios() -> Vec<(&'static str, Vec<Op>, Op)> {
    let dep = |account, amount| Op::Deposit { account, amount };
    let open = |job, deadline| Op::Open { job, consumer: 0, provider: 1, amount: 30, deadline };
    let verdict = |job, approved| Op::Verdict { job, approved, hash: 1 };
    vec![
        ("deposit", vec![], dep(0, 100)),
        ("open_pending", vec![dep(0, 100)], open(0, 100)),
        ("open_pending replay", vec![dep(0, 100), open(0, 100)], open(0, 100)),
        ("post", vec![dep(0, 100), open(0, 100)], Op::Post { job: 0 }),
        ("post replay", vec![dep(0, 100), open(0, 100), Op::Post { job: 0 }], Op::Post { job: 0 }),
        ("void", vec![dep(0, 100), open(0, 100)], Op::Void { job: 0 }),
        (
            "slash pending",
            vec![dep(0, 100), dep(2, 50), open(0, 100)],
            Op::Slash { job: 0, stake: 2, beneficiary: 3, amount: 20 },
        ),
        (
            "slash voided",
            vec![dep(0, 100), dep(2, 50), open(0, 100), Op::Void { job: 0 }],
            Op::Slash { job: 0, stake: 2, beneficiary: 3, amount: 20 },
        ),
        ("record_verdict approved", vec![dep(0, 100), open(0, 100)], verdict(0, true)),
        ("record_verdict rejected", vec![dep(0, 100), open(0, 100)], verdict(0, false)),
        ("settle approved", vec![dep(0, 100), open(0, 100)], Op::Settle { job: 0, approved: true, hash: 1 }),
        ("settle rejected", vec![dep(0, 100), open(0, 100)], Op::Settle { job: 0, approved: false, hash: 1 }),
        ("void_expired", vec![dep(0, 100), open(0, 100), open(1, 200), open(2, 300)], Op::VoidExpired { now: 250 }),
        ("recover", vec![dep(0, 100), open(0, 100), open(1, 200), verdict(0, true), verdict(1, false)], Op::Recover),
    ]
}

/// For every scenario, crashes its last operation at write point 0, 1, 2, … until it runs
/// through uncrashed; each run on a fresh database, recovered and checked like a random case.
fn sweep<F, Fut>(backend: &str, fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (String, Finish)>,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stats = Mutex::new(Stats::default());
    let start = std::time::Instant::now();
    let mut runs = 0;
    for (name, prefix, last) in scenarios() {
        let mut points = 0;
        for k in 0u64.. {
            let mut steps: Vec<Step> = prefix.iter().map(|op| Step { op: op.clone(), crash: None }).collect();
            steps.push(Step { op: last.clone(), crash: Some(k) });
            let crashed = rt.block_on(async {
                let (url, finish) = fresh().await;
                let r = run_case(&url, &steps, &stats).await;
                finish().await;
                r
            });
            runs += 1;
            match crashed {
                Ok(0) => break,
                Ok(_) => points += 1,
                Err(e) => panic!("{backend}: scenario {name}, crash at point {k}: {e}"),
            }
        }
        assert!(points > 0, "{name}: no write point");
        println!("  {name:<26} crashed at each of its {points} write points, recovered, checked");
    }
    let s = stats.lock().unwrap();
    println!(
        "crash sweep on {backend}: {} scenarios, {runs} runs, {} crashes, {} steps, {} jobs left pending with a verdict \
         (all released by recovery), 0 violations, {:.1} s",
        scenarios().len(),
        s.crashes,
        s.steps,
        s.released_by_recovery,
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn crash_at_every_write_point_sqlite() {
    sweep("SQLite", fresh_sqlite);
}

#[test]
fn crash_at_every_write_point_postgres() {
    let Ok(base) = std::env::var("MATPROOF_TEST_POSTGRES_URL") else {
        println!("MATPROOF_TEST_POSTGRES_URL not set: PostgreSQL crash sweep skipped");
        return;
    };
    sweep("PostgreSQL", move || fresh_postgres(base.clone()));
}

#[test]
fn ledger_matches_model_through_crashes_sqlite() {
    run_on("SQLite", fresh_sqlite);
}

#[test]
fn ledger_matches_model_through_crashes_postgres() {
    let Ok(base) = std::env::var("MATPROOF_TEST_POSTGRES_URL") else {
        println!("MATPROOF_TEST_POSTGRES_URL not set: PostgreSQL model test skipped");
        return;
    };
    run_on("PostgreSQL", move || fresh_postgres(base.clone()));
}

#[test]
fn every_write_point_is_reachable_and_names_are_stable() {
    // The trace of one uncrashed open/settle pair names the write points in order.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let plan = FaultPlan::new();
        let l = Ledger::open(&url).await.unwrap().with_fault_plan(plan.clone());
        l.deposit("alice", 10).await.unwrap();
        plan.arm(None);
        l.open_pending(&job_id(0), "alice", "bob", 5, 100).await.unwrap();
        assert_eq!(
            plan.trace(),
            [
                "claim: insert key",
                "open: insert transfer",
                "debit: update balance",
                "credit: insert account",
                "credit: update balance",
                "journal: insert movement",
                "commit",
                "after commit"
            ]
        );
        assert_eq!(plan.commits(), 1);
        // A crash between the verdict's commit and the release (the key case): settle fails,
        // the verdict stays, recovery posts exactly once.
        plan.arm(Some(4)); // verdict: claim, record, commit, after commit | post: claim ← crash
        let err = l.settle(&job_id(0), Verdict::Approved, &[1; 32]).await.unwrap_err();
        assert_eq!(err, LedgerError::InjectedFault { point: "claim: insert key" });
        assert_eq!(plan.commits(), 1);
        plan.arm(None);
        l.close().await;
        let l = Ledger::open(&url).await.unwrap().with_fault_plan(plan);
        let t = l.transfer(&job_id(0)).await.unwrap();
        assert_eq!((t.state, t.verdict), (TransferState::Pending, Some(Verdict::Approved)));
        assert_eq!(l.recover().await.unwrap().posted, vec![job_id(0)]);
        assert_eq!(l.recover().await.unwrap(), RecoveryReport::default());
        assert_eq!(l.balance("bob").await.unwrap(), 5);
        l.conservation_check().await.unwrap();
        assert_eq!(l.transfer(&job_id(0)).await.unwrap().state, TransferState::Posted);
    });
}
