//! The benchmark's table and JSON. Pure.

use serde::Serialize;

use super::helm::HelmResult;
use super::limit::LimitResult;
use super::oksa_phase::OksaResult;
use super::stats::Summary;

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub projects: usize,
    pub branches_per_project: usize,
    pub oksa: OksaResult,
    pub helm: HelmResult,
    pub limit: LimitResult,
    /// One environment on a quiet cluster: Oksa's median apply → Ready (one at a time) over
    /// helm's median per install (lower is better).
    pub ratio_oksa_over_helm: f64,
    /// Many environments: Oksa's wall time per environment in the burst (all Ready / branches)
    /// over helm's median per install, as a CI job per branch runs them (lower is better).
    pub ratio_oksa_over_helm_throughput: f64,
    /// Oksa's wall time to all children created, over the limit's wall time for the same objects.
    pub ratio_oksa_over_limit: f64,
    /// Oksa's wall time to all Ready, over the limit's wall time to all Ready.
    pub ratio_oksa_over_limit_ready: f64,
    /// A new image for many branches at once, to all rolled out and Ready: Oksa over the limit.
    pub ratio_redeploy_oksa_over_limit: f64,
    /// A new image for one branch: Oksa's median (one at a time) over `helm upgrade --wait`'s.
    pub ratio_redeploy_oksa_over_helm: f64,
}

impl Report {
    pub fn new(
        machine: String,
        projects: usize,
        branches: usize,
        oksa: OksaResult,
        helm: HelmResult,
        limit: LimitResult,
    ) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Report {
            machine,
            projects,
            branches_per_project: branches,
            ratio_oksa_over_helm: ratio(
                oksa.solo_apply_to_ready.median_ms,
                helm.per_branch.median_ms,
            ),
            ratio_oksa_over_helm_throughput: ratio(
                oksa.wall_to_all_ready_s * 1000.0 / oksa.branches.max(1) as f64,
                helm.per_branch.median_ms,
            ),
            ratio_oksa_over_limit: ratio(oksa.wall_to_all_children_s, limit.wall_s),
            ratio_oksa_over_limit_ready: ratio(oksa.wall_to_all_ready_s, limit.wall_to_all_ready_s),
            ratio_redeploy_oksa_over_limit: ratio(oksa.redeploy.wall_s, limit.redeploy_wall_s),
            ratio_redeploy_oksa_over_helm: ratio(
                oksa.redeploy.solo.median_ms,
                helm.redeploy_per_branch.median_ms,
            ),
            oksa,
            helm,
            limit,
        }
    }

    pub fn table(&self) -> String {
        let o = &self.oksa;
        let row = |label: String, s: &Summary, wall: Option<f64>| match wall {
            Some(wall) => format!(
                "{label:<44} {:>8.0}ms {:>8.0}ms {wall:>9.1}s",
                s.median_ms, s.p99_ms
            ),
            None => format!("{label:<44} {:>8.0}ms {:>8.0}ms", s.median_ms, s.p99_ms),
        };
        // Only the phases that ran (`--oksa-only`, `--limit-only`), and ratios of two that ran.
        let (ran_oksa, ran_helm, ran_limit) = (
            o.branches > 0,
            self.helm.branches > 0,
            self.limit.branches > 0,
        );
        let mut lines = vec![
            format!(
                "{} branches ({} projects × {}), {}",
                o.branches.max(self.limit.branches),
                self.projects,
                self.branches_per_project,
                self.machine
            ),
            String::new(),
            format!("{:<44} {:>10} {:>10} {:>10}", "", "median", "p99", "wall"),
        ];
        if ran_oksa {
            lines.extend([
                row(
                    format!(
                        "Oksa, one at a time ({}): apply → children",
                        o.solo_branches
                    ),
                    &o.solo_apply_to_children,
                    None,
                ),
                row(
                    "Oksa, one at a time: apply → Ready".into(),
                    &o.solo_apply_to_ready,
                    None,
                ),
                row(
                    "Oksa: apply → all children created".into(),
                    &o.apply_to_children,
                    Some(o.wall_to_all_children_s),
                ),
                row(
                    "Oksa: apply → Ready".into(),
                    &o.apply_to_ready,
                    Some(o.wall_to_all_ready_s),
                ),
                format!(
                    "{:<44} {:>8.0}ms",
                    "another project's branch during it → children", o.fairness_ms.0,
                ),
                format!(
                    "{:<44} {:>8.0}ms",
                    "another project's branch during it → Ready", o.fairness_ms.1,
                ),
            ]);
        }
        if ran_helm {
            lines.extend([row(
                format!(
                    "helm upgrade --install --wait ({} branches)",
                    self.helm.branches
                ),
                &self.helm.per_branch,
                Some(self.helm.wall_s),
            )]);
        }
        if ran_limit {
            lines.extend([
                row(
                    format!("limit: direct creates ({} branches)", self.limit.branches),
                    &self.limit.per_branch,
                    Some(self.limit.wall_s),
                ),
                row(
                    "limit: direct creates → Ready".into(),
                    &self.limit.apply_to_ready,
                    Some(self.limit.wall_to_all_ready_s),
                ),
            ]);
        }
        lines.push(String::new());
        lines.push("a new image for existing branches:".into());
        if ran_oksa {
            lines.extend([
                row(
                    format!(
                        "Oksa, one at a time ({}): apply → Ready",
                        o.redeploy.solo.count
                    ),
                    &o.redeploy.solo,
                    None,
                ),
                row(
                    format!("Oksa, {} at once: apply → Ready", o.redeploy.branches),
                    &o.redeploy.to_ready,
                    Some(o.redeploy.wall_s),
                ),
            ]);
        }
        if ran_helm {
            lines.extend([row(
                format!("helm upgrade --wait ({} branches)", self.helm.branches),
                &self.helm.redeploy_per_branch,
                Some(self.helm.redeploy_wall_s),
            )]);
        }
        if ran_limit {
            lines.extend([row(
                format!(
                    "limit: Deployments patched ({}) → rolled out",
                    self.limit.redeploy_branches
                ),
                &self.limit.redeploy_to_ready,
                Some(self.limit.redeploy_wall_s),
            )]);
        }
        lines.push(String::new());
        if ran_oksa && ran_helm {
            lines.extend([
                format!(
                    "one environment, Oksa/helm (median to Ready):   {:.3}  ({:.1}× faster)",
                    self.ratio_oksa_over_helm,
                    1.0 / self.ratio_oksa_over_helm.max(0.001)
                ),
                format!(
                    "per environment in the burst, Oksa/helm:        {:.3}  ({:.1}× faster)",
                    self.ratio_oksa_over_helm_throughput,
                    1.0 / self.ratio_oksa_over_helm_throughput.max(0.001)
                ),
            ]);
        }
        if ran_oksa && ran_limit {
            lines.extend([
                format!(
                    "creating the objects, Oksa/limit (wall):         {:.2}",
                    self.ratio_oksa_over_limit
                ),
                format!(
                    "to all Ready, Oksa/limit (wall):                 {:.2}",
                    self.ratio_oksa_over_limit_ready
                ),
            ]);
        }
        if ran_oksa && ran_helm {
            lines.extend([format!(
                "redeploy, one branch, Oksa/helm (median):       {:.3}  ({:.1}× faster)",
                self.ratio_redeploy_oksa_over_helm,
                1.0 / self.ratio_redeploy_oksa_over_helm.max(0.001)
            )]);
        }
        if ran_oksa && ran_limit {
            lines.extend([format!(
                "redeploy, all at once, Oksa/limit (wall):        {:.2}",
                self.ratio_redeploy_oksa_over_limit
            )]);
        }
        if ran_oksa {
            lines.extend([
                format!(
                    "operator CPU {:.1}s, peak RSS {:.1} MiB",
                    o.operator_cpu_s, o.operator_peak_rss_mib
                ),
                format!(
                    "at the burst's sampled RSS peak {:.1} MiB: heap allocated {:.1} MiB, allocator resident {:.1} MiB; heap's own peak {:.1} MiB",
                    o.burst_memory.at_peak_rss.rss_mib,
                    o.burst_memory.at_peak_rss.heap_allocated_mib,
                    o.burst_memory.at_peak_rss.heap_resident_mib,
                    o.burst_memory.max_heap_allocated_mib
                ),
                format!(
                    "operator writes: {}",
                    o.writes
                        .iter()
                        .map(|(k, v)| format!("{k} {}", v.abs()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "status writes per branch: {:.2} of BranchReleases, {:.2} of Projects",
                    o.status_writes_per_branch.0, o.status_writes_per_branch.1
                ),
                format!(
                    "redeploy at once: operator CPU {:.1}s; writes per branch: {}",
                    o.redeploy.operator_cpu_s,
                    o.redeploy
                        .writes_per_branch
                        .iter()
                        .filter(|(verb, _)| verb.as_str() != "skipped")
                        .map(|(k, v)| format!("{k} {v:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "forced resync: {} reconciles, {} writes (goal 0), peak RSS {:.1} MiB; every branch reconciled {:.1}s after the start, operator CPU {:.1}s",
                    o.resync_reconciles,
                    o.resync_writes.abs(),
                    o.resync_peak_rss_mib,
                    o.resync_s,
                    o.resync_cpu_s
                ),
                format!(
                    "at rest after it: RSS {:.1} MiB, heap allocated {:.1} MiB ({:.1} KiB per branch)",
                    o.at_rest.rss_mib,
                    o.at_rest.heap_allocated_mib,
                    o.at_rest.heap_allocated_mib * 1024.0 / (o.branches + o.solo_branches + 1) as f64
                ),
                format!(
                    "failover (the leader killed): every branch reconciled by the standby {:.1}s after the kill, its CPU {:.1}s, peak RSS {:.1} MiB, {} writes (goal 0)",
                    o.failover.to_all_reconciled_s,
                    o.failover.cpu_s,
                    o.failover.peak_rss_mib,
                    o.failover.writes.abs()
                ),
                format!(
                    "cleanup (delete the projects → namespaces gone): {:.1}s",
                    o.cleanup_s
                ),
            ]);
        }
        lines.extend(
            o.resync_write_log
                .iter()
                .map(|line| format!("  resync wrote: {line}")),
        );
        lines.push(String::new());
        lines.join("\n")
    }
}
