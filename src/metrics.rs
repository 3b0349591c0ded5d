//! Prometheus metrics of the operator, served on `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    /// `apply`, `create`, `delete` or `status` (a status write); `skipped` counts applies
    /// avoided because nothing changed.
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestedLabels {
    pub project: String,
    /// `cpu` (cores) or `memory` (bytes).
    pub resource: &'static str,
    /// `awake` (requested now) or `asleep` (not requested: what sleeping saves).
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpiryLabels {
    pub project: String,
    /// `deleted`, `would_delete` (report-only mode) or `deferred` (past the hourly budget).
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForgeLabels {
    pub project: String,
    /// `sync` or `report`.
    pub purpose: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Arc<Registry>,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    pub duration: Family<ControllerLabels, Histogram>,
    /// Objects due for a reconcile and waiting for a worker, by controller.
    pub work_queue_depth: Family<ControllerLabels, Gauge>,
    pub writes: Family<WriteLabels, Counter>,
    pub branches: Family<PhaseLabels, Gauge>,
    pub managed: Family<KindLabels, Gauge>,
    pub requested: Family<RequestedLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Status updates held back by coalescing, not yet written, by kind.
    pub held: Family<KindLabels, Gauge>,
    /// What expiry did or would have done, by project.
    pub expiry: Family<ExpiryLabels, Counter>,
    /// Requests to forges, by project, what they were for and how they ended.
    pub forge_requests: Family<ForgeLabels, Counter>,
    /// Webhook deliveries, by how they were judged.
    pub forge_webhooks: Family<WebhookLabels, Counter>,
    /// The allocator's figures, refreshed at each scrape (see `heap`).
    pub heap_allocated: Gauge,
    pub heap_resident: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("oksa");
        let reconciles = Family::default();
        let failures = Family::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let work_queue_depth = Family::default();
        let writes = Family::default();
        let branches = Family::default();
        let managed = Family::default();
        let requested = Family::default();
        let held = Family::default();
        let expiry = Family::default();
        let forge_requests = Family::default();
        let forge_webhooks = Family::default();
        let (heap_allocated, heap_resident) = (Gauge::default(), Gauge::default());
        let help = [
            ("reconciles", "Reconciles run, by controller"),
            (
                "reconcile_failures",
                "Reconciles that failed, by controller and error kind",
            ),
            ("reconcile_duration_seconds", "Time one reconcile took"),
            (
                "child_writes",
                "Writes to children by kind and verb (skipped: nothing changed)",
            ),
            ("branches", "BranchReleases by phase"),
            (
                "managed_objects",
                "Objects Oksa manages, by kind (from its caches)",
            ),
        ];
        registry.register(help[0].0, help[0].1, Family::clone(&reconciles));
        registry.register(help[1].0, help[1].1, Family::clone(&failures));
        registry.register(help[2].0, help[2].1, duration.clone());
        registry.register(help[3].0, help[3].1, Family::clone(&writes));
        registry.register(help[4].0, help[4].1, Family::clone(&branches));
        registry.register(help[5].0, help[5].1, Family::clone(&managed));
        registry.register(
            "work_queue_depth",
            "Objects due for a reconcile and waiting for a worker, by controller (delayed ones are not counted)",
            Family::clone(&work_queue_depth),
        );
        registry.register(
            "requested",
            "CPU cores and memory bytes the branches of a project request while awake, by whether they are awake now (asleep: what sleeping saves)",
            Family::clone(&requested),
        );
        registry.register(
            "status_updates_held",
            "Status updates of progress held back to be written with later ones, by kind (0: every status is written)",
            Family::clone(&held),
        );
        registry.register(
            "expiry",
            "Expired branches by project and what expiry did: deleted, would_delete (policy.expiry.mode: Report) or deferred (past policy.expiry.maxDeletionsPerHour)",
            Family::clone(&expiry),
        );
        registry.register(
            "forge_requests",
            "Requests to a Project's forge, by what they were for (sync, report) and outcome (ok, not_modified: answered from cache at no rate cost, or the error kind)",
            Family::clone(&forge_requests),
        );
        registry.register(
            "forge_webhooks",
            "Webhook deliveries from forges, by result (sync, ignored, bad_signature, unknown_project, not_leader, unreadable)",
            Family::clone(&forge_webhooks),
        );
        if crate::heap::stats().is_some() {
            registry.register(
                "heap_allocated_bytes",
                "Bytes the operator holds on the heap, by the allocator's count",
                heap_allocated.clone(),
            );
            registry.register(
                "heap_resident_bytes",
                "Bytes of the allocator's pages resident in memory (allocated plus kept for reuse)",
                heap_resident.clone(),
            );
        }
        Metrics {
            registry: Arc::new(registry),
            reconciles,
            failures,
            duration,
            work_queue_depth,
            writes,
            branches,
            managed,
            requested,
            held,
            expiry,
            forge_requests,
            forge_webhooks,
            heap_allocated,
            heap_resident,
        }
    }
}

impl Metrics {
    /// The gauge a controller's runner keeps its queue's depth in.
    pub fn queue_depth(&self, controller: &'static str) -> Gauge {
        self.work_queue_depth
            .get_or_create(&ControllerLabels { controller })
            .clone()
    }

    pub fn reconciled(&self, controller: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        self.duration
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, controller: &'static str, error: &'static str) {
        self.failures
            .get_or_create(&FailureLabels { controller, error })
            .inc();
    }

    /// Counts one write (or skip) of an object. Each real write is also logged at debug under the
    /// target `oksa::writes`, so that an unexpected write can be traced to its object.
    pub fn wrote(&self, kind: &str, name: &str, verb: &'static str) {
        if verb != "skipped" {
            tracing::debug!(target: "oksa::writes", kind, name, verb, "wrote");
        }
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
                verb,
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        if let Some(heap) = crate::heap::stats() {
            self.heap_allocated.set(heap.allocated as i64);
            self.heap_resident.set(heap.resident as i64);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String");
        text
    }
}
