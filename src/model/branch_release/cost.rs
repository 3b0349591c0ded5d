//! What a branch costs: the CPU and memory it requests while awake (summed from what Oksa
//! renders, so exact), and how much of the last week it was awake or asleep. Pure.
//!
//! Status holds only facts that change when the branch does (the requests, the moments it fell
//! asleep and woke): time-dependent totals would change on every reconcile and be written every
//! time. Readers (`oksa status`, the metrics) compute the week's totals from them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{Requested, SleepTransition};
use crate::quantity::{Quantity, format_cpu, format_memory};

/// The window of the awake/asleep figures.
pub const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// (CPU millicores, memory millibytes) one pod of this Deployment requests.
pub fn pod_requests(deployment: &Deployment) -> (i128, i128) {
    let containers = deployment
        .spec
        .template
        .spec
        .as_ref()
        .map(|pod| pod.containers.as_slice())
        .unwrap_or_default();
    let request = |name: &str| -> i128 {
        containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(name))
            .filter_map(|q| Quantity::parse(&q.0))
            .map(Quantity::milli)
            .sum()
    };
    (request("cpu"), request("memory"))
}

/// What the branch requests while awake: each component's pod requests times its pods.
pub fn requested<'a>(components: impl IntoIterator<Item = (&'a Deployment, i32)>) -> Requested {
    let (cpu, memory) = components
        .into_iter()
        .map(|(deployment, replicas)| {
            let (cpu, memory) = pod_requests(deployment);
            (cpu * i128::from(replicas), memory * i128::from(replicas))
        })
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    Requested {
        cpu: format_cpu(cpu),
        memory: format_memory(memory),
    }
}

/// The history with one more entry when the branch fell asleep or woke at `now`, keeping what
/// the last week needs (the entries inside it, and the one before it that says how it began).
pub fn record(history: &[SleepTransition], asleep: bool, now: Timestamp) -> Vec<SleepTransition> {
    let mut history = history.to_vec();
    if history.last().map(|t| t.asleep) != Some(asleep) {
        history.push(SleepTransition {
            asleep,
            at: Time(now),
        });
    }
    let week_ago = now
        .checked_sub(SignedDuration::try_from(WEEK).unwrap_or_default())
        .unwrap_or(now);
    let inside = history.iter().position(|t| t.at.0 > week_ago);
    match inside {
        Some(first) if first > 0 => history.split_off(first - 1),
        Some(_) => history,
        None => history.split_off(history.len().saturating_sub(1)),
    }
}

/// Seconds awake and asleep within the week before `now`, from the history (before its first
/// entry the branch counts as awake: it starts so).
pub fn week(history: &[SleepTransition], now: Timestamp) -> (f64, f64) {
    let week_ago = now
        .checked_sub(SignedDuration::try_from(WEEK).unwrap_or_default())
        .unwrap_or(now);
    let seconds = |from: Timestamp, to: Timestamp| -> f64 {
        let from = from.max(week_ago);
        let to = to.min(now);
        if to > from {
            (to.as_millisecond() - from.as_millisecond()) as f64 / 1000.0
        } else {
            0.0
        }
    };
    let (mut awake, mut asleep) = (0.0, 0.0);
    for (i, transition) in history.iter().enumerate() {
        let until = history.get(i + 1).map_or(now, |next| next.at.0);
        let span = seconds(transition.at.0, until);
        if transition.asleep {
            asleep += span;
        } else {
            awake += span;
        }
    }
    (awake, asleep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

    fn deployment(requests: &[(&str, &str)]) -> Deployment {
        let mut deployment = Deployment::default();
        let mut pod = k8s_openapi::api::core::v1::PodSpec::default();
        for (cpu, memory) in requests {
            pod.containers.push(k8s_openapi::api::core::v1::Container {
                resources: Some(ResourceRequirements {
                    requests: Some(
                        [
                            ("cpu".to_string(), K8sQuantity(cpu.to_string())),
                            ("memory".to_string(), K8sQuantity(memory.to_string())),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        deployment.spec.template.spec = Some(pod);
        deployment
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn requests_are_summed_over_containers_and_pods() {
        let web = deployment(&[("100m", "128Mi"), ("50m", "64Mi")]);
        let worker = deployment(&[("0.5", "1Gi")]);
        let total = requested([(&web, 2), (&worker, 1)]);
        assert_eq!(total.cpu, "800m");
        assert_eq!(total.memory, "1408Mi");
    }

    #[test]
    fn the_week_is_split_into_awake_and_asleep() {
        let day = 86_400;
        let history = record(&[], false, at(0));
        let history = record(&history, true, at(day));
        let history = record(&history, true, at(day + 5)); // no change, no entry
        assert_eq!(history.len(), 2);
        let (awake, asleep) = week(&history, at(3 * day));
        assert_eq!((awake, asleep), (day as f64, 2.0 * day as f64));
        // Ten days on, only the week counts, and the old entries are dropped but the last one.
        let history = record(&history, false, at(10 * day));
        assert_eq!(history.len(), 2, "{history:?}");
        let (awake, asleep) = week(&history, at(10 * day));
        assert_eq!((awake, asleep), (0.0, 7.0 * day as f64));
    }
}
