//! One incident, one finding: findings of one kind and severity, at the same sites (in the
//! same order), on locks of the same classes, are the same bug met again (250 workers leaking
//! a guard made at one line, say). They become one finding that says how often, names every
//! actor involved and lists its instances, instead of a wall of identical entries.

use super::{push_unique, Finding, FindingInstance, Report};
use std::collections::HashMap;

/// Instances spelled out in a grouped finding's evidence; the rest are counted.
const INSTANCES_TOLD: usize = 5;

impl Report {
    /// Merges repeated findings into the earliest of them (see the module docs). Call it
    /// before [`sort_findings`](Self::sort_findings), once `locks` is filled in.
    pub fn group_repeats(&mut self) {
        let class_of: HashMap<&str, &str> =
            self.locks.iter().map(|lock| (lock.name.as_str(), lock.class.as_str())).collect();
        let mut findings = std::mem::take(&mut self.findings);
        findings.sort_by_key(|finding| finding.time_ns);
        let mut first_of = HashMap::new();
        let mut repeated = std::collections::BTreeSet::new();
        let mut grouped: Vec<super::Finding> = Vec::with_capacity(findings.len());
        for finding in findings {
            // Sites in their order: a race's earlier and later access are not interchangeable.
            let sites: Vec<String> =
                finding.sites.iter().map(|s| format!("{} {s}", s.role)).collect();
            let mut classes: Vec<String> = finding
                .locks
                .iter()
                .map(|name| class_of.get(name.as_str()).copied().unwrap_or(name).to_owned())
                .collect();
            classes.sort_unstable();
            let key = (finding.kind, finding.severity, sites, classes);
            let Some(&index) = first_of.get(&key) else {
                first_of.insert(key, grouped.len());
                grouped.push(finding);
                continue;
            };
            grouped[index].absorb(finding);
            repeated.insert(index);
        }
        // (A finding may come with instances of its own: a stuck group's several cycles.)
        for index in repeated {
            let finding = &mut grouped[index];
            finding.evidence.push(told(&finding.instances));
        }
        self.findings = grouped;
    }
}

impl Finding {
    /// Makes `other`, another instance of the same incident, one of this finding's
    /// instances: its actors, locks and variables join this one's.
    pub fn absorb(&mut self, other: Finding) {
        if self.instances.is_empty() {
            self.instances.push(FindingInstance::of(self));
        }
        self.instances.push(FindingInstance::of(&other));
        for (list, more) in [
            (&mut self.locks, other.locks),
            (&mut self.threads, other.threads),
            (&mut self.tasks, other.tasks),
            (&mut self.variables, other.variables),
        ] {
            for item in more {
                push_unique(list, item);
            }
        }
    }
}

/// The evidence line of a grouped finding: how often, and the first instances.
fn told(instances: &[FindingInstance]) -> String {
    let mut line = format!(
        "the same happened {} times in all (same kind, sites and lock classes):",
        instances.len()
    );
    for instance in instances.iter().take(INSTANCES_TOLD) {
        let actors: Vec<String> = instance
            .threads
            .iter()
            .map(|t| format!("thread `{t}`"))
            .chain(instance.tasks.iter().map(|t| format!("task `{t}`")))
            .collect();
        line.push_str(&format!(
            " {} at t={};",
            actors.join(", "),
            super::format_ns(instance.time_ns)
        ));
    }
    if instances.len() > INSTANCES_TOLD {
        line.push_str(&format!(" and {} more", instances.len() - INSTANCES_TOLD));
    }
    line.trim_end_matches(';').to_owned()
}
