//! Simulated crashes, for crash-recovery tests (`verifier/tests/ledger_model.rs`).
//!
//! A [`FaultPlan`] attached with [`Ledger::with_fault_plan`](super::Ledger::with_fault_plan)
//! is consulted at every *write point*: before each statement that writes, before each
//! commit, and just after each commit. Armed with [`FaultPlan::arm`]`(Some(n))`, the `n`-th
//! point reached (counting from 0) fails with [`LedgerError::InjectedFault`], and so does every
//! later point until the plan is re-armed: the operation returns at once and its open
//! transaction is dropped, i.e. rolled back, exactly what a crash at that point leaves behind
//! (a crash "after commit" leaves the transaction applied but the caller without an answer).
//! The test then reopens the database and runs [`Ledger::recover`](super::Ledger::recover).
//!
//! Without a plan (the default, and every production ledger) each point is one branch on a
//! `None`.

use std::sync::{Arc, Mutex};

use super::LedgerError;

/// A crash schedule and the record of the write points an operation passed.
#[derive(Debug, Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
}

#[derive(Debug, Default)]
struct PlanState {
    crash_at: Option<u64>,
    trace: Vec<&'static str>,
    fired: Option<&'static str>,
    commits: u64,
}

impl FaultPlan {
    /// A disarmed plan.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Clears the record and schedules a crash at write point `crash_at` (counted from 0
    /// from now), or none.
    pub fn arm(&self, crash_at: Option<u64>) {
        *self.lock() = PlanState { crash_at, ..PlanState::default() };
    }

    /// The label of the point where the crash fired, if it did.
    pub fn fired(&self) -> Option<&'static str> {
        self.lock().fired
    }

    /// The labels of the points passed since [`FaultPlan::arm`], the crashing one last.
    pub fn trace(&self) -> Vec<&'static str> {
        self.lock().trace.clone()
    }

    /// How many transactions committed since [`FaultPlan::arm`].
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlanState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn point(&self, label: &'static str) -> Result<(), LedgerError> {
        let mut s = self.lock();
        if s.fired.is_some() {
            return Err(LedgerError::InjectedFault { point: label });
        }
        let index = s.trace.len() as u64;
        s.trace.push(label);
        if s.crash_at == Some(index) {
            s.fired = Some(label);
            return Err(LedgerError::InjectedFault { point: label });
        }
        Ok(())
    }
}

/// The ledger's handle on an optional plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults(Option<Arc<FaultPlan>>);

impl Faults {
    pub(crate) fn new(plan: Arc<FaultPlan>) -> Self {
        Faults(Some(plan))
    }

    /// A write point: fails when the plan says the process crashes here.
    #[inline]
    pub(crate) fn point(&self, label: &'static str) -> Result<(), LedgerError> {
        match &self.0 {
            None => Ok(()),
            Some(plan) => plan.point(label),
        }
    }

    /// Called right after a commit succeeded; then the "after commit" point.
    #[inline]
    pub(crate) fn committed(&self) -> Result<(), LedgerError> {
        match &self.0 {
            None => Ok(()),
            Some(plan) => {
                plan.lock().commits += 1;
                plan.point("after commit")
            }
        }
    }
}
