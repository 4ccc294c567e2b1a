//! ELBv2 (Query protocol): `DescribeTargetHealth` answered with the simulated target states.

use std::collections::HashSet;

use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::ids;
use crate::proxy::{self, Incoming};
use crate::server::AppState;
use crate::sim::{SimTarget, TargetState, now_millis};
use crate::xml::{self, Element};

/// The API version of ELBv2 (classic ELB shares the signing name with 2012-06-01).
pub const VERSION: &str = "2015-12-01";

const NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// The Query-protocol parameters of a request: the URL query, then a form body.
pub fn query_params(req: &Incoming) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = req
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    params.extend(form_urlencoded::parse(&req.body).into_owned());
    params
}

pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One `TargetHealthDescriptions/member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealthDescription {
    pub id: String,
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
    pub health_check_port: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

impl TargetHealthDescription {
    fn set_state(&mut self, state: TargetState) {
        self.state = state.as_str().to_owned();
        self.reason = state.reason().map(str::to_owned);
        self.description = state.description().map(str::to_owned);
    }

    fn simulated(target: &SimTarget) -> Self {
        let mut description = TargetHealthDescription {
            id: target.ip.to_string(),
            port: target.port,
            availability_zone: None,
            health_check_port: target.port.map(|p| p.to_string()),
            state: String::new(),
            reason: None,
            description: None,
        };
        description.set_state(target.state);
        description
    }
}

/// Reads a `DescribeTargetHealthResponse`: its descriptions and `RequestId`.
///
/// # Errors
/// [`Error::Xml`] when the document is malformed or is another answer.
pub fn parse_describe_target_health(
    document: &str,
) -> Result<(Vec<TargetHealthDescription>, Option<String>), Error> {
    let root = Element::parse(document)?;
    if root.name != "DescribeTargetHealthResponse" {
        return Err(Error::Xml(format!(
            "expected DescribeTargetHealthResponse, found {}",
            root.name
        )));
    }
    let owned = |e: Option<&str>| e.map(str::to_owned);
    let descriptions = root
        .path(&["DescribeTargetHealthResult", "TargetHealthDescriptions"])
        .into_iter()
        .flat_map(|list| list.children_named("member"))
        .map(|member| {
            let target = member.child("Target");
            let health = member.child("TargetHealth");
            TargetHealthDescription {
                id: target
                    .and_then(|t| t.text_of("Id"))
                    .unwrap_or_default()
                    .to_owned(),
                port: target
                    .and_then(|t| t.text_of("Port"))
                    .and_then(|p| p.parse().ok()),
                availability_zone: owned(target.and_then(|t| t.text_of("AvailabilityZone"))),
                health_check_port: owned(member.text_of("HealthCheckPort")),
                state: health
                    .and_then(|h| h.text_of("State"))
                    .unwrap_or_default()
                    .to_owned(),
                reason: owned(health.and_then(|h| h.text_of("Reason"))),
                description: owned(health.and_then(|h| h.text_of("Description"))),
            }
        })
        .collect();
    let request_id = owned(
        root.path(&["ResponseMetadata", "RequestId"])
            .map(|e| e.text.as_str()),
    );
    Ok((descriptions, request_id))
}

/// Renders a `DescribeTargetHealthResponse` in the shape moto and AWS answer.
pub fn render_describe_target_health(
    descriptions: &[TargetHealthDescription],
    request_id: &str,
) -> String {
    let mut out =
        format!("<DescribeTargetHealthResponse xmlns=\"{NAMESPACE}\"><DescribeTargetHealthResult>");
    if descriptions.is_empty() {
        out.push_str("<TargetHealthDescriptions/>");
    } else {
        out.push_str("<TargetHealthDescriptions>");
        for d in descriptions {
            out.push_str("<member><Target>");
            element(&mut out, "Id", Some(&d.id));
            element(&mut out, "Port", d.port.map(|p| p.to_string()).as_deref());
            element(&mut out, "AvailabilityZone", d.availability_zone.as_deref());
            out.push_str("</Target>");
            element(&mut out, "HealthCheckPort", d.health_check_port.as_deref());
            out.push_str("<TargetHealth>");
            element(&mut out, "State", Some(&d.state));
            element(&mut out, "Reason", d.reason.as_deref());
            element(&mut out, "Description", d.description.as_deref());
            out.push_str("</TargetHealth></member>");
        }
        out.push_str("</TargetHealthDescriptions>");
    }
    out.push_str("</DescribeTargetHealthResult><ResponseMetadata>");
    element(&mut out, "RequestId", Some(request_id));
    out.push_str("</ResponseMetadata></DescribeTargetHealthResponse>");
    out
}

fn element(out: &mut String, name: &str, text: Option<&str>) {
    if let Some(text) = text {
        out.push_str(&format!("<{name}>{}</{name}>", xml::escape(text)));
    }
}

/// Lays the simulated states over moto's answer. moto's answer decides which targets are
/// listed, except that a listing of the whole group (`explicit` false) leaves out simulated
/// targets that have left it and adds live ones moto does not list (a registration still
/// in flight).
pub fn merge(
    moto: Vec<TargetHealthDescription>,
    simulated: &[SimTarget],
    explicit: bool,
) -> Vec<TargetHealthDescription> {
    let mut seen = HashSet::new();
    let mut merged = Vec::with_capacity(moto.len());
    for mut description in moto {
        if let Some(target) = simulated
            .iter()
            .find(|t| t.ip.to_string() == description.id)
        {
            seen.insert(target.ip);
            if target.state == TargetState::Unused && !explicit {
                continue;
            }
            description.set_state(target.state);
        }
        merged.push(description);
    }
    if !explicit {
        merged.extend(
            simulated
                .iter()
                .filter(|t| t.state != TargetState::Unused && !seen.contains(&t.ip))
                .map(TargetHealthDescription::simulated),
        );
    }
    merged
}

/// `DescribeTargetHealth`: forwarded to moto, with simulated targets' states laid over.
pub async fn describe_target_health(
    state: &AppState,
    req: &Incoming,
    params: &[(String, String)],
) -> Response {
    state.sweep().await;
    let simulated =
        param(params, "TargetGroupArn").and_then(|tg| state.sim().target_health(tg, now_millis()));
    let upstream = match proxy::forward(&state.http, &state.moto_url, req).await {
        Ok(upstream) => upstream,
        Err(err) => return proxy::moto_unreachable(&err).into_response(),
    };
    let Some(simulated) = simulated else {
        return upstream.into_response();
    };
    if upstream.status != axum::http::StatusCode::OK {
        return upstream.into_response();
    }
    let parsed = std::str::from_utf8(&upstream.body)
        .map_err(|e| Error::Xml(e.to_string()))
        .and_then(parse_describe_target_health);
    let (descriptions, request_id) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            tracing::warn!(error = %err, "could not read moto's DescribeTargetHealth answer; passing it through");
            return upstream.into_response();
        }
    };
    let explicit = params.iter().any(|(k, _)| k.starts_with("Targets.member."));
    let merged = merge(descriptions, &simulated, explicit);
    let request_id = request_id.unwrap_or_else(ids::request_id);
    upstream
        .with_body(render_describe_target_health(&merged, &request_id))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn description(id: &str, state: &str) -> TargetHealthDescription {
        TargetHealthDescription {
            id: id.into(),
            port: Some(8080),
            availability_zone: None,
            health_check_port: Some("traffic-port".into()),
            state: state.into(),
            reason: None,
            description: None,
        }
    }

    fn simulated(last_octet: u8, state: TargetState) -> SimTarget {
        SimTarget {
            ip: Ipv4Addr::new(10, 0, 0, last_octet),
            port: Some(8080),
            state,
        }
    }

    #[test]
    fn rendered_target_health_parses_back_to_the_same_descriptions() {
        let mut draining = description("10.0.0.5", "");
        draining.set_state(TargetState::Draining);
        draining.availability_zone = Some("us-east-1a".into());
        let descriptions = vec![description("10.0.0.4", "healthy"), draining];
        let document = render_describe_target_health(&descriptions, "req-1");
        let (parsed, request_id) = parse_describe_target_health(&document).expect("parses");
        assert_eq!(parsed, descriptions);
        assert_eq!(request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn an_empty_answer_renders_an_empty_list() {
        let document = render_describe_target_health(&[], "r & d");
        assert!(
            document.contains("<TargetHealthDescriptions/>"),
            "{document}"
        );
        let (parsed, request_id) = parse_describe_target_health(&document).expect("parses");
        assert!(parsed.is_empty());
        assert_eq!(request_id.as_deref(), Some("r & d"));
    }

    #[test]
    fn reads_the_answer_moto_gives() {
        let moto = r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>10.0.0.5</Id><Port>8080</Port></Target><HealthCheckPort>traffic-port</HealthCheckPort><TargetHealth><State>healthy</State></TargetHealth></member></TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>L2ii</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"#;
        let (parsed, request_id) = parse_describe_target_health(moto).expect("parses");
        assert_eq!(parsed, vec![description("10.0.0.5", "healthy")]);
        assert_eq!(request_id.as_deref(), Some("L2ii"));
        assert!(parse_describe_target_health("<ErrorResponse/>").is_err());
    }

    #[test]
    fn merge_overrides_simulated_targets_and_keeps_the_others() {
        let moto = vec![
            description("10.0.0.1", "healthy"),
            description("10.0.0.2", "healthy"),
            description("192.168.0.9", "healthy"),
        ];
        let sim = [
            simulated(1, TargetState::Initial),
            simulated(2, TargetState::Unused),
            simulated(3, TargetState::Draining),
        ];
        let merged = merge(moto, &sim, false);
        let summary: Vec<(&str, &str)> = merged
            .iter()
            .map(|d| (d.id.as_str(), d.state.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("10.0.0.1", "initial"),
                ("192.168.0.9", "healthy"),
                ("10.0.0.3", "draining")
            ]
        );
        assert_eq!(
            merged[0].reason.as_deref(),
            Some("Elb.RegistrationInProgress")
        );
    }

    #[test]
    fn merge_answers_unused_for_an_asked_target_that_left() {
        let moto = vec![description("10.0.0.2", "healthy")];
        let merged = merge(moto, &[simulated(2, TargetState::Unused)], true);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].state, "unused");
        assert_eq!(merged[0].reason.as_deref(), Some("Target.NotRegistered"));
    }
}
