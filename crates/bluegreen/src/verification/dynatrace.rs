//! Verification of green by Dynatrace metrics of green's release: the `dynatrace` source of
//! the execution input, the queries it makes, and the pure evaluation of their answers.
//!
//! **Green's release version is its image digest** (`sha256:…`, see [`release_version`]):
//! green always runs a digest, a digest is never shared by two different images, and a tag
//! is not enough — a re-pushed tag (`:latest`, the ECR trigger's case) would give blue and
//! green the same version. `CreateGreen` puts it in green's environment as
//! `DT_RELEASE_VERSION` (with `DT_RELEASE_PRODUCT` and, when set, `DT_RELEASE_STAGE` from the
//! deployment's `dynatrace` block); every query is scoped to that release with the entity
//! selector `type(PROCESS_GROUP_INSTANCE),releasesVersion("sha256:…")…`. Blue's baseline is
//! the same query scoped to blue's release version.
//!
//! A check's query is `<metricSelector>:splitBy():<aggregation>` at resolution `Inf` over
//! the last `windowSeconds`: every process of the release merged into one value. The metric
//! must therefore have a process-group-instance dimension (e.g. `builtin:tech.generic.*`,
//! or a calculated service metric split by process group instance); one without it has no
//! data for any release, which is inconclusive, never a pass.
//!
//! Each measurement round evaluates every check to [`Outcome::Pass`], [`Outcome::Fail`] or
//! [`Outcome::Inconclusive`]; the round fails if any check fails, is inconclusive if none
//! fails and any is inconclusive, and passes if all pass ([`DynatraceVerification::judge`]).
//! How many failed or inconclusive rounds in a row are tolerated (`failureLimit`,
//! `inconclusiveLimit`) is the business of [`crate::verification`], as for every source.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dynatrace::{Dynatrace, MetricData, MetricQuery, ReleaseScope};
use crate::error::{Error, Result};
use crate::model::{DynatraceRelease, ImageRef};
use crate::verification::Outcome;

/// Default window of a measurement.
pub const DEFAULT_WINDOW_SECONDS: u32 = 300;
/// Shortest window: Dynatrace's finest resolution is one minute.
pub const MIN_WINDOW_SECONDS: u32 = 60;
/// Longest window.
pub const MAX_WINDOW_SECONDS: u32 = 86_400;
/// Default failed rounds tolerated: the first failure fails verification.
pub const DEFAULT_FAILURE_LIMIT: u32 = 0;
/// Default inconclusive (no data) rounds tolerated.
pub const DEFAULT_INCONCLUSIVE_LIMIT: u32 = 3;
/// Highest limit accepted.
pub const MAX_LIMIT: u32 = 100;
/// Most checks of one source (each is one or two queries per round).
pub const MAX_CHECKS: usize = 10;
/// Longest metric selector accepted.
pub const MAX_SELECTOR_LEN: usize = 1000;

/// Transformations a check's selector must not end with: the check adds its own.
const AGGREGATIONS: &[&str] = &[
    "avg",
    "min",
    "max",
    "sum",
    "count",
    "median",
    "value",
    "percentile",
];

/// The `dynatrace` verification source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynatraceVerification {
    /// What is measured; 1 to [`MAX_CHECKS`], names unique.
    pub checks: Vec<MetricCheck>,
    /// Each measurement covers the last this many seconds (60–86400).
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u32,
    /// Failed rounds tolerated since the last passing one (0–100); 0: the first fails.
    #[serde(default)]
    pub failure_limit: u32,
    /// Inconclusive rounds tolerated since the last passing one (0–100).
    #[serde(default = "default_inconclusive_limit")]
    pub inconclusive_limit: u32,
}

fn default_window_seconds() -> u32 {
    DEFAULT_WINDOW_SECONDS
}

fn default_inconclusive_limit() -> u32 {
    DEFAULT_INCONCLUSIVE_LIMIT
}

/// One metric and what it must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricCheck {
    /// Names the check in results and messages: 1–64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// A metric key with optional transformations that keep its process group instance
    /// dimension (such as `:filter(…)`), e.g. `builtin:tech.generic.cpu.usage`.
    pub metric_selector: String,
    /// How data points are combined: `avg` (default), `min`, `max`, `sum`, `count`,
    /// `median` or `percentile(N)`.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Absolute bounds of green's value.
    #[serde(default)]
    pub threshold: Threshold,
    /// Bounds of green's value relative to blue's over the same window.
    #[serde(default)]
    pub compare_to_baseline: Option<BaselineComparison>,
}

/// Absolute bounds; either may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Threshold {
    /// Green fails above this.
    #[serde(default)]
    pub max: Option<f64>,
    /// Green fails below this.
    #[serde(default)]
    pub min: Option<f64>,
}

/// Bounds of green ÷ blue; either may be absent, not both.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaselineComparison {
    /// Green fails above this many times blue's value (e.g. 1.2: 20 % worse).
    #[serde(default)]
    pub max_ratio: Option<f64>,
    /// Green fails below this many times blue's value (e.g. 0.8 for throughput).
    #[serde(default)]
    pub min_ratio: Option<f64>,
}

/// A metric selector aggregation transformation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Aggregation {
    #[default]
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Median,
    /// `percentile(N)`, 0 < N < 100.
    Percentile(f64),
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Avg => f.write_str("avg"),
            Aggregation::Min => f.write_str("min"),
            Aggregation::Max => f.write_str("max"),
            Aggregation::Sum => f.write_str("sum"),
            Aggregation::Count => f.write_str("count"),
            Aggregation::Median => f.write_str("median"),
            Aggregation::Percentile(p) => write!(f, "percentile({p})"),
        }
    }
}

impl TryFrom<String> for Aggregation {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "aggregation must be avg, min, max, sum, count, median or percentile(N) with 0 < N < 100, got {text:?}"
            )
        };
        Ok(match text.trim() {
            "avg" => Aggregation::Avg,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "sum" => Aggregation::Sum,
            "count" => Aggregation::Count,
            "median" => Aggregation::Median,
            other => {
                let n: f64 = other
                    .strip_prefix("percentile(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(bad)?;
                if !(n > 0.0 && n < 100.0) {
                    return Err(bad());
                }
                Aggregation::Percentile(n)
            }
        })
    }
}

impl From<Aggregation> for String {
    fn from(a: Aggregation) -> Self {
        a.to_string()
    }
}

/// Green's release version: the digest of its pinned image.
///
/// # Errors
/// [`Error::InvalidInput`] when `image` is not `registry/repository@sha256:…`.
pub fn release_version(image: &str) -> Result<String> {
    ImageRef::parse(image)?.digest.ok_or_else(|| {
        Error::InvalidInput(format!(
            "image {image:?} is not pinned by digest; green's release version is its digest"
        ))
    })
}

impl DynatraceVerification {
    /// Parses and checks a `dynatrace` source.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn parse(value: serde_json::Value) -> Result<Self> {
        let source: DynatraceVerification = crate::lambda::parse_payload(value)?;
        source.check()?;
        Ok(source)
    }

    /// [`DynatraceVerification::check_at`] `verification.dynatrace`.
    ///
    /// # Errors
    /// As [`DynatraceVerification::check_at`].
    pub fn check(&self) -> Result<()> {
        self.check_at("verification.dynatrace")
    }

    /// Checks every value; messages name fields below `path`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field.
    pub fn check_at(&self, path: &str) -> Result<()> {
        let bad =
            |field: String, why: String| Err(Error::InvalidInput(format!("{path}.{field} {why}")));
        if self.checks.is_empty() || self.checks.len() > MAX_CHECKS {
            return bad(
                "checks".into(),
                format!(
                    "must have 1 to {MAX_CHECKS} checks, got {}",
                    self.checks.len()
                ),
            );
        }
        if !(MIN_WINDOW_SECONDS..=MAX_WINDOW_SECONDS).contains(&self.window_seconds) {
            return bad(
                "windowSeconds".into(),
                format!(
                    "must be {MIN_WINDOW_SECONDS} to {MAX_WINDOW_SECONDS}, got {}",
                    self.window_seconds
                ),
            );
        }
        for (field, limit) in [
            ("failureLimit", self.failure_limit),
            ("inconclusiveLimit", self.inconclusive_limit),
        ] {
            if limit > MAX_LIMIT {
                return bad(
                    field.into(),
                    format!("must be 0 to {MAX_LIMIT}, got {limit}"),
                );
            }
        }
        for (i, check) in self.checks.iter().enumerate() {
            let at = |field: &str| format!("checks[{i}].{field}");
            let name_ok = (1..=64).contains(&check.name.len())
                && check
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !name_ok {
                return bad(
                    at("name"),
                    format!("must be 1 to 64 of A-Z a-z 0-9 . _ -, got {:?}", check.name),
                );
            }
            if self.checks[..i].iter().any(|c| c.name == check.name) {
                return bad(
                    at("name"),
                    format!("{:?} is used by an earlier check", check.name),
                );
            }
            if let Err(why) = check_selector(&check.metric_selector) {
                return bad(at("metricSelector"), why);
            }
            let t = check.threshold;
            for (field, v) in [("threshold.max", t.max), ("threshold.min", t.min)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    return bad(at(field), "must be a finite number".into());
                }
            }
            if let (Some(min), Some(max)) = (t.min, t.max)
                && min > max
            {
                return bad(
                    at("threshold"),
                    format!("min ({min}) must not be above max ({max})"),
                );
            }
            let mut bounded = t.min.is_some() || t.max.is_some();
            if let Some(b) = check.compare_to_baseline {
                if b.max_ratio.is_none() && b.min_ratio.is_none() {
                    return bad(
                        at("compareToBaseline"),
                        "needs maxRatio, minRatio or both".into(),
                    );
                }
                for (field, v) in [
                    ("compareToBaseline.maxRatio", b.max_ratio),
                    ("compareToBaseline.minRatio", b.min_ratio),
                ] {
                    if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                        return bad(at(field), "must be a number above 0".into());
                    }
                }
                if let (Some(min), Some(max)) = (b.min_ratio, b.max_ratio)
                    && min > max
                {
                    return bad(
                        at("compareToBaseline"),
                        format!("minRatio ({min}) must not be above maxRatio ({max})"),
                    );
                }
                bounded = true;
            }
            if !bounded {
                return bad(
                    at("threshold"),
                    "needs max or min, or the check needs compareToBaseline: a check without bounds cannot fail".into(),
                );
            }
        }
        Ok(())
    }

    /// The query of `check` for `release` over the window ending at `now_ms`.
    pub fn query(&self, check: &MetricCheck, release: &ReleaseScope, now_ms: u64) -> MetricQuery {
        MetricQuery {
            metric_selector: check.selector(),
            from_ms: now_ms.saturating_sub(u64::from(self.window_seconds) * 1000),
            to_ms: now_ms,
            resolution: Some("Inf".into()),
            release: release.clone(),
        }
    }

    /// Measures every check for green's release and, where a check compares to it, blue's
    /// (`None`: blue's release is not known, so there is no baseline to compare to).
    ///
    /// # Errors
    /// The first error of a query (see [`Dynatrace::metric`]): a rejected token or
    /// selector, throttling, a transient failure. No data is not an error.
    pub async fn measure<D: Dynatrace>(
        &self,
        dynatrace: &D,
        green: &ReleaseScope,
        blue: Option<&ReleaseScope>,
        now_ms: u64,
    ) -> Result<Vec<Measurement>> {
        let mut measurements = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            let green_data = dynatrace.metric(&self.query(check, green, now_ms)).await?;
            let baseline = match (check.compare_to_baseline, blue) {
                (None, _) => Baseline::NotCompared,
                (Some(_), None) => Baseline::Unidentified,
                (Some(_), Some(blue)) => Baseline::Values(
                    dynatrace
                        .metric(&self.query(check, blue, now_ms))
                        .await?
                        .values(),
                ),
            };
            measurements.push(Measurement {
                check: check.name.clone(),
                green: green_data.values(),
                baseline,
            });
        }
        Ok(measurements)
    }

    /// Judges one round of `measurements`: every check's result, and the round's outcome
    /// (any failing check fails it, else any inconclusive one makes it inconclusive, else it
    /// passes). A check without a measurement is inconclusive.
    pub fn judge(&self, measurements: &[Measurement]) -> (Outcome, Vec<CheckResult>) {
        let checks: Vec<CheckResult> = self
            .checks
            .iter()
            .map(
                |check| match measurements.iter().find(|m| m.check == check.name) {
                    Some(m) => check.evaluate(m, self.window_seconds),
                    None => CheckResult {
                        name: check.name.clone(),
                        outcome: Outcome::Inconclusive {
                            reason: format!("check {} was not measured", check.name),
                        },
                        value: None,
                        baseline: None,
                    },
                },
            )
            .collect();
        let outcomes: Vec<Outcome> = checks.iter().map(|c| c.outcome.clone()).collect();
        (Outcome::combine(&outcomes), checks)
    }
}

/// The release of `version` (an image digest) with the deployment's stage and product.
pub fn release_scope(release: &DynatraceRelease, version: impl Into<String>) -> ReleaseScope {
    ReleaseScope {
        version: version.into(),
        stage: release.release_stage.clone(),
        product: release.release_product.clone(),
    }
}

/// Checks a selector the way the check will use it.
fn check_selector(selector: &str) -> std::result::Result<(), String> {
    let s = selector.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_SELECTOR_LEN {
        return Err(format!("must be at most {MAX_SELECTOR_LEN} characters"));
    }
    if s != selector {
        return Err("must not start or end with whitespace".into());
    }
    // Outside quotes and parentheses: a comma would be a second metric, and the last
    // transformation must not be the check's own job.
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    let mut top_level = String::new();
    for c in s.chars() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '~' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("has an unbalanced ')'")?,
            ',' if depth == 0 => {
                return Err("must select one metric (no top-level comma)".into());
            }
            _ if depth == 0 => top_level.push(c),
            _ => {}
        }
    }
    if quoted || depth != 0 {
        return Err("has an unclosed quote or parenthesis".into());
    }
    let transformations: Vec<&str> = top_level.split(':').skip(1).collect();
    for t in &transformations {
        if matches!(*t, "splitBy" | "fold") {
            return Err(format!(
                "must not use :{t}: the check adds :splitBy() and its aggregation itself"
            ));
        }
    }
    if let Some(last) = transformations.last()
        && AGGREGATIONS.contains(last)
    {
        return Err(format!(
            "must not end with :{last}: set the check's aggregation instead"
        ));
    }
    Ok(())
}

impl MetricCheck {
    /// The selector sent: `<metricSelector>:splitBy():<aggregation>`.
    pub fn selector(&self) -> String {
        format!("{}:splitBy():{}", self.metric_selector, self.aggregation)
    }

    /// Evaluates one measurement of this check.
    pub fn evaluate(&self, m: &Measurement, window_seconds: u32) -> CheckResult {
        let result = |outcome, value, baseline| CheckResult {
            name: self.name.clone(),
            outcome,
            value,
            baseline,
        };
        let what = format!("{} of {}", self.aggregation, self.metric_selector);
        if m.green.is_empty() {
            return result(
                Outcome::Inconclusive {
                    reason: format!(
                        "check {}: no data for green's release over the last {window_seconds} s ({what})",
                        self.name
                    ),
                },
                None,
                None,
            );
        }
        let highest = m.green.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lowest = m.green.iter().copied().fold(f64::INFINITY, f64::min);
        let shown = if self.threshold.min.is_some() && self.threshold.max.is_none() {
            lowest
        } else {
            highest
        };
        if let Some(max) = self.threshold.max
            && highest > max
        {
            return result(
                Outcome::Fail {
                    reason: format!(
                        "check {}: green's {what} is {}, above the maximum {}",
                        self.name,
                        number(highest),
                        number(max)
                    ),
                },
                Some(highest),
                None,
            );
        }
        if let Some(min) = self.threshold.min
            && lowest < min
        {
            return result(
                Outcome::Fail {
                    reason: format!(
                        "check {}: green's {what} is {}, below the minimum {}",
                        self.name,
                        number(lowest),
                        number(min)
                    ),
                },
                Some(lowest),
                None,
            );
        }
        let Some(comparison) = self.compare_to_baseline else {
            return result(Outcome::Pass, Some(shown), None);
        };
        let blue = match &m.baseline {
            Baseline::NotCompared | Baseline::Unidentified => {
                // No blue release to compare to (e.g. blue was not deployed by this
                // workflow): the absolute threshold is all there is.
                return result(Outcome::Pass, Some(shown), None);
            }
            Baseline::Values(values) if values.is_empty() => {
                return result(
                    Outcome::Inconclusive {
                        reason: format!(
                            "check {}: no data for blue's release over the last {window_seconds} s to compare to ({what})",
                            self.name
                        ),
                    },
                    Some(shown),
                    None,
                );
            }
            Baseline::Values(values) => values,
        };
        let blue_highest = blue.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let blue_lowest = blue.iter().copied().fold(f64::INFINITY, f64::min);
        if lowest < 0.0 || blue_lowest < 0.0 {
            return result(
                Outcome::Inconclusive {
                    reason: format!(
                        "check {}: a ratio to blue's baseline means nothing for negative values ({what})",
                        self.name
                    ),
                },
                Some(shown),
                Some(blue_highest),
            );
        }
        if let Some(max_ratio) = comparison.max_ratio {
            let fails = if blue_highest == 0.0 {
                highest > 0.0
            } else {
                highest / blue_highest > max_ratio
            };
            if fails {
                let ratio = if blue_highest == 0.0 {
                    "blue's is 0".to_string()
                } else {
                    format!(
                        "{}× blue's {}",
                        number(highest / blue_highest),
                        number(blue_highest)
                    )
                };
                return result(
                    Outcome::Fail {
                        reason: format!(
                            "check {}: green's {what} is {} ({ratio}), above maxRatio {}",
                            self.name,
                            number(highest),
                            number(max_ratio)
                        ),
                    },
                    Some(highest),
                    Some(blue_highest),
                );
            }
        }
        if let Some(min_ratio) = comparison.min_ratio
            && blue_lowest > 0.0
            && lowest / blue_lowest < min_ratio
        {
            return result(
                Outcome::Fail {
                    reason: format!(
                        "check {}: green's {what} is {} ({}× blue's {}), below minRatio {}",
                        self.name,
                        number(lowest),
                        number(lowest / blue_lowest),
                        number(blue_lowest),
                        number(min_ratio)
                    ),
                },
                Some(lowest),
                Some(blue_lowest),
            );
        }
        let blue_shown = if comparison.max_ratio.is_some() {
            blue_highest
        } else {
            blue_lowest
        };
        result(Outcome::Pass, Some(shown), Some(blue_shown))
    }
}

/// A number in a message: at most four decimals, no trailing zeros.
fn number(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// What one check measured in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The check's name.
    pub check: String,
    /// Green's values ([`MetricData::values`]); empty: no data.
    pub green: Vec<f64>,
    /// Blue's values, where the check compares to them.
    pub baseline: Baseline,
}

impl Measurement {
    /// A measurement from Dynatrace's answers.
    pub fn from_data(check: &str, green: &MetricData, baseline: Option<&MetricData>) -> Self {
        Measurement {
            check: check.to_string(),
            green: green.values(),
            baseline: baseline.map_or(Baseline::NotCompared, |b| Baseline::Values(b.values())),
        }
    }
}

/// Blue's side of a measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// The check does not compare to blue.
    NotCompared,
    /// Blue's release is not known, so there is nothing to compare to.
    Unidentified,
    /// Blue's values; empty: no data.
    Values(Vec<f64>),
}

/// One check's result in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Green's value the verdict rests on (the highest, or the lowest for a minimum).
    pub value: Option<f64>,
    /// Blue's value it was compared to.
    pub baseline: Option<f64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn source(v: serde_json::Value) -> DynatraceVerification {
        DynatraceVerification::parse(v).unwrap()
    }

    fn error_rate() -> DynatraceVerification {
        source(json!({
            "checks": [{
                "name": "error-rate",
                "metricSelector": "calc:service.errors.rate",
                "threshold": {"max": 5}
            }]
        }))
    }

    fn measured(check: &str, green: &[f64]) -> Measurement {
        Measurement {
            check: check.into(),
            green: green.to_vec(),
            baseline: Baseline::NotCompared,
        }
    }

    fn compared(check: &str, green: &[f64], blue: &[f64]) -> Measurement {
        Measurement {
            check: check.into(),
            green: green.to_vec(),
            baseline: Baseline::Values(blue.to_vec()),
        }
    }

    #[test]
    fn a_minimal_source_gets_every_default() {
        let s = error_rate();
        assert_eq!(s.window_seconds, DEFAULT_WINDOW_SECONDS);
        assert_eq!(s.failure_limit, 0);
        assert_eq!(s.inconclusive_limit, 3);
        assert_eq!(s.checks[0].aggregation, Aggregation::Avg);
        assert_eq!(s.checks[0].compare_to_baseline, None);
        assert_eq!(
            s.checks[0].selector(),
            "calc:service.errors.rate:splitBy():avg"
        );
    }

    fn release(stage: Option<&str>) -> DynatraceRelease {
        DynatraceRelease {
            release_product: None,
            release_stage: stage.map(str::to_string),
            events: true,
            entity_selector: None,
        }
    }

    #[test]
    fn queries_cover_the_window_of_greens_release_at_resolution_inf() {
        let s = source(json!({
            "windowSeconds": 120,
            "checks": [{"name": "p95", "metricSelector": "builtin:tech.generic.cpu.usage", "aggregation": "percentile(95)", "threshold": {"max": 80}}]
        }));
        let release = release_scope(
            &release(Some("production")),
            release_version(&format!("r.io/orders@{DIGEST}")).unwrap(),
        );
        let q = s.query(&s.checks[0], &release, 1_000_000);
        assert_eq!(
            q.metric_selector,
            "builtin:tech.generic.cpu.usage:splitBy():percentile(95)"
        );
        assert_eq!((q.from_ms, q.to_ms), (880_000, 1_000_000));
        assert_eq!(q.resolution.as_deref(), Some("Inf"));
        assert_eq!(
            q.release.entity_selector(),
            format!(
                "type(PROCESS_GROUP_INSTANCE),releasesVersion(\"{DIGEST}\"),releasesStage(\"production\")"
            )
        );
    }

    #[test]
    fn the_release_version_is_the_digest_and_a_tag_is_not_enough() {
        assert_eq!(
            release_version(&format!("r.io/orders@{DIGEST}")).unwrap(),
            DIGEST
        );
        let err = release_version("r.io/orders:v2").unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("digest"), "{err}");
    }

    #[test]
    fn bad_sources_are_rejected_naming_the_field() {
        let check = json!({"name": "c", "metricSelector": "m", "threshold": {"max": 1}});
        let cases = [
            (
                json!({"checks": []}),
                "verification.dynatrace.checks must have 1 to 10",
            ),
            (
                json!({"checks": [check], "windowSeconds": 30}),
                "windowSeconds must be 60",
            ),
            (
                json!({"checks": [check], "failureLimit": 101}),
                "failureLimit must be 0 to 100",
            ),
            (
                json!({"checks": [check, check]}),
                "checks[1].name \"c\" is used",
            ),
            (
                json!({"checks": [{"name": "a b", "metricSelector": "m", "threshold": {"max": 1}}]}),
                "checks[0].name must be",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m"}]}),
                "checks[0].threshold needs max or min",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m", "threshold": {"min": 2, "max": 1}}]}),
                "min (2) must not be above max (1)",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m", "compareToBaseline": {}}]}),
                "compareToBaseline needs maxRatio",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m", "compareToBaseline": {"maxRatio": 0}}]}),
                "maxRatio must be a number above 0",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m:avg", "threshold": {"max": 1}}]}),
                "must not end with :avg",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m:splitBy(\"x\")", "threshold": {"max": 1}}]}),
                "must not use :splitBy",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "a,b", "threshold": {"max": 1}}]}),
                "one metric",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m:filter(eq(\"a\",\"b\"", "threshold": {"max": 1}}]}),
                "unclosed",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m", "aggregation": "p95", "threshold": {"max": 1}}]}),
                "checks[0].aggregation: aggregation must be",
            ),
            (
                json!({"checks": [{"name": "c", "metricSelector": "m", "treshold": {"max": 1}}]}),
                "treshold",
            ),
            (
                json!({"checks": [check], "windowSecond": 60}),
                "windowSecond",
            ),
        ];
        for (value, expected) in cases {
            let err = DynatraceVerification::parse(value.clone()).unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{value}");
            assert!(err.to_string().contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn a_filter_with_commas_inside_is_one_metric_and_aggregations_round_trip() {
        let s = source(json!({"checks": [{
            "name": "c",
            "metricSelector": "builtin:tech.generic.cpu.usage:filter(and(eq(\"a\",\"x,y\"),eq(\"b\",\"z\")))",
            "aggregation": "percentile(99.9)",
            "threshold": {"max": 1}
        }]}));
        assert_eq!(s.checks[0].aggregation, Aggregation::Percentile(99.9));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["checks"][0]["aggregation"], json!("percentile(99.9)"));
        assert_eq!(DynatraceVerification::parse(back).unwrap(), s);
    }

    #[test]
    fn a_value_above_the_maximum_fails_and_at_the_maximum_passes() {
        let s = error_rate();
        let fail = s.checks[0].evaluate(&measured("error-rate", &[1.0, 7.5]), 300);
        assert_eq!(
            fail.outcome,
            Outcome::Fail {
                reason: "check error-rate: green's avg of calc:service.errors.rate is 7.5, above the maximum 5".into()
            }
        );
        assert_eq!(fail.value, Some(7.5));
        let pass = s.checks[0].evaluate(&measured("error-rate", &[5.0]), 300);
        assert_eq!(pass.outcome, Outcome::Pass);
        assert_eq!(pass.value, Some(5.0));
    }

    #[test]
    fn a_value_below_the_minimum_fails() {
        let s = source(
            json!({"checks": [{"name": "throughput", "metricSelector": "calc:service.requests", "aggregation": "sum", "threshold": {"min": 10}}]}),
        );
        let r = s.checks[0].evaluate(&measured("throughput", &[12.0, 3.0]), 300);
        assert!(
            matches!(&r.outcome, Outcome::Fail { reason } if reason.contains("is 3, below the minimum 10")),
            "{r:?}"
        );
        assert_eq!(r.value, Some(3.0));
    }

    #[test]
    fn no_data_is_inconclusive_never_a_pass() {
        let s = error_rate();
        let r = s.checks[0].evaluate(&measured("error-rate", &[]), 300);
        assert!(
            matches!(&r.outcome, Outcome::Inconclusive { reason } if reason.contains("no data for green's release over the last 300 s")),
            "{r:?}"
        );
        let data = MetricData {
            series: vec![crate::dynatrace::MetricSeries {
                values: vec![None, Some(f64::NAN)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = Measurement::from_data("error-rate", &data, None);
        assert!(m.green.is_empty(), "null and NaN values are no data");
    }

    fn latency(max_ratio: f64) -> DynatraceVerification {
        source(json!({"checks": [{
            "name": "latency",
            "metricSelector": "calc:service.response.time",
            "aggregation": "percentile(95)",
            "threshold": {"max": 2000},
            "compareToBaseline": {"maxRatio": max_ratio}
        }]}))
    }

    #[test]
    fn green_fails_when_worse_than_blue_by_more_than_the_ratio() {
        let s = latency(1.5);
        let r = s.checks[0].evaluate(&compared("latency", &[240.0], &[100.0]), 300);
        assert!(
            matches!(&r.outcome, Outcome::Fail { reason } if reason.contains("is 240 (2.4× blue's 100), above maxRatio 1.5")),
            "{r:?}"
        );
        assert_eq!((r.value, r.baseline), (Some(240.0), Some(100.0)));
        let ok = s.checks[0].evaluate(&compared("latency", &[150.0], &[100.0]), 300);
        assert_eq!(ok.outcome, Outcome::Pass);
        assert_eq!(ok.baseline, Some(100.0));
    }

    #[test]
    fn a_zero_baseline_fails_any_green_above_zero_and_passes_zero() {
        let s = latency(1.5);
        let r = s.checks[0].evaluate(&compared("latency", &[0.1], &[0.0]), 300);
        assert!(
            matches!(&r.outcome, Outcome::Fail { reason } if reason.contains("blue's is 0")),
            "{r:?}"
        );
        let r = s.checks[0].evaluate(&compared("latency", &[0.0], &[0.0]), 300);
        assert_eq!(r.outcome, Outcome::Pass);
    }

    #[test]
    fn a_min_ratio_fails_green_far_below_blue() {
        let s = source(
            json!({"checks": [{"name": "rps", "metricSelector": "calc:service.requests", "compareToBaseline": {"minRatio": 0.8}}]}),
        );
        let r = s.checks[0].evaluate(&compared("rps", &[50.0], &[100.0]), 300);
        assert!(
            matches!(&r.outcome, Outcome::Fail { reason } if reason.contains("0.5× blue's 100), below minRatio 0.8")),
            "{r:?}"
        );
        let r = s.checks[0].evaluate(&compared("rps", &[90.0], &[100.0]), 300);
        assert_eq!(r.outcome, Outcome::Pass);
    }

    #[test]
    fn no_baseline_data_is_inconclusive_but_an_unknown_blue_release_compares_to_nothing() {
        let s = latency(1.5);
        let r = s.checks[0].evaluate(&compared("latency", &[150.0], &[]), 300);
        assert!(
            matches!(&r.outcome, Outcome::Inconclusive { reason } if reason.contains("no data for blue's release")),
            "{r:?}"
        );
        let unknown = Measurement {
            check: "latency".into(),
            green: vec![150.0],
            baseline: Baseline::Unidentified,
        };
        assert_eq!(s.checks[0].evaluate(&unknown, 300).outcome, Outcome::Pass);
        // A threshold failure is definite even without a baseline.
        let r = s.checks[0].evaluate(&compared("latency", &[2500.0], &[]), 300);
        assert!(matches!(r.outcome, Outcome::Fail { .. }), "{r:?}");
    }

    #[test]
    fn a_failing_check_outweighs_an_inconclusive_one_in_a_round() {
        let s = source(json!({
            "checks": [
                {"name": "a", "metricSelector": "m.a", "threshold": {"max": 1}},
                {"name": "b", "metricSelector": "m.b", "threshold": {"max": 1}}
            ]
        }));
        let (round, checks) = s.judge(&[measured("a", &[5.0]), measured("b", &[])]);
        assert!(
            matches!(&round, Outcome::Fail { reason } if reason.contains("check a") && !reason.contains("check b")),
            "{round:?}"
        );
        assert_eq!(checks.len(), 2);
        assert!(matches!(checks[1].outcome, Outcome::Inconclusive { .. }));
        let (round, _) = s.judge(&[measured("a", &[0.5]), measured("b", &[])]);
        assert!(matches!(round, Outcome::Inconclusive { .. }), "{round:?}");
        let (round, _) = s.judge(&[measured("a", &[0.5]), measured("b", &[1.0])]);
        assert_eq!(round, Outcome::Pass);
    }

    #[test]
    fn a_check_without_a_measurement_is_inconclusive() {
        let s = error_rate();
        let (round, checks) = s.judge(&[]);
        assert!(
            matches!(&checks[0].outcome, Outcome::Inconclusive { reason } if reason.contains("not measured")),
            "{checks:?}"
        );
        assert!(matches!(round, Outcome::Inconclusive { .. }));
    }

    #[test]
    fn check_results_serialize_with_their_verdict() {
        let s = error_rate();
        let (_, checks) = s.judge(&[measured("error-rate", &[7.0])]);
        let v = serde_json::to_value(&checks[0]).unwrap();
        assert_eq!(v["verdict"], json!("fail"));
        assert_eq!(v["name"], json!("error-rate"));
        assert_eq!(v["value"], json!(7.0));
    }

    mod against_the_fake_dynatrace {
        use super::*;
        use crate::dynatrace::tests_support::FakeApi;

        #[tokio::test]
        async fn measures_green_and_blue_separately_and_fails_a_regressed_canary() {
            // Given green at 240 ms and blue at 100 ms for the same metric
            let fake = FakeApi::start().await;
            let dt = fake.reader().await;
            let blue_digest = format!("sha256:{}", "2".repeat(64));
            fake.rule(json!({"metricSelectorContains": "calc:service.response.time", "releaseVersion": DIGEST, "value": 240})).await;
            fake.rule(json!({"metricSelectorContains": "calc:service.response.time", "releaseVersion": blue_digest, "value": 100})).await;
            let s = latency(1.5);

            // When measured and evaluated
            let green = release_scope(&release(None), DIGEST);
            let blue = release_scope(&release(None), blue_digest.clone());
            let m = s
                .measure(&dt, &green, Some(&blue), 1_767_225_600_000)
                .await
                .unwrap();
            let (round, _) = s.judge(&m);

            // Then green is compared to blue and fails
            assert_eq!(m[0].green, vec![240.0]);
            assert_eq!(m[0].baseline, Baseline::Values(vec![100.0]));
            assert!(
                matches!(&round, Outcome::Fail { reason } if reason.contains("2.4× blue's 100")),
                "{round:?}"
            );
            let queries = fake.control("queries").await;
            assert_eq!(queries["queries"][0]["releaseVersion"], json!(DIGEST));
            assert_eq!(queries["queries"][1]["releaseVersion"], json!(blue_digest));
            assert_eq!(queries["queries"][0]["resolution"], json!("Inf"));
        }
    }
}
