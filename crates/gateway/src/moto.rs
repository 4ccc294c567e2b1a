//! The gateway's own calls to moto: plain HTTP with a SigV4-looking `Authorization` header
//! (moto routes by the credential scope's service name and never checks signatures).

use std::net::Ipv4Addr;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use crate::error::Error;
use crate::sim::{Cidr, Container, TargetChange};
use crate::xml::Element;

/// The account and region a request was made in, as far as moto cares: moto keeps one
/// backend per account (derived from the access key) and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub access_key: String,
    pub region: String,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            access_key: "test".to_owned(),
            region: "us-east-1".to_owned(),
        }
    }
}

/// The parts of a SigV4 `Credential=AKID/DATE/REGION/SERVICE/aws4_request` scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub scope: Scope,
    pub service: String,
}

impl Credential {
    /// Reads the credential scope out of an `Authorization` header value.
    pub fn parse(authorization: &str) -> Option<Credential> {
        let rest = authorization.split("Credential=").nth(1)?;
        let credential = rest.split([',', ' ']).next()?;
        let mut parts = credential.split('/');
        let access_key = parts.next()?.to_owned();
        let _date = parts.next()?;
        let region = parts.next()?.to_owned();
        let service = parts.next()?.to_owned();
        Some(Credential {
            scope: Scope { access_key, region },
            service,
        })
    }

    pub fn from_headers(headers: &HeaderMap) -> Option<Credential> {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Credential::parse)
    }
}

impl Scope {
    /// An `Authorization` header moto accepts for `service` in this scope.
    pub fn authorization(&self, service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/{}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0",
            self.access_key, self.region
        )
    }
}

const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
const ELBV2_VERSION: &str = "2015-12-01";
const EC2_VERSION: &str = "2016-11-15";

/// A client for the lookups and target (de)registrations the simulation needs.
#[derive(Debug, Clone)]
pub struct MotoClient {
    http: reqwest::Client,
    base: String,
}

impl MotoClient {
    pub fn new(http: reqwest::Client, base: String) -> Self {
        Self { http, base }
    }

    /// Calls an ECS operation (JSON 1.1) and returns the answer.
    ///
    /// # Errors
    /// [`Error::MotoUnreachable`], [`Error::MotoStatus`] for a non-200 answer,
    /// [`Error::MotoAnswer`] when the answer is not JSON.
    pub async fn ecs(&self, scope: &Scope, op: &str, body: &Value) -> Result<Value, Error> {
        let answer = self
            .http
            .post(format!("{}/", self.base))
            .header(header::AUTHORIZATION, scope.authorization("ecs"))
            .header("X-Amz-Target", format!("{ECS_TARGET_PREFIX}.{op}"))
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .map_err(|source| Error::MotoUnreachable {
                op: format!("ecs:{op}"),
                source,
            })?;
        let text = checked_text(answer, &format!("ecs:{op}")).await?;
        serde_json::from_str(&text).map_err(|e| Error::MotoAnswer {
            op: format!("ecs:{op}"),
            reason: e.to_string(),
        })
    }

    /// Calls a Query-protocol operation (form POST) and returns the parsed XML answer.
    async fn query(
        &self,
        scope: &Scope,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Element, Error> {
        let op = format!("{service}:{action}");
        // The serializer is not `Send`; finish it before the first `.await`.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", version);
            for (key, value) in params {
                form.append_pair(key, value);
            }
            form.finish()
        };
        let answer = self
            .http
            .post(format!("{}/", self.base))
            .header(header::AUTHORIZATION, scope.authorization(service))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|source| Error::MotoUnreachable {
                op: op.clone(),
                source,
            })?;
        let text = checked_text(answer, &op).await?;
        Element::parse(&text).map_err(|e| Error::MotoAnswer {
            op,
            reason: e.to_string(),
        })
    }

    async fn elbv2(
        &self,
        scope: &Scope,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Element, Error> {
        self.query(scope, "elasticloadbalancing", ELBV2_VERSION, action, params)
            .await
    }

    /// The service's `desiredCount`.
    ///
    /// # Errors
    /// As [`MotoClient::ecs`], and [`Error::MotoAnswer`] when the service is not found.
    pub async fn service_desired_count(
        &self,
        scope: &Scope,
        cluster: &str,
        service: &str,
    ) -> Result<u32, Error> {
        let answer = self
            .ecs(
                scope,
                "DescribeServices",
                &json!({"cluster": cluster, "services": [service]}),
            )
            .await?;
        answer["services"][0]["desiredCount"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::MotoAnswer {
                op: "ecs:DescribeServices".to_owned(),
                reason: format!("no desiredCount for service {service} in cluster {cluster}"),
            })
    }

    /// The containers (name and image) of a task definition.
    ///
    /// # Errors
    /// As [`MotoClient::ecs`], and [`Error::MotoAnswer`] when it has no containers.
    pub async fn task_definition_containers(
        &self,
        scope: &Scope,
        task_definition: &str,
    ) -> Result<Vec<Container>, Error> {
        let answer = self
            .ecs(
                scope,
                "DescribeTaskDefinition",
                &json!({"taskDefinition": task_definition}),
            )
            .await?;
        let containers: Vec<Container> = answer["taskDefinition"]["containerDefinitions"]
            .as_array()
            .map(|defs| {
                defs.iter()
                    .map(|def| Container {
                        name: def["name"].as_str().unwrap_or_default().to_owned(),
                        image: def["image"].as_str().unwrap_or_default().to_owned(),
                        secrets: def["secrets"]
                            .as_array()
                            .map(|secrets| {
                                secrets
                                    .iter()
                                    .map(|s| {
                                        (
                                            s["name"].as_str().unwrap_or_default().to_owned(),
                                            s["valueFrom"].as_str().unwrap_or_default().to_owned(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if containers.is_empty() {
            return Err(Error::MotoAnswer {
                op: "ecs:DescribeTaskDefinition".to_owned(),
                reason: format!("task definition {task_definition} has no containers"),
            });
        }
        Ok(containers)
    }

    /// What a task started now gets for `value_from` (a Secrets Manager ARN or name, with an
    /// optional `:<json key>:<stage>:<version>`): the Dynatrace token id of the value, never
    /// the value; or why there is none.
    pub async fn secret_holds(&self, scope: &Scope, value_from: &str) -> String {
        let (secret_id, key, stage, version) = split_value_from(value_from);
        let mut body = json!({ "SecretId": secret_id });
        // ECS fetches AWSCURRENT unless the valueFrom names a stage or a version.
        if let Some(stage) = stage.or((version.is_none()).then_some("AWSCURRENT")) {
            body["VersionStage"] = json!(stage);
        }
        if let Some(version) = version {
            body["VersionId"] = json!(version);
        }
        let answer = self
            .http
            .post(format!("{}/", self.base))
            .header(header::AUTHORIZATION, scope.authorization("secretsmanager"))
            .header("X-Amz-Target", "secretsmanager.GetSecretValue")
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await;
        let text = match answer {
            Ok(answer) => match checked_text(answer, "secretsmanager:GetSecretValue").await {
                Ok(text) => text,
                Err(err) => return format!("unresolved: {err}"),
            },
            Err(err) => return format!("unresolved: {err}"),
        };
        let value = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["SecretString"].as_str().map(str::to_owned));
        let Some(value) = value else {
            return "unresolved: no SecretString".to_owned();
        };
        let value = match key {
            None => value,
            Some(key) => match serde_json::from_str::<Value>(&value)
                .ok()
                .and_then(|v| v[key].as_str().map(str::to_owned))
            {
                Some(v) => v,
                None => return format!("unresolved: no key {key}"),
            },
        };
        crate::dynatrace::token_id(&value)
            .map_or_else(|| "not a Dynatrace token".to_owned(), str::to_owned)
    }

    /// The target group's `deregistration_delay.timeout_seconds`, in milliseconds
    /// (AWS's default of 300 s when moto does not list it).
    ///
    /// # Errors
    /// As [`MotoClient::ecs`], for ELBv2.
    pub async fn deregistration_delay_ms(
        &self,
        scope: &Scope,
        target_group_arn: &str,
    ) -> Result<u64, Error> {
        let answer = self
            .elbv2(
                scope,
                "DescribeTargetGroupAttributes",
                &[("TargetGroupArn".to_owned(), target_group_arn.to_owned())],
            )
            .await?;
        let seconds = answer
            .path(&["DescribeTargetGroupAttributesResult", "Attributes"])
            .into_iter()
            .flat_map(|attributes| attributes.children_named("member"))
            .find(|member| member.text_of("Key") == Some("deregistration_delay.timeout_seconds"))
            .and_then(|member| member.text_of("Value"))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(300);
        Ok(seconds.saturating_mul(1000))
    }

    /// The IPv4 CIDR block of a subnet, if moto knows the subnet.
    ///
    /// # Errors
    /// As [`MotoClient::ecs`], for EC2.
    pub async fn subnet_cidr(&self, scope: &Scope, subnet_id: &str) -> Result<Option<Cidr>, Error> {
        let answer = self
            .query(
                scope,
                "ec2",
                EC2_VERSION,
                "DescribeSubnets",
                &[("SubnetId.1".to_owned(), subnet_id.to_owned())],
            )
            .await?;
        Ok(answer
            .path(&["subnetSet", "item", "cidrBlock"])
            .and_then(|cidr| cidr.text.parse().ok()))
    }

    /// Registers the change's targets in its target group.
    ///
    /// # Errors
    /// As [`MotoClient::ecs`], for ELBv2.
    pub async fn register_targets(&self, change: &TargetChange) -> Result<(), Error> {
        self.elbv2(&change.scope, "RegisterTargets", &target_params(change))
            .await
            .map(|_| ())
    }

    /// Deregisters the change's targets from its target group.
    ///
    /// # Errors
    /// As [`MotoClient::ecs`], for ELBv2.
    pub async fn deregister_targets(&self, change: &TargetChange) -> Result<(), Error> {
        self.elbv2(&change.scope, "DeregisterTargets", &target_params(change))
            .await
            .map(|_| ())
    }
}

fn target_params(change: &TargetChange) -> Vec<(String, String)> {
    let mut params = vec![("TargetGroupArn".to_owned(), change.target_group_arn.clone())];
    for (n, (ip, port)) in change.targets.iter().enumerate() {
        let n = n + 1;
        params.push((format!("Targets.member.{n}.Id"), ip.to_string()));
        if let Some(port) = port {
            params.push((format!("Targets.member.{n}.Port"), port.to_string()));
        }
    }
    params
}

async fn checked_text(answer: reqwest::Response, op: &str) -> Result<String, Error> {
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|source| Error::MotoUnreachable {
            op: op.to_owned(),
            source,
        })?;
    if status != StatusCode::OK {
        return Err(Error::MotoStatus {
            op: op.to_owned(),
            status,
            body: text.chars().take(500).collect(),
        });
    }
    Ok(text)
}

/// A reqwest client for loopback calls: never through a proxy.
///
/// # Errors
/// When reqwest cannot build a client (no TLS is involved, so only on resource exhaustion).
pub fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(3));
    match timeout {
        Some(timeout) => builder.timeout(timeout),
        None => builder,
    }
    .build()
}

/// Targets as `ip:port,…` for log lines.
pub fn display_targets(targets: &[(Ipv4Addr, Option<u16>)]) -> String {
    targets
        .iter()
        .map(|(ip, port)| match port {
            Some(port) => format!("{ip}:{port}"),
            None => ip.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_region_and_service_from_a_sigv4_authorization() {
        let credential = Credential::parse(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/elasticloadbalancing/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .expect("a sigv4 header");
        assert_eq!(credential.service, "elasticloadbalancing");
        assert_eq!(credential.scope.region, "eu-west-1");
        assert_eq!(credential.scope.access_key, "AKIDEXAMPLE");
    }

    #[test]
    fn authorization_round_trips_through_parse() {
        let scope = Scope {
            access_key: "test".into(),
            region: "us-west-2".into(),
        };
        let credential = Credential::parse(&scope.authorization("ecs")).expect("parses");
        assert_eq!(credential.scope, scope);
        assert_eq!(credential.service, "ecs");
    }

    #[test]
    fn ignores_headers_without_a_credential() {
        assert_eq!(Credential::parse("Bearer token"), None);
    }
}

/// `arn:aws:secretsmanager:<region>:<account>:secret:<name>[:<key>:<stage>:<version>]` (or a
/// name) split into the secret id and the optional key, stage and version.
fn split_value_from(value_from: &str) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
    if !value_from.starts_with("arn:") {
        return (value_from, None, None, None);
    }
    let parts: Vec<&str> = value_from.splitn(10, ':').collect();
    if parts.len() <= 7 {
        return (value_from, None, None, None);
    }
    let end = parts[..7].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
    let some = |i: usize| parts.get(i).copied().filter(|p| !p.is_empty());
    (&value_from[..end], some(7), some(8), some(9))
}

#[cfg(test)]
mod value_from_tests {
    use super::split_value_from;

    #[test]
    fn a_value_from_splits_into_secret_key_stage_and_version() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dt/tokens-AbCdEf";
        assert_eq!(split_value_from(arn), (arn, None, None, None));
        assert_eq!(
            split_value_from(&format!("{arn}:DT_PAAS_TOKEN::")),
            (arn, Some("DT_PAAS_TOKEN"), None, None)
        );
        assert_eq!(
            split_value_from(&format!("{arn}:K:AWSPREVIOUS:")),
            (arn, Some("K"), Some("AWSPREVIOUS"), None)
        );
        assert_eq!(
            split_value_from("dt/tokens"),
            ("dt/tokens", None, None, None)
        );
    }
}
