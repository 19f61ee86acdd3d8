//! Witness schedules: the steps of a reordering of the recorded events that shows a finding
//! can happen (two racing accesses back to back, or threads deadlocked), in the order the
//! reordering runs them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One step of a witness schedule: an event of the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStep {
    /// Who runs it: a thread's or a task's display name.
    pub actor: String,
    /// What it does, in a few words (`write \`x\``, `acquire \`m\``, `join \`worker\``).
    pub event: String,
    /// Where (`file:line:col`), if the event has a site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// When the trace recorded it.
    pub time_ns: u64,
}

impl fmt::Display for WitnessStep {
    /// `actor event at site`, as the text report numbers them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.actor, self.event)?;
        match &self.site {
            Some(site) => write!(f, " at {site}"),
            None => Ok(()),
        }
    }
}
