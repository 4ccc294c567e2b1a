//! The [`Alarms`] port over `aws-sdk-cloudwatch`.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::AlarmType;

use crate::error::{Error, Result};
use crate::ports::{AlarmState, Alarms};

/// Amazon CloudWatch through the SDK.
#[derive(Debug, Clone)]
pub struct SdkCloudWatch {
    client: Client,
}

impl SdkCloudWatch {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        SdkCloudWatch { client }
    }

    /// The SDK client, for calls the port does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One `DescribeAlarms` call, every page, metric and composite alarms.
    async fn describe(
        &self,
        names: Option<&[String]>,
        prefix: Option<&str>,
    ) -> Result<Vec<AlarmState>> {
        let resource = match (names, prefix) {
            (Some(n), _) => n.join(","),
            (None, Some(p)) => format!("{p}*"),
            (None, None) => String::new(),
        };
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_alarms()
                .set_alarm_names(names.map(<[String]>::to_vec))
                .set_alarm_name_prefix(prefix.map(str::to_string))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| Error::aws("DescribeAlarms", resource.clone(), e))?;
            for a in out.metric_alarms() {
                found.push(AlarmState {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a
                        .state_value()
                        .map_or("INSUFFICIENT_DATA", |s| s.as_str())
                        .to_string(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                });
            }
            for a in out.composite_alarms() {
                found.push(AlarmState {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a
                        .state_value()
                        .map_or("INSUFFICIENT_DATA", |s| s.as_str())
                        .to_string(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                });
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(found)
    }
}

impl Alarms for SdkCloudWatch {
    /// `DescribeAlarms` by names, then by prefix (the API takes one or the other per call);
    /// an alarm both select is listed once.
    ///
    /// # Errors
    /// [`Error::aws`] of `DescribeAlarms`.
    async fn alarms(&self, names: &[String], prefix: Option<&str>) -> Result<Vec<AlarmState>> {
        let mut found = Vec::new();
        if !names.is_empty() {
            found = self.describe(Some(names), None).await?;
        }
        if let Some(prefix) = prefix {
            for alarm in self.describe(None, Some(prefix)).await? {
                if !found.iter().any(|a| a.name == alarm.name) {
                    found.push(alarm);
                }
            }
        }
        Ok(found)
    }
}
