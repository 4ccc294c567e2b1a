//! The simulated ECS control plane that moto lacks: the tasks of each task set, their load
//! balancer targets, and how both change over wall-clock time.
//!
//! Everything here is pure: functions take `now` and return the target (de)registrations the
//! caller must make in moto. States are computed from timestamps on every call, so nothing
//! needs a timer; [`Sim::sweep`] only latches crashes and reports targets whose draining ended.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ids;
use crate::moto::Scope;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `ceil(service desiredCount × scale% / 100)`, the task set's `computedDesiredCount`.
pub fn desired_count(service_desired: u32, scale_percent: f64) -> u32 {
    if !scale_percent.is_finite() || scale_percent <= 0.0 {
        return 0;
    }
    let exact = f64::from(service_desired) * scale_percent.min(100.0) / 100.0;
    // The tolerance absorbs binary rounding error, so a whole number of tasks that comes out
    // a hair above itself in floating point is not rounded up to one more.
    let count = (exact - 1e-6).ceil().max(0.0);
    // `count` is at most `service_desired`, so it fits.
    count as u32
}

pub const DEFAULT_HEALTHY_AFTER_MS: u64 = 2_000;

/// The knobs of `PUT /_local/config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// How long a new target stays `initial`.
    pub healthy_after_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            healthy_after_ms: DEFAULT_HEALTHY_AFTER_MS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Targets go `initial`, then `unhealthy` instead of `healthy`.
    NeverHealthy,
    /// Targets turn `unhealthy` this long after turning healthy.
    UnhealthyAfter { after_ms: u64 },
    /// Tasks stop this long after they start (exit code 1).
    CrashAfter { after_ms: u64 },
}

impl FaultMode {
    pub fn name(&self) -> &'static str {
        match self {
            FaultMode::NeverHealthy => "neverHealthy",
            FaultMode::UnhealthyAfter { .. } => "unhealthyAfter",
            FaultMode::CrashAfter { .. } => "crashAfter",
        }
    }

    pub fn after_ms(&self) -> Option<u64> {
        match self {
            FaultMode::NeverHealthy => None,
            FaultMode::UnhealthyAfter { after_ms } | FaultMode::CrashAfter { after_ms } => {
                Some(*after_ms)
            }
        }
    }
}

/// An injected fault. A fault added after a task started counts its delay from when it was
/// added, so injecting one never rewrites the past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Matches every task set with a container whose image contains this substring.
    pub image: String,
    pub mode: FaultMode,
    pub added_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// The container's `secrets`: environment variable name and `valueFrom`.
    pub secrets: Vec<(String, String)>,
}

/// What a task holds of one `secrets` entry, as ECS resolved it when the task started: the
/// Dynatrace token id (`dt0c01.PUBLIC`), never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSecret {
    pub container: String,
    pub name: String,
    /// The token id; or why there is none (`not a Dynatrace token`, `unresolved: …`).
    pub holds: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    pub arn: String,
    /// The port targets are registered with (the container port), or the group's own.
    pub port: Option<u16>,
    pub deregistration_delay_ms: u64,
}

/// What the gateway learned about a task set from moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSetSpec {
    /// `ecs-svc/…`
    pub id: String,
    /// `arn:aws:ecs:REGION:ACCOUNT:task-set/CLUSTER/SERVICE/ecs-svc/…`
    pub arn: String,
    pub cluster_arn: String,
    pub service_arn: String,
    pub task_definition_arn: String,
    pub launch_type: String,
    pub containers: Vec<Container>,
    pub target_groups: Vec<TargetGroup>,
    pub subnet_id: Option<String>,
    /// The containers' secrets as resolved when the task set was created; its tasks hold
    /// these.
    pub held: Vec<HeldSecret>,
}

impl TaskSetSpec {
    pub fn cluster_name(&self) -> &str {
        last_segment(&self.cluster_arn)
    }

    pub fn service_name(&self) -> &str {
        last_segment(&self.service_arn)
    }

    fn arn_field(&self, n: usize) -> &str {
        self.arn.split(':').nth(n).unwrap_or_default()
    }

    fn task_arn(&self, task_id: &str) -> String {
        format!(
            "arn:{}:ecs:{}:{}:task/{}/{task_id}",
            self.arn_field(1),
            self.arn_field(3),
            self.arn_field(4),
            self.cluster_name()
        )
    }

    fn matches(&self, fault: &Fault) -> bool {
        self.containers
            .iter()
            .any(|c| c.image.contains(&fault.image))
    }
}

/// The last `/`-separated segment: the name in a cluster or service ARN.
pub fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (ip, prefix) = s.trim().split_once('/').ok_or(())?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| ())?;
        let prefix: u8 = prefix.parse().map_err(|_| ())?;
        if prefix > 32 {
            return Err(());
        }
        let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
        Ok(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }
}

impl Cidr {
    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
}

/// Where simulated tasks get their IPs when the task set names no subnet moto knows.
const FALLBACK_POOL: Cidr = Cidr {
    base: 0x0AC8_0000, // 10.200.0.0
    prefix: 16,
};

/// Hands out each address once: moto keys a target group's targets by id alone.
#[derive(Debug, Default)]
struct IpAllocator {
    cursors: BTreeMap<Cidr, u64>,
}

impl IpAllocator {
    fn allocate(&mut self, subnet: Option<Cidr>) -> Ipv4Addr {
        for cidr in subnet.into_iter().chain([FALLBACK_POOL]) {
            // AWS reserves the first four addresses and the last one of every subnet.
            let cursor = self.cursors.entry(cidr).or_insert(4);
            if *cursor + 1 < cidr.size() {
                let offset = u32::try_from(*cursor).unwrap_or(0);
                *cursor += 1;
                return Ipv4Addr::from(cidr.base.wrapping_add(offset));
            }
        }
        // 65 000 tasks later: start the fallback pool over.
        self.cursors.insert(FALLBACK_POOL, 5);
        Ipv4Addr::from(FALLBACK_POOL.base + 4)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// A scale-down or deletion of the task set stopped it.
    ScaledIn,
    /// An essential container exited; one exit code per container.
    Crashed { exit_codes: Vec<i32> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub at: Millis,
    pub cause: StopCause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub arn: String,
    pub ip: Ipv4Addr,
    pub started_at: Millis,
    pub healthy_after_ms: u64,
    pub stop: Option<Stop>,
    /// Per target group of the spec: already deregistered from moto.
    pub deregistered: Vec<bool>,
    /// The secrets the task got when it started.
    pub held: Vec<HeldSecret>,
}

impl Task {
    fn healthy_at(&self) -> Millis {
        self.started_at + self.healthy_after_ms
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskSet {
    pub spec: TaskSetSpec,
    pub scope: Scope,
    pub subnet: Option<Cidr>,
    pub scale_percent: f64,
    pub computed_desired: u32,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub deleted_at: Option<Millis>,
    /// moto's description of the task set when it was deleted: ECS keeps listing a deleted
    /// task set as `DRAINING` until its tasks stopped, moto drops it at once.
    pub removed: Option<serde_json::Value>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    Draining,
    /// No longer (or never) in the target group.
    Unused,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Draining => "draining",
            TargetState::Unused => "unused",
        }
    }

    pub fn reason(self) -> Option<&'static str> {
        match self {
            TargetState::Initial => Some("Elb.RegistrationInProgress"),
            TargetState::Healthy => None,
            TargetState::Unhealthy => Some("Target.FailedHealthChecks"),
            TargetState::Draining => Some("Target.DeregistrationInProgress"),
            TargetState::Unused => Some("Target.NotRegistered"),
        }
    }

    pub fn description(self) -> Option<&'static str> {
        match self {
            TargetState::Initial => Some("Target registration is in progress"),
            TargetState::Healthy => None,
            TargetState::Unhealthy => Some("Health checks failed"),
            TargetState::Draining => Some("Target deregistration is in progress"),
            TargetState::Unused => Some("Target is not registered to the target group"),
        }
    }
}

/// Targets to register in (or deregister from) one target group in moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChange {
    pub scope: Scope,
    pub target_group_arn: String,
    pub targets: Vec<(Ipv4Addr, Option<u16>)>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub register: Vec<TargetChange>,
    pub deregister: Vec<TargetChange>,
}

impl Changes {
    fn extend(&mut self, other: Changes) {
        self.register.extend(other.register);
        self.deregister.extend(other.deregister);
    }
}

/// The ECS counts of a task set at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub computed_desired: u32,
    pub running: u32,
    pub pending: u32,
    /// `STEADY_STATE` when true, `STABILIZING` otherwise.
    pub steady: bool,
    pub stability_at: Millis,
}

impl Counts {
    pub fn stability_status(&self) -> &'static str {
        if self.steady {
            "STEADY_STATE"
        } else {
            "STABILIZING"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub last_status: &'static str,
    pub exit_code: Option<i32>,
}

/// One task as ECS would describe it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub arn: String,
    pub ip: Ipv4Addr,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    pub launch_type: String,
    /// The task set id, as ECS sets `startedBy` for a task set's tasks.
    pub started_by: String,
    pub service_name: String,
    pub subnet_id: Option<String>,
    pub created_at: Millis,
    pub last_status: &'static str,
    pub desired_status: &'static str,
    pub stopping_at: Option<Millis>,
    pub stopped_at: Option<Millis>,
    pub stop_code: Option<&'static str>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerView>,
    /// Per target group: its ARN and this task's target state.
    pub targets: Vec<(String, TargetState)>,
    /// The secrets it got when it started.
    pub held: Vec<HeldSecret>,
}

/// One simulated target as `DescribeTargetHealth` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTarget {
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
    pub state: TargetState,
}

/// What `PUT`/`POST` on a task set tells the simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSetUpdate {
    pub spec: TaskSetSpec,
    pub scope: Scope,
    pub subnet: Option<Cidr>,
    pub scale_percent: f64,
    pub service_desired: u32,
}

/// Filters of an ECS `ListTasks` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    pub cluster: String,
    pub started_by: String,
    pub desired_status: Option<String>,
    pub service_name: Option<String>,
    pub family: Option<String>,
}

#[derive(Debug, Default)]
pub struct Sim {
    config: SimConfig,
    faults: Vec<Fault>,
    task_sets: BTreeMap<String, TaskSet>,
    ips: IpAllocator,
}

impl Sim {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every task set and fault and restores the default config.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Forgets every task set (moto's resources are gone), keeping faults and config.
    pub fn forget_task_sets(&mut self) {
        self.task_sets.clear();
    }

    pub fn config(&self) -> SimConfig {
        self.config
    }

    pub fn set_config(&mut self, config: SimConfig) {
        self.config = config;
    }

    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    pub fn add_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Removes the faults on exactly this image substring; others stay.
    pub fn remove_faults(&mut self, image: &str) {
        self.faults.retain(|f| f.image != image);
    }

    pub fn task_set(&self, arn: &str) -> Option<&TaskSet> {
        self.task_sets.get(arn)
    }

    /// Whether the simulation already knows this (not deleted) task set.
    pub fn knows(&self, arn: &str) -> bool {
        self.task_sets
            .get(arn)
            .is_some_and(|ts| ts.deleted_at.is_none())
    }

    pub fn task_sets(&self) -> impl Iterator<Item = &TaskSet> {
        self.task_sets.values()
    }

    /// Creates the task set's tasks, or brings an existing one to its new scale.
    pub fn apply_task_set(&mut self, update: TaskSetUpdate, now: Millis) -> Changes {
        let mut changes = self.sweep(now);
        let computed = desired_count(update.service_desired, update.scale_percent);
        let Sim {
            config,
            task_sets,
            ips,
            ..
        } = self;
        let ts = task_sets
            .entry(update.spec.arn.clone())
            .or_insert_with(|| TaskSet {
                spec: update.spec,
                scope: update.scope,
                subnet: update.subnet,
                scale_percent: update.scale_percent,
                computed_desired: 0,
                created_at: now,
                updated_at: now,
                deleted_at: None,
                removed: None,
                tasks: Vec::new(),
            });
        if ts.deleted_at.is_some() {
            return changes;
        }
        ts.scale_percent = update.scale_percent;
        ts.computed_desired = computed;
        changes.extend(reconcile(ts, ips, *config, now));
        changes
    }

    /// Brings a known, live task set to a new scale; `None` when the simulation does not know
    /// it (then the caller gathers a full [`TaskSetUpdate`]).
    pub fn rescale_task_set(
        &mut self,
        arn: &str,
        scale_percent: f64,
        service_desired: u32,
        now: Millis,
    ) -> Option<Changes> {
        if !self.knows(arn) {
            return None;
        }
        let mut changes = self.sweep(now);
        let Sim {
            config,
            task_sets,
            ips,
            ..
        } = self;
        let ts = task_sets.get_mut(arn)?;
        ts.scale_percent = scale_percent;
        ts.computed_desired = desired_count(service_desired, scale_percent);
        changes.extend(reconcile(ts, ips, *config, now));
        Some(changes)
    }

    /// Every simulated target still registered in moto, marked deregistered: what to remove
    /// from moto before forgetting the simulation.
    pub fn deregister_all(&mut self) -> Changes {
        let mut changes = Changes::default();
        for ts in self.task_sets.values_mut() {
            for (i, tg) in ts.spec.target_groups.iter().enumerate() {
                let mut targets = Vec::new();
                for task in &mut ts.tasks {
                    if let Some(flag) = task.deregistered.get_mut(i).filter(|done| !**done) {
                        *flag = true;
                        targets.push((task.ip, tg.port));
                    }
                }
                if !targets.is_empty() {
                    changes.deregister.push(TargetChange {
                        scope: ts.scope.clone(),
                        target_group_arn: tg.arn.clone(),
                        targets,
                    });
                }
            }
        }
        changes
    }

    /// Applies a new service `desiredCount` to every live task set of the service.
    pub fn rescale_service(
        &mut self,
        service_arn: &str,
        service_desired: u32,
        now: Millis,
    ) -> Changes {
        let mut changes = self.sweep(now);
        let Sim {
            config,
            task_sets,
            ips,
            ..
        } = self;
        for ts in task_sets
            .values_mut()
            .filter(|ts| ts.spec.service_arn == service_arn && ts.deleted_at.is_none())
        {
            ts.computed_desired = desired_count(service_desired, ts.scale_percent);
            changes.extend(reconcile(ts, ips, *config, now));
        }
        changes
    }

    /// Drains and stops every task of a deleted task set; it stays listed for its stopped tasks,
    /// and as a `DRAINING` task set of its service (`described`, moto's description of it)
    /// until they stopped.
    pub fn delete_task_set(
        &mut self,
        arn: &str,
        described: Option<serde_json::Value>,
        now: Millis,
    ) -> Changes {
        let mut changes = self.sweep(now);
        let Sim {
            config,
            task_sets,
            ips,
            ..
        } = self;
        if let Some(ts) = task_sets.get_mut(arn).filter(|ts| ts.deleted_at.is_none()) {
            ts.computed_desired = 0;
            changes.extend(reconcile(ts, ips, *config, now));
            ts.deleted_at = Some(now);
            ts.removed = described;
        }
        changes
    }

    /// Deleted task sets of service `service` (name or ARN) in cluster `cluster` (name or
    /// ARN) whose tasks have not all stopped yet: what ECS still lists as `DRAINING`.
    pub fn draining_task_sets(&self, cluster: &str, service: &str, now: Millis) -> Vec<&TaskSet> {
        let (cluster, service) = (last_segment(cluster), last_segment(service));
        let mut draining: Vec<&TaskSet> = self
            .task_sets
            .values()
            .filter(|ts| ts.removed.is_some())
            .filter(|ts| ts.spec.cluster_name() == cluster && ts.spec.service_name() == service)
            .filter(|ts| {
                self.task_views(ts, now)
                    .iter()
                    .any(|t| t.last_status != "STOPPED")
            })
            .collect();
        draining.sort_by_key(|ts| ts.created_at);
        draining
    }

    /// Deletes every task set of a deleted service.
    pub fn delete_service(&mut self, service_arn: &str, now: Millis) -> Changes {
        let arns: Vec<String> = self
            .task_sets
            .values()
            .filter(|ts| ts.spec.service_arn == service_arn)
            .map(|ts| ts.spec.arn.clone())
            .collect();
        let mut changes = Changes::default();
        for arn in arns {
            changes.extend(self.delete_task_set(&arn, None, now));
        }
        changes
    }

    /// Latches crashes that are due and reports targets whose draining ended, marking them
    /// deregistered. Idempotent.
    pub fn sweep(&mut self, now: Millis) -> Changes {
        let mut changes = Changes::default();
        let faults = &self.faults;
        for ts in self.task_sets.values_mut() {
            let crashes: Vec<&Fault> = faults
                .iter()
                .filter(|f| matches!(f.mode, FaultMode::CrashAfter { .. }) && ts.spec.matches(f))
                .collect();
            for task in ts.tasks.iter_mut().filter(|t| t.stop.is_none()) {
                if let Some(at) = crash_at(task, &crashes).filter(|at| *at <= now) {
                    task.stop = Some(Stop {
                        at,
                        cause: StopCause::Crashed {
                            exit_codes: crash_exit_codes(&ts.spec.containers, &crashes),
                        },
                    });
                }
            }
            let mut drained: Vec<Vec<(Ipv4Addr, Option<u16>)>> =
                vec![Vec::new(); ts.spec.target_groups.len()];
            for task in &mut ts.tasks {
                let Some(stop) = &task.stop else { continue };
                for (i, tg) in ts.spec.target_groups.iter().enumerate() {
                    let done = task.deregistered.get(i).copied().unwrap_or(true);
                    if !done && now >= stop.at + tg.deregistration_delay_ms {
                        if let Some(flag) = task.deregistered.get_mut(i) {
                            *flag = true;
                        }
                        drained[i].push((task.ip, tg.port));
                    }
                }
            }
            for (tg, targets) in ts.spec.target_groups.iter().zip(drained) {
                if !targets.is_empty() {
                    changes.deregister.push(TargetChange {
                        scope: ts.scope.clone(),
                        target_group_arn: tg.arn.clone(),
                        targets,
                    });
                }
            }
        }
        changes
    }

    fn faults_for(&self, ts: &TaskSet) -> Vec<&Fault> {
        self.faults.iter().filter(|f| ts.spec.matches(f)).collect()
    }

    /// The task set's ECS counts and stability.
    pub fn counts(&self, ts: &TaskSet, now: Millis) -> Counts {
        let faults = self.faults_for(ts);
        let views: Vec<TaskView> = ts
            .tasks
            .iter()
            .map(|task| task_view(ts, task, &faults, now))
            .collect();
        let running = views.iter().filter(|v| v.last_status == "RUNNING").count();
        let running = u32::try_from(running).unwrap_or(u32::MAX);
        let all_healthy = views
            .iter()
            .filter(|v| v.desired_status == "RUNNING")
            .all(|v| v.targets.iter().all(|(_, s)| *s == TargetState::Healthy));
        let none_stopping = views.iter().all(|v| v.last_status != "DEACTIVATING");
        let steady = ts.deleted_at.is_none()
            && running == ts.computed_desired
            && all_healthy
            && none_stopping;
        let events = ts.tasks.iter().flat_map(|task| {
            let healthy_at = task.stop.is_none().then(|| task.healthy_at());
            let stop = task.stop.as_ref().map(|s| s.at);
            [healthy_at, stop]
        });
        let events = events.chain(views.iter().map(|v| v.stopped_at));
        let stability_at = events
            .flatten()
            .filter(|at| *at <= now)
            .fold(ts.updated_at, Millis::max);
        Counts {
            computed_desired: if ts.deleted_at.is_some() {
                0
            } else {
                ts.computed_desired
            },
            running,
            pending: 0,
            steady,
            stability_at,
        }
    }

    /// `(runningCount, pendingCount)` summed over the service's simulated task sets, if any.
    pub fn service_counts(&self, service_arn: &str, now: Millis) -> Option<(u32, u32)> {
        let mut found = false;
        let (mut running, mut pending) = (0u32, 0u32);
        for ts in self
            .task_sets
            .values()
            .filter(|ts| ts.spec.service_arn == service_arn)
        {
            found = true;
            let counts = self.counts(ts, now);
            running = running.saturating_add(counts.running);
            pending = pending.saturating_add(counts.pending);
        }
        found.then_some((running, pending))
    }

    /// Every task of the task set as ECS would describe it now.
    pub fn task_views(&self, ts: &TaskSet, now: Millis) -> Vec<TaskView> {
        let faults = self.faults_for(ts);
        ts.tasks
            .iter()
            .map(|task| task_view(ts, task, &faults, now))
            .collect()
    }

    /// `ListTasks` answered from the simulation, or `None` when `startedBy` is no simulated
    /// task set of that cluster.
    pub fn list_tasks(&self, query: &TaskQuery) -> Option<Vec<String>> {
        let cluster = last_segment(&query.cluster);
        let ts = self
            .task_sets
            .values()
            .find(|ts| ts.spec.id == query.started_by && ts.spec.cluster_name() == cluster)?;
        if query
            .service_name
            .as_deref()
            .is_some_and(|s| last_segment(s) != ts.spec.service_name())
        {
            return Some(Vec::new());
        }
        if let Some(family) = &query.family {
            let td = last_segment(&ts.spec.task_definition_arn);
            if td.split(':').next() != Some(family.as_str()) {
                return Some(Vec::new());
            }
        }
        let want_stopped = query.desired_status.as_deref() == Some("STOPPED");
        Some(
            ts.tasks
                .iter()
                .filter(|t| t.stop.is_some() == want_stopped)
                .map(|t| t.arn.clone())
                .collect(),
        )
    }

    /// `DescribeTasks` answered from the simulation, or `None` unless every reference (task
    /// ARN or id) is a simulated task.
    pub fn describe_tasks(&self, references: &[String], now: Millis) -> Option<Vec<TaskView>> {
        if references.is_empty() {
            return None;
        }
        references
            .iter()
            .map(|reference| {
                let id = last_segment(reference);
                self.task_sets.values().find_map(|ts| {
                    ts.tasks
                        .iter()
                        .find(|t| t.arn == *reference || t.id == id)
                        .map(|task| task_view(ts, task, &self.faults_for(ts), now))
                })
            })
            .collect()
    }

    /// The simulated targets of a target group, or `None` when no simulated task ever had
    /// one in it (then moto's answer stands).
    pub fn target_health(&self, target_group_arn: &str, now: Millis) -> Option<Vec<SimTarget>> {
        let mut found = false;
        let mut targets = Vec::new();
        for ts in self.task_sets.values() {
            let Some(index) = ts
                .spec
                .target_groups
                .iter()
                .position(|tg| tg.arn == target_group_arn)
            else {
                continue;
            };
            found = true;
            let tg = &ts.spec.target_groups[index];
            let faults = self.faults_for(ts);
            for task in &ts.tasks {
                targets.push(SimTarget {
                    ip: task.ip,
                    port: tg.port,
                    state: target_state(task, index, tg, &faults, now),
                });
            }
        }
        found.then_some(targets)
    }
}

/// Starts or stops tasks until the live ones match `computed_desired`; newest stop first.
fn reconcile(ts: &mut TaskSet, ips: &mut IpAllocator, config: SimConfig, now: Millis) -> Changes {
    let mut changes = Changes::default();
    ts.updated_at = now;
    let mut live: Vec<usize> = (0..ts.tasks.len())
        .filter(|i| ts.tasks[*i].stop.is_none())
        .collect();
    let wanted = usize::try_from(ts.computed_desired).unwrap_or(usize::MAX);
    if live.len() < wanted {
        let mut started = Vec::new();
        for _ in live.len()..wanted {
            let id = ids::task_id();
            let task = Task {
                arn: ts.spec.task_arn(&id),
                id,
                ip: ips.allocate(ts.subnet),
                started_at: now,
                healthy_after_ms: config.healthy_after_ms,
                stop: None,
                deregistered: vec![false; ts.spec.target_groups.len()],
                held: ts.spec.held.clone(),
            };
            started.push(task.ip);
            ts.tasks.push(task);
        }
        for tg in &ts.spec.target_groups {
            changes.register.push(TargetChange {
                scope: ts.scope.clone(),
                target_group_arn: tg.arn.clone(),
                targets: started.iter().map(|ip| (*ip, tg.port)).collect(),
            });
        }
    } else if live.len() > wanted {
        let excess = live.len() - wanted;
        live.sort_by_key(|i| std::cmp::Reverse((ts.tasks[*i].started_at, *i)));
        for i in live.into_iter().take(excess) {
            ts.tasks[i].stop = Some(Stop {
                at: now,
                cause: StopCause::ScaledIn,
            });
        }
    }
    changes
}

fn crash_at(task: &Task, crashes: &[&Fault]) -> Option<Millis> {
    crashes
        .iter()
        .filter_map(|f| match f.mode {
            FaultMode::CrashAfter { after_ms } => Some(task.started_at.max(f.added_at) + after_ms),
            _ => None,
        })
        .min()
}

fn crash_exit_codes(containers: &[Container], crashes: &[&Fault]) -> Vec<i32> {
    let crashed = |c: &Container| crashes.iter().any(|f| c.image.contains(&f.image));
    if containers.iter().any(crashed) {
        containers.iter().map(|c| i32::from(crashed(c))).collect()
    } else {
        vec![1; containers.len()]
    }
}

/// The state of a task's target in the spec's target group `index`.
fn target_state(
    task: &Task,
    index: usize,
    tg: &TargetGroup,
    faults: &[&Fault],
    now: Millis,
) -> TargetState {
    if task.deregistered.get(index).copied().unwrap_or(true) {
        return TargetState::Unused;
    }
    if let Some(stop) = &task.stop {
        return if now < stop.at + tg.deregistration_delay_ms {
            TargetState::Draining
        } else {
            TargetState::Unused
        };
    }
    let healthy_at = task.healthy_at();
    if now < healthy_at {
        return TargetState::Initial;
    }
    let unhealthy_from = faults
        .iter()
        .filter_map(|f| match f.mode {
            FaultMode::NeverHealthy => Some(healthy_at.max(f.added_at)),
            FaultMode::UnhealthyAfter { after_ms } => Some(healthy_at.max(f.added_at) + after_ms),
            FaultMode::CrashAfter { .. } => None,
        })
        .min();
    if unhealthy_from.is_some_and(|at| now >= at) {
        TargetState::Unhealthy
    } else {
        TargetState::Healthy
    }
}

fn task_view(ts: &TaskSet, task: &Task, faults: &[&Fault], now: Millis) -> TaskView {
    let spec = &ts.spec;
    let max_delay = spec
        .target_groups
        .iter()
        .map(|tg| tg.deregistration_delay_ms)
        .max()
        .unwrap_or(0);
    let targets = spec
        .target_groups
        .iter()
        .enumerate()
        .map(|(i, tg)| (tg.arn.clone(), target_state(task, i, tg, faults, now)))
        .collect();
    let running_containers = || {
        spec.containers
            .iter()
            .map(|c| ContainerView {
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: "RUNNING",
                exit_code: None,
            })
            .collect::<Vec<_>>()
    };
    let stopped_containers = |codes: &[i32]| {
        spec.containers
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerView {
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: "STOPPED",
                exit_code: Some(codes.get(i).copied().unwrap_or(0)),
            })
            .collect::<Vec<_>>()
    };
    let mut view = TaskView {
        arn: task.arn.clone(),
        ip: task.ip,
        cluster_arn: spec.cluster_arn.clone(),
        task_definition_arn: spec.task_definition_arn.clone(),
        launch_type: spec.launch_type.clone(),
        started_by: spec.id.clone(),
        service_name: spec.service_name().to_owned(),
        subnet_id: spec.subnet_id.clone(),
        created_at: task.started_at,
        last_status: "RUNNING",
        desired_status: "RUNNING",
        stopping_at: None,
        stopped_at: None,
        stop_code: None,
        stopped_reason: None,
        containers: running_containers(),
        targets,
        held: task.held.clone(),
    };
    if let Some(stop) = &task.stop {
        // ECS stops a task once its targets have drained.
        let stopped_at = stop.at + max_delay;
        let stopped = now >= stopped_at;
        view.desired_status = "STOPPED";
        view.last_status = if stopped { "STOPPED" } else { "DEACTIVATING" };
        view.stopping_at = Some(stop.at);
        view.stopped_at = stopped.then_some(stopped_at);
        match &stop.cause {
            StopCause::Crashed { exit_codes } => {
                view.stop_code = Some("EssentialContainerExited");
                view.stopped_reason = Some("Essential container in task exited".to_owned());
                view.containers = stopped_containers(exit_codes);
            }
            StopCause::ScaledIn => {
                view.stop_code = Some("ServiceSchedulerInitiated");
                view.stopped_reason = Some(format!(
                    "Scaling activity initiated by (deployment {})",
                    spec.id
                ));
                if stopped {
                    view.containers = stopped_containers(&[]);
                }
            }
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_800_000_000_000;
    const SECOND: Millis = 1_000;
    const TS_ARN: &str =
        "arn:aws:ecs:us-east-1:123456789012:task-set/c1/svc/ecs-svc/1234567890123456789";
    const TG_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g/1";

    fn spec(image: &str, delay_ms: u64) -> TaskSetSpec {
        TaskSetSpec {
            id: "ecs-svc/1234567890123456789".into(),
            arn: TS_ARN.into(),
            cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/c1".into(),
            service_arn: "arn:aws:ecs:us-east-1:123456789012:service/c1/svc".into(),
            task_definition_arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/app:3".into(),
            launch_type: "FARGATE".into(),
            containers: vec![
                Container {
                    name: "web".into(),
                    image: image.into(),
                    secrets: Vec::new(),
                },
                Container {
                    name: "sidecar".into(),
                    image: "envoy:1".into(),
                    secrets: Vec::new(),
                },
            ],
            target_groups: vec![TargetGroup {
                arn: TG_ARN.into(),
                port: Some(8080),
                deregistration_delay_ms: delay_ms,
            }],
            subnet_id: None,
            held: Vec::new(),
        }
    }

    fn update(image: &str, scale: f64, service_desired: u32) -> TaskSetUpdate {
        TaskSetUpdate {
            spec: spec(image, 5 * SECOND),
            scope: Scope::default(),
            subnet: None,
            scale_percent: scale,
            service_desired,
        }
    }

    fn states(sim: &Sim, now: Millis) -> Vec<&'static str> {
        sim.target_health(TG_ARN, now)
            .expect("the target group has simulated targets")
            .iter()
            .map(|t| t.state.as_str())
            .collect()
    }

    fn fault(image: &str, mode: FaultMode, added_at: Millis) -> Fault {
        Fault {
            image: image.into(),
            mode,
            added_at,
        }
    }

    #[test]
    fn desired_count_rounds_up_a_partial_task() {
        assert_eq!(desired_count(3, 50.0), 2);
        assert_eq!(desired_count(3, 100.0), 3);
        assert_eq!(desired_count(4, 25.0), 1);
        assert_eq!(desired_count(10, 70.0), 7);
        assert_eq!(desired_count(10, 33.4), 4);
        assert_eq!(desired_count(5, 0.0), 0);
        assert_eq!(desired_count(0, 100.0), 0);
        assert_eq!(desired_count(1, 1.0), 1);
    }

    #[test]
    fn a_new_task_set_registers_one_target_per_task_with_the_container_port() {
        let mut sim = Sim::new();
        let changes = sim.apply_task_set(update("app:v1", 50.0, 3), T0);
        assert_eq!(changes.register.len(), 1);
        let reg = &changes.register[0];
        assert_eq!(reg.target_group_arn, TG_ARN);
        assert_eq!(reg.targets.len(), 2);
        assert!(reg.targets.iter().all(|(_, port)| *port == Some(8080)));
        assert_ne!(
            reg.targets[0].0, reg.targets[1].0,
            "every task has its own IP"
        );
        assert!(changes.deregister.is_empty());
    }

    #[test]
    fn targets_are_initial_then_healthy_after_the_configured_delay() {
        let mut sim = Sim::new();
        sim.set_config(SimConfig {
            healthy_after_ms: 3 * SECOND,
        });
        sim.apply_task_set(update("app:v1", 100.0, 2), T0);
        assert_eq!(states(&sim, T0), ["initial", "initial"]);
        assert_eq!(states(&sim, T0 + 3 * SECOND - 1), ["initial", "initial"]);
        assert_eq!(states(&sim, T0 + 3 * SECOND), ["healthy", "healthy"]);
    }

    #[test]
    fn a_never_healthy_fault_turns_targets_unhealthy_instead_of_healthy() {
        let mut sim = Sim::new();
        sim.add_fault(fault("v2", FaultMode::NeverHealthy, T0 - SECOND));
        sim.apply_task_set(update("repo/app:v2", 100.0, 1), T0);
        assert_eq!(states(&sim, T0 + SECOND), ["initial"]);
        assert_eq!(states(&sim, T0 + 2 * SECOND), ["unhealthy"]);
        assert_eq!(states(&sim, T0 + 60 * SECOND), ["unhealthy"]);
        let ts = sim.task_set(TS_ARN).expect("simulated");
        assert!(!sim.counts(ts, T0 + 60 * SECOND).steady);
    }

    #[test]
    fn a_fault_on_another_image_changes_nothing() {
        let mut sim = Sim::new();
        sim.add_fault(fault("v3", FaultMode::NeverHealthy, T0));
        sim.apply_task_set(update("repo/app:v2", 100.0, 1), T0);
        assert_eq!(states(&sim, T0 + 2 * SECOND), ["healthy"]);
    }

    #[test]
    fn an_unhealthy_after_fault_lets_targets_be_healthy_first() {
        let mut sim = Sim::new();
        sim.add_fault(fault(
            "app",
            FaultMode::UnhealthyAfter {
                after_ms: 4 * SECOND,
            },
            T0,
        ));
        sim.apply_task_set(update("repo/app:v2", 100.0, 1), T0);
        assert_eq!(states(&sim, T0 + SECOND), ["initial"]);
        assert_eq!(states(&sim, T0 + 2 * SECOND), ["healthy"]);
        assert_eq!(states(&sim, T0 + 6 * SECOND - 1), ["healthy"]);
        assert_eq!(states(&sim, T0 + 6 * SECOND), ["unhealthy"]);
    }

    #[test]
    fn a_fault_injected_later_counts_from_when_it_was_added() {
        let mut sim = Sim::new();
        sim.apply_task_set(update("repo/app:v2", 100.0, 1), T0);
        sim.add_fault(fault(
            "app",
            FaultMode::UnhealthyAfter { after_ms: SECOND },
            T0 + 100 * SECOND,
        ));
        assert_eq!(states(&sim, T0 + 100 * SECOND), ["healthy"]);
        assert_eq!(states(&sim, T0 + 101 * SECOND), ["unhealthy"]);
    }

    #[test]
    fn clearing_faults_makes_unhealthy_targets_healthy_again() {
        let mut sim = Sim::new();
        sim.add_fault(fault("app", FaultMode::NeverHealthy, T0));
        sim.apply_task_set(update("repo/app:v2", 100.0, 1), T0);
        assert_eq!(states(&sim, T0 + 3 * SECOND), ["unhealthy"]);
        sim.clear_faults();
        assert_eq!(states(&sim, T0 + 3 * SECOND), ["healthy"]);
    }

    #[test]
    fn a_crash_after_fault_stops_tasks_with_exit_code_1_and_drains_their_targets() {
        let mut sim = Sim::new();
        sim.add_fault(fault(
            "app:v2",
            FaultMode::CrashAfter {
                after_ms: 3 * SECOND,
            },
            T0,
        ));
        sim.apply_task_set(update("repo/app:v2", 100.0, 1), T0);
        assert!(sim.sweep(T0 + 2 * SECOND).deregister.is_empty());
        assert_eq!(states(&sim, T0 + 2 * SECOND), ["healthy"]);

        // Swept late: the crash is dated when it was due, not when it was noticed.
        let changes = sim.sweep(T0 + 4 * SECOND);
        assert!(changes.deregister.is_empty(), "still draining");
        assert_eq!(states(&sim, T0 + 4 * SECOND), ["draining"]);
        let ts = sim.task_set(TS_ARN).expect("simulated");
        let task = &sim.task_views(ts, T0 + 4 * SECOND)[0];
        assert_eq!(task.desired_status, "STOPPED");
        assert_eq!(task.stop_code, Some("EssentialContainerExited"));
        assert_eq!(task.stopping_at, Some(T0 + 3 * SECOND));
        let exit_codes: Vec<Option<i32>> = task.containers.iter().map(|c| c.exit_code).collect();
        assert_eq!(
            exit_codes,
            [Some(1), Some(0)],
            "only the faulty image exits 1"
        );
        assert_eq!(sim.counts(ts, T0 + 4 * SECOND).running, 0);

        let changes = sim.sweep(T0 + 8 * SECOND);
        assert_eq!(changes.deregister.len(), 1);
        assert_eq!(changes.deregister[0].targets, [(task.ip, Some(8080))]);
        assert_eq!(states(&sim, T0 + 8 * SECOND), ["unused"]);
        let ts = sim.task_set(TS_ARN).expect("simulated");
        assert_eq!(
            sim.task_views(ts, T0 + 8 * SECOND)[0].last_status,
            "STOPPED"
        );
        assert!(
            sim.sweep(T0 + 9 * SECOND).deregister.is_empty(),
            "only once"
        );
    }

    #[test]
    fn stability_waits_for_every_task_to_be_healthy() {
        let mut sim = Sim::new();
        sim.apply_task_set(update("app:v1", 100.0, 2), T0);
        let ts = sim.task_set(TS_ARN).expect("simulated");
        let early = sim.counts(ts, T0 + SECOND);
        assert_eq!(
            (early.computed_desired, early.running, early.pending),
            (2, 2, 0)
        );
        assert_eq!(early.stability_status(), "STABILIZING");
        let later = sim.counts(ts, T0 + 2 * SECOND);
        assert_eq!(later.stability_status(), "STEADY_STATE");
        assert_eq!(later.stability_at, T0 + 2 * SECOND);
        assert_eq!(sim.service_counts(&ts.spec.service_arn, T0), Some((2, 0)));
    }

    #[test]
    fn scaling_down_drains_the_newest_tasks_and_keeps_the_others() {
        let mut sim = Sim::new();
        sim.apply_task_set(update("app:v1", 50.0, 4), T0);
        sim.apply_task_set(update("app:v1", 100.0, 4), T0 + 10 * SECOND);
        let changes = sim.apply_task_set(update("app:v1", 50.0, 4), T0 + 20 * SECOND);
        assert!(changes.register.is_empty());
        assert_eq!(
            states(&sim, T0 + 21 * SECOND),
            ["healthy", "healthy", "draining", "draining"]
        );
        let ts = sim.task_set(TS_ARN).expect("simulated");
        let counts = sim.counts(ts, T0 + 21 * SECOND);
        assert_eq!((counts.computed_desired, counts.running), (2, 2));
        assert!(
            !counts.steady,
            "draining tasks keep the task set stabilizing"
        );
        assert!(sim.counts(ts, T0 + 25 * SECOND).steady);
    }

    #[test]
    fn deleting_a_task_set_drains_every_target_then_removes_it() {
        let mut sim = Sim::new();
        sim.apply_task_set(update("app:v1", 100.0, 2), T0);
        let described = serde_json::json!({"taskSetArn": TS_ARN, "status": "ACTIVE"});
        sim.delete_task_set(TS_ARN, Some(described.clone()), T0 + 10 * SECOND);
        assert_eq!(states(&sim, T0 + 11 * SECOND), ["draining", "draining"]);
        let listed = |sim: &Sim, at| -> Vec<Option<serde_json::Value>> {
            sim.draining_task_sets("c1", "svc", at)
                .into_iter()
                .map(|ts| ts.removed.clone())
                .collect()
        };
        assert_eq!(
            listed(&sim, T0 + 11 * SECOND),
            [Some(described)],
            "listed while its tasks drain"
        );
        let changes = sim.sweep(T0 + 15 * SECOND);
        assert_eq!(changes.deregister[0].targets.len(), 2);
        assert_eq!(states(&sim, T0 + 15 * SECOND), ["unused", "unused"]);
        assert!(!sim.knows(TS_ARN));
        assert!(
            listed(&sim, T0 + 15 * SECOND).is_empty(),
            "gone once its tasks stopped"
        );
        let stopped = sim.list_tasks(&TaskQuery {
            cluster: "c1".into(),
            started_by: "ecs-svc/1234567890123456789".into(),
            desired_status: Some("STOPPED".into()),
            ..TaskQuery::default()
        });
        assert_eq!(stopped.map(|arns| arns.len()), Some(2));
    }

    #[test]
    fn list_tasks_filters_by_desired_status_and_ignores_other_task_sets() {
        let mut sim = Sim::new();
        sim.add_fault(fault("v1", FaultMode::CrashAfter { after_ms: SECOND }, T0));
        sim.apply_task_set(update("app:v1", 100.0, 1), T0);
        sim.sweep(T0 + 2 * SECOND);
        let query = |status: Option<&str>| TaskQuery {
            cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/c1".into(),
            started_by: "ecs-svc/1234567890123456789".into(),
            desired_status: status.map(str::to_owned),
            ..TaskQuery::default()
        };
        assert_eq!(sim.list_tasks(&query(None)).map(|a| a.len()), Some(0));
        assert_eq!(
            sim.list_tasks(&query(Some("STOPPED"))).map(|a| a.len()),
            Some(1)
        );
        let other = TaskQuery {
            started_by: "ecs-svc/999".into(),
            ..query(None)
        };
        assert_eq!(sim.list_tasks(&other), None);
    }

    #[test]
    fn describe_tasks_answers_only_when_every_task_is_simulated() {
        let mut sim = Sim::new();
        sim.apply_task_set(update("app:v1", 100.0, 1), T0);
        let ts = sim.task_set(TS_ARN).expect("simulated");
        let arn = ts.tasks[0].arn.clone();
        assert!(arn.starts_with("arn:aws:ecs:us-east-1:123456789012:task/c1/"));
        let id = last_segment(&arn).to_owned();
        let views = sim
            .describe_tasks(&[arn.clone(), id], T0)
            .expect("simulated");
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].started_by, "ecs-svc/1234567890123456789");
        assert!(sim.describe_tasks(&[arn, "other".into()], T0).is_none());
        assert!(sim.describe_tasks(&[], T0).is_none());
    }

    #[test]
    fn task_ips_come_from_the_subnet_and_skip_the_reserved_addresses() {
        let mut ips = IpAllocator::default();
        let subnet: Cidr = "10.0.1.0/30".parse().expect("a cidr");
        let first = ips.allocate(Some(subnet));
        assert_eq!(
            first,
            Ipv4Addr::new(10, 200, 0, 4),
            "a /30 has no usable address"
        );
        let subnet: Cidr = "10.0.1.0/24".parse().expect("a cidr");
        assert_eq!(ips.allocate(Some(subnet)), Ipv4Addr::new(10, 0, 1, 4));
        assert_eq!(ips.allocate(Some(subnet)), Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(ips.allocate(None), Ipv4Addr::new(10, 200, 0, 5));
    }

    #[test]
    fn a_target_group_without_simulated_targets_is_left_to_moto() {
        let sim = Sim::new();
        assert_eq!(sim.target_health(TG_ARN, T0), None);
    }

    #[test]
    fn a_service_scale_change_rescales_its_task_sets() {
        let mut sim = Sim::new();
        sim.apply_task_set(update("app:v1", 50.0, 2), T0);
        let changes =
            sim.rescale_service("arn:aws:ecs:us-east-1:123456789012:service/c1/svc", 6, T0);
        assert_eq!(changes.register[0].targets.len(), 2);
        let ts = sim.task_set(TS_ARN).expect("simulated");
        assert_eq!(sim.counts(ts, T0).computed_desired, 3);
    }
}
