//! A witness schedule: the deciding steps of a reordering of the recorded events that shows
//! a predicted finding happening.

use serde::{Deserialize, Serialize};

/// One step of a witness schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStep {
    /// Who takes the step (`thread `main``, `task `worker``).
    pub actor: String,
    /// What it does.
    pub event: String,
    /// Where, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// When the recorded event happened.
    pub time_ns: u64,
}
